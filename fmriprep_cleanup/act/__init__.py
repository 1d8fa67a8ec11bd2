"""Acting on a plan, safely: the journal (lock, events, recovery), file-system primitives that never follow a
symlink, the delete and archive executors, restore, and the clean run that ties them together."""

from __future__ import annotations

from ..basics.lazy import lazy_face

__getattr__, __dir__ = lazy_face(__name__, {
    "CleanResult": "clean", "Declined": "clean", "RestoreOutcome": "restore",
    "RunLock": "lock", "LockedError": "lock",
    "Worklist": "worklist", "Outcome": "worklist", "Tally": "worklist", "build_worklist": "worklist",
})
