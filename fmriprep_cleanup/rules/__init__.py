"""Keep/junk rules: the rule model, loading and validation of YAML rule sets (every problem with file and
line), path globs that never backtrack, and the classifier that gives each file its decision."""

from __future__ import annotations

from ..basics.lazy import lazy_face

__getattr__, __dir__ = lazy_face(__name__, {
    "RuleSet": "model", "Rule": "model", "Match": "model", "load_rulesets": "rulesets",
    "shipped_ruleset_names": "rulesets", "shipped_rules_dir": "rulesets", "RuleFileError": "rulesets",
    "glob_to_regex": "globs",
    "Classifier": "classify", "Decision": "classify",
})
