"""HTML + PNG reports from a run directory."""

from hirelc.report.html import write_report

__all__ = ["write_report"]
