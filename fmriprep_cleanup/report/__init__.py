"""Rendering: the dictionaries every output is made from (report, status, audit, history), and text, CSV, JSON,
the per-file plan and the HTML pages rendered from them; plus one file's explanation in words."""

from __future__ import annotations

from ..basics.lazy import lazy_face

__getattr__, __dir__ = lazy_face(__name__, {
    "report_data": "data", "status_data": "data", "audit_data": "data", "history_data": "data",
    "render_text": "text", "render_json": "text", "render_csv": "text", "RENDERERS": "text",
    "render_html": "html", "render_audit_html": "html",
    "write_plan": "planfile", "PLAN_COLUMNS": "planfile",
    "render_explanation": "explain",
})
