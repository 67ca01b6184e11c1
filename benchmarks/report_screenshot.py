"""Render a run's report.html in a headless browser to a PNG, to look at it as a user would
(issue "First hour", item 7: the report is checked by rendering it, not only by its HTML).

    python benchmarks/report_screenshot.py runs/hirelc_lenet            # -> runs/hirelc_lenet/report.png
    python benchmarks/report_screenshot.py runs/hirelc_lenet --height 4000

Needs a Chromium (`apt-get install chromium`); writes `report.html` first if the run has none.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path


def browser() -> str:
    """The first headless-capable browser on PATH."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("no Chromium on PATH: apt-get install chromium")


def screenshot(run: Path, width: int, height: int) -> Path:
    """report.html of `run` rendered at width x height CSS pixels -> run/report.png."""
    from hirelc.report import write_report

    page = run / "report.html"
    if not page.exists():
        write_report(run)
    out = run / "report.png"
    # --no-sandbox: the sandbox cannot start as root (CI and this machine run as root).
    subprocess.run([browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size={width},{height}", f"--screenshot={out.resolve()}", page.resolve().as_uri()],
                   check=True, capture_output=True, timeout=120)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="run directory (a search or a pareto enumeration)")
    p.add_argument("--width", type=int, default=1200)
    p.add_argument("--height", type=int, default=3200)
    args = p.parse_args()
    print(screenshot(args.run, args.width, args.height))
    return 0


if __name__ == "__main__":
    sys.exit(main())
