import os
import textwrap

import pytest

from fmriprep_cleanup.basics.errors import CleanupError
from fmriprep_cleanup.basics.units import parse_duration, parse_size
from fmriprep_cleanup.rules.classify import Classifier, FileFacts
from fmriprep_cleanup.rules.globs import glob_to_regex
from fmriprep_cleanup.rules.rulesets import load_rulesets, shipped_ruleset_names

NOW = 1_800_000_000.0


def write(fs_path, text):
    os.makedirs(os.path.dirname(fs_path), exist_ok=True)
    with open(fs_path, "w") as handle:
        handle.write(textwrap.dedent(text))
    return fs_path


def decide(ruleset, relpath, scope="derivatives", size=100, age=0.0, subject=None):
    folder, _, name = relpath.rpartition("/")
    return Classifier(ruleset, NOW).decide(FileFacts(scope, folder, name, size, NOW - age, subject))


GOOD = """\
version: 1
name: mine
description: test set
default: keep
rules:
  - id: big-bold
    action: junk
    category: bold
    why: large BOLD series
    match:
      suffix: bold
      space: [MNI152NLin6Asym, "fs*"]
      min_size: 1MB
  - id: old-logs
    action: junk
    category: logs
    why: old logs
    match:
      path: "logs/**"
      min_age: 30d
      not:
        path: "*.md"
"""


def test_entities_lists_globs_sizes_ages_and_not(fakefs):
    ruleset = load_rulesets([write("/r/mine.yaml", GOOD)])
    bold = "sub-01/func/sub-01_task-x_space-MNI152NLin6Asym_desc-preproc_bold.nii.gz"
    assert decide(ruleset, bold, size=2_000_000).rule_id == "big-bold"
    assert decide(ruleset, bold, size=999_999).rule_id == "default"  # below min_size
    assert decide(ruleset, bold.replace("MNI152NLin6Asym", "fsaverage5"), size=2_000_000).action == "junk"  # wildcard value
    assert decide(ruleset, bold.replace("MNI152NLin6Asym", "T1w"), size=2_000_000).action == "keep"
    assert decide(ruleset, bold, scope="workdir", size=2_000_000).action == "keep"  # entities only in derivatives
    assert decide(ruleset, "logs/CITATION.bib", age=40 * 86400).rule_id == "old-logs"
    assert decide(ruleset, "logs/CITATION.bib", age=20 * 86400).rule_id == "default"  # too recent
    assert decide(ruleset, "logs/CITATION.md", age=40 * 86400).rule_id == "default"  # excluded by not:


def test_first_match_wins_and_extending_set_comes_first(fakefs):
    write("/r/base.yaml", """\
        version: 1
        name: base
        default: junk
        rules:
          - {id: all-func, action: keep, category: func, why: w, match: {datatype: func}}
    """)
    child = write("/r/child.yaml", """\
        version: 1
        name: child
        extends: base.yaml
        rules:
          - {id: no-bold, action: junk, category: bold, why: w, match: {suffix: bold}}
    """)
    ruleset = load_rulesets([child])
    assert ruleset.names == ("child", "base")
    assert ruleset.default == "junk"  # inherited: child does not say otherwise
    assert decide(ruleset, "sub-01/func/sub-01_task-x_bold.nii.gz").rule_id == "no-bold"
    assert decide(ruleset, "sub-01/func/sub-01_task-x_boldref.nii.gz").rule_id == "all-func"
    assert decide(ruleset, "sub-01/anat/sub-01_T1w.nii.gz").rule_id == "default"
    # --rules base --rules child gives the same order (later sets extend earlier ones)
    assert load_rulesets(["/r/base.yaml", child]).rules == ruleset.rules


def test_cli_keep_beats_cli_junk_beats_rules(fakefs):
    ruleset = load_rulesets(["default"]).with_cli_globs(keep=("*_T1w.nii.gz",), junk=("sub-01/anat/**",))
    assert decide(ruleset, "sub-01/anat/sub-01_desc-preproc_T1w.nii.gz").rule_id == "cli-keep-1"
    assert decide(ruleset, "sub-01/anat/sub-01_desc-brain_mask.nii.gz").rule_id == "cli-junk-1"
    assert decide(ruleset, "sub-02/anat/sub-02_desc-brain_mask.nii.gz").action == "keep"
    with pytest.raises(CleanupError, match="--junk"):
        load_rulesets(["default"]).with_cli_globs(junk=("a/[b",))


