"""The run statuses a subject can have, in report order. Alone in a module so the command line can offer
them as choices without importing how they are judged (status.py)."""

SUBJECT_STATUSES = ("finished", "failed", "running", "incomplete", "unknown", "orphaned")
