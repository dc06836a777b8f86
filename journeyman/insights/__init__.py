"""The marketer's report: performance marts → one self-contained HTML file (`report.py`), with
static SVG charts (`charts.py`), the marts' queries (`report_data.py`) and plain-language
sentences (`summary.py`)."""

from journeyman.insights.report import write_report
from journeyman.insights.report_data import ReportError

__all__ = ["ReportError", "write_report"]
