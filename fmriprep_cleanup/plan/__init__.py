"""The plan: every scanned file with its final decision (built once from its options, walked on iteration), and
the totals a report is made of. (The work list a clean run acts on is act/worklist.py's.)"""

from __future__ import annotations

from ..basics.lazy import lazy_face

__getattr__, __dir__ = lazy_face(__name__, {
    "Plan": "plan", "PlannedFile": "rows", "Selection": "selection", "build_plan": "plan", "DEFAULT_MIN_AGE": "options", "PlanOptions": "options", "CleanOptions": "options",
    "Summary": "summary", "Counts": "summary",
})
