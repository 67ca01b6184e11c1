"""CPU threading defaults that stay cheap on a busy machine, and what was used (result.json).

OpenMP worker threads that find no work spin before sleeping. On a machine whose cores are
taken by other processes, a 2-thread fine-tune spent 6-11x the CPU time of a 1-thread one
(79-114 s against 9.5-13 s for the same 300 steps, releq_lenet / mnist5k, 2 cores, one
competing busy loop plus other jobs; benchmarks/threads_busy.py, RESULTS.md "Torch threads
on a busy machine"). With OMP_WAIT_POLICY=PASSIVE idle workers sleep at once: the same
2-thread fine-tune took 11.5-12.1 s of CPU. So `import hirelc` sets OMP_WAIT_POLICY=PASSIVE
unless the user set it, and leaves torch's thread count (one per core) as it is: on an idle
machine the second thread still shortens the wall time; on a busy one, set
OMP_NUM_THREADS=1 (1 thread was also the faster in wall time there, see RESULTS.md).

OpenMP reads the variable when torch loads it: it only takes effect when `hirelc` is
imported before `torch` (always so for the `hirelc` command). HIRELC_THREADS_AUTO=0 leaves
the environment untouched (benchmarks use it to measure the runtime's own default).

>>> settings = thread_settings()
>>> sorted(settings)
['omp_wait_policy', 'omp_wait_policy_set_by', 'torch_threads']
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from typing import Any

WAIT_POLICY = "OMP_WAIT_POLICY"
OPT_OUT = "HIRELC_THREADS_AUTO"

_set_by = "not checked"


def prefer_passive_wait(environ: MutableMapping[str, str] | None = None, torch_loaded: bool | None = None) -> str:
    """Set OMP_WAIT_POLICY=PASSIVE unless the user chose a policy; return who decided.

    >>> env = {}
    >>> prefer_passive_wait(env, torch_loaded=False), env
    ('hirelc', {'OMP_WAIT_POLICY': 'PASSIVE'})
    >>> prefer_passive_wait({"OMP_WAIT_POLICY": "ACTIVE"}, torch_loaded=False)
    'user'
    >>> prefer_passive_wait({}, torch_loaded=True)  # OpenMP already read its settings
    'unset (torch was imported before hirelc)'
    """
    environ = os.environ if environ is None else environ
    torch_loaded = "torch" in sys.modules if torch_loaded is None else torch_loaded
    if environ.get(WAIT_POLICY):
        return "user"
    if environ.get(OPT_OUT) == "0":
        return f"unset ({OPT_OUT}=0)"
    if torch_loaded:
        return "unset (torch was imported before hirelc)"
    environ[WAIT_POLICY] = "PASSIVE"
    return "hirelc"


def configure() -> None:
    """Apply `prefer_passive_wait` once, at `import hirelc`."""
    global _set_by
    _set_by = prefer_passive_wait()


def thread_settings() -> dict[str, Any]:
    """The settings a CPU result depends on (fine-tunes depend on float reduction order)."""
    import torch

    return {"torch_threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get(WAIT_POLICY) or "unset (OpenMP default: spin, then sleep)",
            "omp_wait_policy_set_by": _set_by}
