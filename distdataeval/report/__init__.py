"""The run's human report: ``report.html`` with its figures and plots, read from an output store.

:func:`write_report` is the entry point; :func:`read_report_data` returns the same figures as
records (for tests and other front ends).
"""

from distdataeval.report.data import ReportData, read_report_data
from distdataeval.report.write import write_report

__all__ = ["ReportData", "read_report_data", "write_report"]
