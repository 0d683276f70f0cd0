"""Case reports: one document (:mod:`~vestige.reports.casereport`) rendered as canonical JSON, HTML and PDF.

``vestige report CASE --format json|html|pdf|bundle --out PATH`` calls
:func:`~vestige.reports.export.export_report`; the JSON is described by
``schema/report-v1.json``. The signed bundle is :mod:`vestige.evidence.bundle`.
"""

from vestige.reports.casereport import REPORT_FORMAT, REPORT_VERSION, build_case_report
from vestige.reports.export import FORMATS, ExportedReport, export_report
from vestige.reports.jsonreport import report_json_bytes, report_problems

__all__ = [
    "FORMATS",
    "REPORT_FORMAT",
    "REPORT_VERSION",
    "ExportedReport",
    "build_case_report",
    "export_report",
    "report_json_bytes",
    "report_problems",
]