@pytest.mark.parametrize(
    "rule, message",
    [
        ("{id: a, action: junk, category: c, why: w, match: {spce: MNI}}", r"mine.yaml:7: .*unknown condition or entity 'spce' \(did you mean 'space'\?\)"),
        ("{id: a, action: junk, category: c, why: w, match: {ses: '1'}}", r"mine.yaml:7: .*'ses' \(the entity is called 'session'\)"),
        ("{id: a, action: delete, category: c, why: w, match: {}}", r"mine.yaml:7: rule 'a': unknown action 'delete'"),
        ("{id: a, action: junk, category: c, why: w, match: {path: 'a/[b'}}", r"mine.yaml:7: .*bad glob 'a/\[b'"),
        ("{id: a, action: junk, category: c, match: {}}", r"mine.yaml:7: rule 'a': missing why"),
        ("{id: a, action: junk, category: c, why: w, match: {scope: work}}", r"mine.yaml:7: .*unknown scope 'work' \(did you mean 'workdir'\?\)"),
        ("{id: a, action: junk, category: c, why: w, colour: red, match: {}}", r"mine.yaml:7: rule 'a': unknown key 'colour'"),
        ("{id: a, action: junk, category: c, why: w, match: {min_size: lots}}", r"mine.yaml:7: .*not a size: 'lots'"),
        ("{id: a, action: junk, category: c, why: w, match: {run: one}}", r"mine.yaml:7: .*run: expected a number, got 'one'"),
    ],
)
def test_validation_names_file_line_and_value(fakefs, rule, message):
    path = write("/r/mine.yaml", f"version: 1\nname: mine\ndescription: d\ndefault: keep\nrules:\n  - {{id: ok, action: keep, category: c, why: w, match: {{}}}}\n  - {rule}\n")
    with pytest.raises(CleanupError, match=message):
        load_rulesets([path])


def test_all_problems_are_reported_at_once(fakefs):
    path = write("/r/mine.yaml", "version: 1\nname: mine\nrules:\n  - {id: a, action: nuke, category: c, why: w, match: {spaec: x}}\n")
    with pytest.raises(CleanupError) as error:
        load_rulesets([path])
    assert "unknown action 'nuke'" in str(error.value) and "unknown condition or entity 'spaec'" in str(error.value)


@pytest.mark.parametrize(
    "text, message",
    [
        ("version: 1\nname: x\nrules: [\n", r"mine.yaml:4: "),
        ("version: 1\nname: x\nname: y\nrules: []\n", r"mine.yaml:3: duplicate key 'name'"),
        ("- just\n- a list\n", r"mine.yaml:1: a rule set must be a mapping"),
        ("version: 2\nname: x\nrules: []\n", r"mine.yaml:1: unsupported version 2"),
        ("name: x\nrules: []\n", r"mine.yaml:1: missing 'version'"),
        ("version: 1\nname: x\ndefault: delete\nrules: []\n", r"mine.yaml:3: unknown default action 'delete'"),
        ("version: 1\nname: x\nextends: nosuchset\nrules: []\n", r"mine.yaml:3: extends 'nosuchset': unknown rule set 'nosuchset'"),
    ],
)
def test_bad_files_are_one_clear_error(fakefs, text, message):
    with pytest.raises(CleanupError, match=message):
        load_rulesets([write("/r/mine.yaml", text)])


def test_cycle_in_extends_is_an_error_naming_file_and_line(fakefs):
    write("/r/a.yaml", "version: 1\nname: a\nextends: b.yaml\nrules: []\n")
    write("/r/b.yaml", "version: 1\nname: b\nrules: []\nextends: [a.yaml]\n")
    with pytest.raises(CleanupError, match=r"b.yaml:4: extends 'a.yaml': cycle in extends: /r/a.yaml -> /r/b.yaml -> /r/a.yaml"):
        load_rulesets(["/r/a.yaml"])


def test_missing_rule_file_and_unknown_name(fakefs):
    with pytest.raises(CleanupError, match="no rule file at /r/none.yaml"):
        load_rulesets(["/r/none.yaml"])
    with pytest.raises(CleanupError, match="unknown rule set 'defualt' \\(did you mean 'default'\\?\\); shipped sets: aslprep-default, aslprep-minimal, default, fmripost_aroma-default"):
        load_rulesets(["defualt"])


def test_every_shipped_set_loads_and_says_who_it_is_for():
    names = shipped_ruleset_names()
    assert {"default", "workdir-only", "fmriprepcleanup", "volume-only"} <= set(names)
    for name in names:
        ruleset = load_rulesets([name])
        assert ruleset.descriptions[name].strip()
        assert len({rule.id for rule in ruleset.rules if rule.source == name}) == len([r for r in ruleset.rules if r.source == name])


