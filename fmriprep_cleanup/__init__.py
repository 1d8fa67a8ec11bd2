"""fmriprep-cleanup: find, report and safely remove what fMRIPrep leaves on disk.

The pipeline, one module per stage, with plain data passed between them::

    discover  ->  scan  ->  classify  ->  plan  ->  report

Typical use from Python::

    from fmriprep_cleanup import discover, load_rulesets, build_plan
    dataset = discover("/data/derivatives/fmriprep")
    rules = load_rulesets(["default"])
    summary = build_plan(dataset, rules).summarize()
"""

__version__ = "0.1.0"

from .errors import CleanupError  # noqa: E402
from .discover import Dataset, discover  # noqa: E402
from .rulesets import RuleSet, load_rulesets  # noqa: E402
from .plan import Plan, Selection, build_plan  # noqa: E402

__all__ = [
    "CleanupError",
    "Dataset",
    "Plan",
    "RuleSet",
    "Selection",
    "__version__",
    "build_plan",
    "discover",
    "load_rulesets",
]
