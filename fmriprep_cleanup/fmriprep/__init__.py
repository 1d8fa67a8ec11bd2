"""What fMRIPrep and FreeSurfer leave on disk: where the outputs are (either layout, any version, the working
directory), each subject's run status and the evidence for it, BIDS entities, and realistic demo trees."""

from __future__ import annotations

from ..basics.lazy import lazy_face

__getattr__, __dir__ = lazy_face(__name__, {
    "Dataset": "layout", "ScanRoot": "layout", "state_dir_for": "layout",
    "discover": "discovery", "discover_dataset": "discovery", "NotFMRIPrepError": "discovery",
    "read_run_config": "workdirs",
    "StatusBook": "status", "SubjectStatus": "evidence", "RunState": "evidence", "SUBJECT_STATUSES": "statuses",
    "parse_entities": "entities", "parse_entity": "entities", "entity_names": "entities",
    "build_demo": "demo", "load_listing": "demo", "build_tree": "demo", "real_contents": "demo",
    "synthetic_workdir": "demo", "dataset_description": "demo", "run_config": "demo", "DEMO_VERSION": "demo",
    "DEMO_MTIME": "demo",
})