@pytest.mark.parametrize(
    "glob, matching, not_matching",
    [
        ("*.dtseries.nii", ["a.dtseries.nii", "sub-01/func/a.dtseries.nii"], ["a.dtseries.nii.gz"]),
        ("fsaverage*/**", ["fsaverage/surf/lh.white", "fsaverage5/x"], ["sub-01/fsaverage/x", "fsaverage"]),
        ("sub-*/log/**", ["sub-01/log/uuid/crash-1.txt"], ["sub-01/anat/log"]),
        ("**/crash-*", ["crash-a.txt", "a/b/crash-a.pklz"], ["a/notcrash-a"]),
        ("a/**/b", ["a/b", "a/x/y/b"], ["a/xb"]),
        ("sub-0[12]/*.html", ["sub-01/x.html"], ["sub-03/x.html", "sub-01/a/x.html"]),
        ("sub-0[!1]/*", ["sub-02/x"], ["sub-01/x"]),
        ("?.txt", ["a.txt"], ["ab.txt"]),
    ],
)
def test_globs(glob, matching, not_matching):
    regex = glob_to_regex(glob)
    assert all(regex.match(path) for path in matching)
    assert not any(regex.match(path) for path in not_matching)


@pytest.mark.parametrize("glob", ["", "/abs/path", "a/../b", "a**b/c", "a/[b"])
def test_bad_globs(glob):
    with pytest.raises(ValueError):
        glob_to_regex(glob)


def test_sizes_and_durations():
    assert parse_size("500MB") == 500_000_000
    assert parse_size("2GiB") == 2 * 1024**3
    assert parse_size(123) == 123
    assert parse_duration("1h30m") == 5400
    assert parse_duration("2w") == 14 * 86400
    for bad in ("-1", "1 parsec", True):
        with pytest.raises(ValueError):
            parse_size(bad)
    for bad in ("soon", "3x", -5):
        with pytest.raises(ValueError):
            parse_duration(bad)


@pytest.mark.parametrize("glob, sees", [
    ("sub-01/**", True), ("sub-?1/**", True), ("sub-*1/**", True), ("**/sub-[0]1_*", True), ("*1_task*", True),
    ("*-01*", True), ("s?b-01/**", True), ("*b-01/**", True), ("*index*", True),
    ("sub-*/anat/**", False), ("sub-*.html", False), ("**/*_cbf.nii*", False), ("*_T?w.nii.gz", False),
    ("fsaverage*/**", False), ("crash-*", False), ("*_run-*", False), ("run-1*", False),
])
def test_a_glob_sees_labels_where_a_literal_or_one_character_wildcard_can_land_on_one(glob, sees):
    """Decisions are reused across subjects (labels blanked) only for rules none of whose globs sees labels."""
    from fmriprep_cleanup.rules.globs import sees_labels

    assert sees_labels(glob) is sees


def test_the_shipped_sets_that_reuse_decisions_across_subjects():
    """The substring rules of fMRIPrepCleanup (*index*) can land on a label: that set decides file by file."""
    repeat = {name: Classifier(load_rulesets([name]), 0.0).decisions_repeat_across_labels
              for name in ("default", "volume-only", "workdir-only", "fmriprepcleanup")}
    assert repeat == {"default": True, "volume-only": True, "workdir-only": True, "fmriprepcleanup": False}


def test_a_rule_file_whose_globs_add_up_past_the_budget_is_refused_at_its_rules_line(fakefs):
    """Each glob may be short, yet thousands of them cost every file of a scan: their total text is bounded,
    negations included, and the file is refused whole, with the line of its ``rules:``."""
    from fmriprep_cleanup.rules.rulesets import MAX_GLOB_TEXT

    glob = "sub-*/**/" + "x" * 900 + "*.nii.gz"
    count = MAX_GLOB_TEXT // (2 * len(glob)) + 1  # half in paths, half in not: paths, past the budget together
    rules = "".join(f"  - {{id: r{n}, action: junk, category: c, why: w, match: {{path: '{glob}', "
                    f"not: {{path: '{glob}'}}}}}}\n" for n in range(count))
    path = write("/r/mine.yaml", f"version: 1\nname: mine\n\nrules:\n{rules}")
    with pytest.raises(CleanupError, match=r"mine.yaml:4: the rule file's globs add up to more than 65,536"):
        load_rulesets([path])
    under = "".join(f"  - {{id: r{n}, action: junk, category: c, why: w, match: {{path: '{glob}'}}}}\n"
                    for n in range(count))  # the same rules without their negations: within the budget
    assert load_rulesets([write("/r/fine.yaml", f"version: 1\nname: fine\n\nrules:\n{under}")]).rules
