"""Storage hygiene over time and space: auditing a project area, unattended policy runs, the run history,
and scheduling recipes."""

from __future__ import annotations

from ..basics.lazy import lazy_face

__getattr__, __dir__ = lazy_face(__name__, {
    "find_datasets": "audit", "AuditRow": "audit",
    "Policy": "policy", "load_policy": "policy", "run_policy": "hygiene",
    "History": "history", "record_run": "history", "default_history_path": "history",
    "recipe": "schedule",
})
