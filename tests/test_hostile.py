"""Hostile and broken input: every case one line on stderr, exit 2, in bounded time and memory, nothing changed.

Each row runs the real command in a subprocess with a 1 GiB address-space limit and a time limit, so an alias
bomb, a FIFO or /dev/zero behind a symlink shows up as a failure here instead of a stalled test run.
"""

import csv
import io
import json
import os
import random
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import finish_subjects, make_files, write_description

from fmriprep_cleanup.cli import cli

TOOL = [sys.executable, "-c", "from fmriprep_cleanup.cli import main; main()"]
MEMORY_LIMIT = 1 << 30
TIME_LIMIT = 60


def limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def snapshot(root):
    """Every entry below root by lstat alone (a FIFO or a device is never opened)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            found[os.path.join(dirpath, name)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return found


def dataset(root):
    out = Path(root) / "out"
    write_description(out)
    make_files(out, {"sub-01.html": 10, "work/fmriprep_23_2_wf/sub_01_wf/n/out.nii.gz": 100})
    finish_subjects(out, ["01"])
    return out


def rule_file(root, text, name="rules.yaml"):
    path = Path(root) / name
    path.write_text(text) if isinstance(text, str) else path.write_bytes(text)
    return path


RULE = "version: 1\nname: r\nrules:\n  - id: a\n    action: junk\n    category: c\n    why: w\n    match:\n"
BOMB_KEYS = ["suffix", "desc", "space", "res", "den", "hemi", "label", "from", "to", "mode"]


def alias_bomb(indent: str, keys: list[str]) -> str:
    """The billion laughs: ten levels of nine references each, about 1 KB that expands to 9^10 strings."""
    text = f'{indent}{keys[0]}: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for level in range(1, len(keys)):
        text += f"{indent}{keys[level]}: &l{level} [{', '.join(['*l' + str(level - 1)] * 9)}]\n"
    return text


ALIAS_BOMB = RULE + alias_bomb("      ", BOMB_KEYS)  # in a rule's match: the old reader expanded it to print the rule
POLICY_BOMB = "version: 1\ndatasets:\n  - mode: dry-run\n" + alias_bomb("    ", [f"x{level}" for level in range(9)]) + \
    "    paths: [*l8]\n"  # the old reader expanded it to name the entry


def deep_not(depth):
    return RULE + "      not: " + "{not: " * depth + "{scope: workdir}" + "}" * depth + "\n"


def case(setup, args, message):
    return setup, args, message


CASES = {
    # unbounded parsing
    "yaml alias bomb in a rule file": case(lambda t: [dataset(t), rule_file(t, ALIAS_BOMB)],
                                          lambda t: ["report", t / "out", "--rules", t / "rules.yaml"],
                                          "rules.yaml:9: anchors and aliases"),
    "yaml alias bomb in a policy": case(lambda t: [dataset(t), rule_file(t, POLICY_BOMB, "p.yaml")],
                                       lambda t: ["run", t / "p.yaml"], "p.yaml:4: anchors and aliases"),
    "not: nested 3,000 deep": case(lambda t: rule_file(t, deep_not(3000)), lambda t: ["rules", "validate", t / "rules.yaml"],
                                   "nested more than 64 levels deep"),
    "100k [ in a rule file": case(lambda t: rule_file(t, "version: 1\nname: r\nrules: " + "[" * 100_000),
                                  lambda t: ["rules", "validate", t / "rules.yaml"], "rules.yaml:3: nested more than 64 levels"),
    "deeply nested dataset_description.json": case(
        lambda t: [dataset(t), (t / "out" / "dataset_description.json").write_text("[" * 100_000 + "]" * 100_000)],
        lambda t: ["report", t / "out"], "dataset_description.json: nested more than 64 levels deep"),
    "dataset_description.json is a FIFO": case(
        lambda t: [dataset(t), (t / "out" / "dataset_description.json").unlink(), os.mkfifo(t / "out" / "dataset_description.json")],
        lambda t: ["report", t / "out"], "not a regular file (a FIFO)"),
    "dataset_description.json -> /dev/zero": case(
        lambda t: [dataset(t), (t / "out" / "dataset_description.json").unlink(), os.symlink("/dev/zero", t / "out" / "dataset_description.json")],
        lambda t: ["report", t / "out"], "not a regular file (a character device)"),
    # globs
    "[z-a] in a rule": case(lambda t: [dataset(t), rule_file(t, RULE + '      path: "[z-a]*"\n')],
                            lambda t: ["report", t / "out", "--rules", t / "rules.yaml"], "rules.yaml:9: rule 'a': bad glob '[z-a]*': the range z-a"),
    "--junk [z-a]": case(lambda t: dataset(t), lambda t: ["plan", t / "out", "--junk", "[z-a]"], "--junk [z-a]: bad glob"),
    # numbers
    "--copies inf": case(lambda t: dataset(t), lambda t: ["report", t / "out", "--copies", "inf"], "--copies must be a finite number"),
    "--pue inf": case(lambda t: dataset(t), lambda t: ["report", t / "out", "--pue", "inf"], "--pue must be a finite number"),
    "--carbon-intensity inf": case(lambda t: dataset(t), lambda t: ["report", t / "out", "--carbon-intensity", "inf"],
                                   "--carbon-intensity must be a finite number"),
    "--copies nan": case(lambda t: dataset(t), lambda t: ["report", t / "out", "--copies", "nan", "--format", "json"],
                         "--copies must be a finite number"),
    "energy: {copies: .inf}": case(lambda t: [dataset(t), rule_file(t, "version: 1\nname: e\nextends: default\nrules: []\nenergy: {copies: .inf}\n")],
                                   lambda t: ["report", t / "out", "--rules", t / "rules.yaml", "--format", "json"],
                                   "rules.yaml:5: energy: --copies must be a finite number"),
    "min_age: .inf in a policy": case(lambda t: [dataset(t), rule_file(t, f"version: 1\ndatasets:\n  - paths: [{t / 'out'}]\n    mode: delete\n    min_age: .inf\n", "p.yaml")],
                                      lambda t: ["run", t / "p.yaml"], "p.yaml:5: entry"),
    # small ones
    "a rule file that is not UTF-8": case(lambda t: rule_file(t, b"version: 1\nname: r\n# caf\xe9\nrules: []\n"),
                                          lambda t: ["rules", "validate", t / "rules.yaml"], "rules.yaml:3: not UTF-8 text"),
    'version: "1"': case(lambda t: rule_file(t, 'version: "1"\nname: r\nrules: []\n'), lambda t: ["rules", "validate", t / "rules.yaml"],
                         "version must be the number 1, not the text '1'"),
    "path: 5": case(lambda t: rule_file(t, RULE + "      path: 5\n"), lambda t: ["rules", "validate", t / "rules.yaml"],
                    "expected a glob (text), got 5"),
    "subject: {a: 1}": case(lambda t: rule_file(t, RULE + "      subject: {a: 1}\n"), lambda t: ["rules", "validate", t / "rules.yaml"],
                            "subject: expected a value or a list of values"),
    "a symlink loop as the dataset": case(lambda t: [os.symlink(t / "loop", t / "loop")], lambda t: ["report", t / "loop"],
                                          "is a symlink loop"),
    # cases that already worked, kept
    "invalid YAML": case(lambda t: rule_file(t, "version: 1\nrules: [\n"), lambda t: ["rules", "validate", t / "rules.yaml"], "rules.yaml:"),
    "a cycle in extends": case(lambda t: [rule_file(t, "version: 1\nname: a\nextends: b.yaml\nrules: []\n", "a.yaml"),
                                          rule_file(t, "version: 1\nname: b\nextends: a.yaml\nrules: []\n", "b.yaml")],
                               lambda t: ["rules", "validate", t / "a.yaml"], "cycle in extends"),
    "a missing extends": case(lambda t: rule_file(t, "version: 1\nname: a\nextends: nowhere.yaml\nrules: []\n"),
                              lambda t: ["rules", "validate", t / "rules.yaml"], "no rule file at"),
    "a binary dataset_description.json": case(lambda t: [dataset(t), (t / "out" / "dataset_description.json").write_bytes(bytes(range(256)) * 4)],
                                              lambda t: ["report", t / "out"], "dataset_description.json:2: not UTF-8 text"),
    "an array as dataset_description.json": case(lambda t: [dataset(t), (t / "out" / "dataset_description.json").write_text("[1, 2]")],
                                                 lambda t: ["report", t / "out"], "is not a JSON object"),
    "/": case(lambda t: None, lambda t: ["report", "/"], "does not look like fMRIPrep output"),
    "the home folder": case(lambda t: None, lambda t: ["clean", os.environ["HOME"], "--mode", "delete", "--yes"], "is empty"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input_is_one_line_exit_2_bounded_and_changes_nothing(tmp_path, name):
    setup, args, message = CASES[name]
    setup(tmp_path)
    before = snapshot(tmp_path)
    result = subprocess.run(TOOL + [str(a) for a in args(tmp_path)], capture_output=True, text=True,
                            timeout=TIME_LIMIT, preexec_fn=limited)
    lines = result.stderr.splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("fmriprep-cleanup: error: "), result.stderr[-2000:]
    assert message in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert snapshot(tmp_path) == before


def test_catastrophic_globs_compile_to_forms_that_cannot_backtrack():
    """The unit test checks the compiled form; the time on 10k paths is measured in benchmarks/run.py."""
    from fmriprep_cleanup.rules.globs import ComponentMatcher, glob_to_regex

    stars = glob_to_regex("*?" * 16 + "X")
    assert not isinstance(stars, ComponentMatcher)
    assert stars.pattern == r"^(?:[^/]*/)*[^/]{16,}X$"  # one bounded run instead of 16 nested stars
    twelve = glob_to_regex("**/" * 12 + "x")
    assert not isinstance(twelve, ComponentMatcher) and twelve.pattern == r"^(?:[^/]*/)*x$"  # twelve ** are one
    many = glob_to_regex("a*b*c*d*e")  # more stars than a regex may hold: the component automaton
    assert isinstance(many, ComponentMatcher) and many.match("sub-01/aXbXcXdXe") and not many.match("aXbXcXd")
    several = glob_to_regex("**/a/**/b/**/c")
    assert isinstance(several, ComponentMatcher) and several.match("x/a/y/b/z/c") and several.match("a/b/c")


def test_the_component_automaton_agrees_with_regular_expressions():
    """On random globs and paths, the non-backtracking matcher says exactly what the regex says."""
    from fmriprep_cleanup.rules.globs import ComponentMatcher, glob_to_regex

    rng = random.Random(7)
    atoms = ["a", "b", "*", "?", "[ab]", "[!a]", "**"]
    for _ in range(3000):
        components = []
        for _ in range(rng.randint(1, 4)):
            if rng.random() < 0.2:
                components.append("**")
            else:
                components.append(re.sub(r"\*+", "*", "".join(rng.choice(atoms[:-1]) for _ in range(rng.randint(1, 4)))))
        glob = "/".join(components)
        regex = glob_to_regex(glob)
        if isinstance(regex, ComponentMatcher):
            continue
        automaton = ComponentMatcher(regex_parts(glob))
        for _ in range(10):
            path = "/".join("".join(rng.choice("abc") for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(1, 5)))
            assert bool(regex.match(path)) == automaton.match(path), (glob, path)


def regex_parts(glob):
    from fmriprep_cleanup.rules.globs import glob_parts

    return glob_parts(glob)


def test_a_catastrophic_glob_finishes_on_a_real_report(tmp_path):
    out = dataset(tmp_path)
    make_files(out / "work/fmriprep_23_2_wf/sub_01_wf", {f"n{i}/{'a' * 60}.nii.gz": 10 for i in range(300)})
    finish_subjects(out, ["01"])
    rules = rule_file(tmp_path, RULE + f'      path: ["{"*?" * 16}X", "{"**/" * 12}x"]\n')
    result = subprocess.run(TOOL + ["report", str(out), "--rules", str(rules), "--format", "json"], capture_output=True,
                            text=True, timeout=TIME_LIMIT, preexec_fn=limited)
    assert result.returncode == 0, result.stderr
    json.loads(result.stdout, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))


def test_plan_csv_quotes_names_with_carriage_returns(tmp_path):
    out = dataset(tmp_path)
    names = ["odd\rname.txt", 'odd\rname,with "quotes"\nand lines.txt']
    make_files(out / "sub-01", names)
    result = CliRunner().invoke(cli, ["plan", str(out), "--format", "csv", "--min-age", "0"])
    rows = list(csv.reader(io.StringIO(result.stdout, newline="")))
    assert rows[0] == ["action", "category", "rule_id", "size", "path"]
    assert {str(out / "sub-01" / name) for name in names} <= {row[4] for row in rows[1:]}
    assert all(len(row) == 5 for row in rows) and len(rows) == 1 + 6  # 4 files of the dataset, the 2 odd ones


def test_html_report_with_hostile_names_parses_as_html5_and_its_json_survives(tmp_path):
    import html5lib  # the HTML5 parsing algorithm browsers use, script data states included

    out = dataset(tmp_path)
    hostile = "<!--<script>alert(1)</script>&amp;"
    make_files(out / "sub-01", [f"{hostile}.txt"])
    rules = rule_file(tmp_path, RULE.replace("category: c", f"category: '{hostile}'") + "      scope: derivatives\n")
    page = tmp_path / "r.html"
    result = CliRunner().invoke(cli, ["report", str(out), "--format", "html", "--output", str(page), "--rules", str(rules),
                                      "--min-age", "0"])
    assert result.exit_code == 0, result.output
    document = html5lib.parse(page.read_text(), namespaceHTMLElements=False)
    scripts = document.findall(".//script")
    assert len(scripts) == 1 and scripts[0].get("type") == "application/json"
    data = json.loads(scripts[0].text)
    assert hostile in {row["category"] for row in data["by_category"]}
    assert document.find(".//footer") is not None or document.find(".//body")[-1].tag == "script"  # nothing swallowed
    assert "<script>alert" not in re.sub(r'<script type="application/json".*?</script>', "", page.read_text(), flags=re.S)


def test_a_damaged_journal_is_reported_whole_and_never_blocks_the_dataset(tmp_path):
    """Not a run this user's own record shows cut short, and not one sealed chain (issue 42): said on every run
    and never acted on, while the dataset is cleaned as usual."""
    out = dataset(tmp_path)
    journals = out / ".fmriprep-cleanup" / "journal"
    journals.mkdir(parents=True)
    (journals / "20240101-000000_deadbeef.jsonl").write_text(
        '[1, 2]\n{"event": "archive-begin"}\n{"run": "x", "event": "removing", "batch": "one"}\nnot json\n'
        '{"run": "x", "event": "removing", "batch": 1, "files": [["/nowhere/a", 1, "c"]]}\n')
    result = CliRunner().invoke(cli, ["clean", str(out), "--mode", "delete", "--yes"])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("20240101-000000_deadbeef.jsonl") == 1, result.stderr
    assert "not a run you started (not one unbroken chain" in result.stderr and "not acted on" in result.stderr
    again = CliRunner().invoke(cli, ["clean", str(out), "--mode", "delete", "--yes"])
    assert again.exit_code == 0 and "Nothing to do" in again.stdout and "not acted on" in again.stderr


def test_an_audit_meets_planted_files_and_goes_on(tmp_path):
    area = tmp_path / "area"
    good = dataset(area / "good")
    for name, plant in (("fifo", lambda p: os.mkfifo(p)), ("zero", lambda p: os.symlink("/dev/zero", p)),
                        ("deep", lambda p: p.write_text("[" * 50_000 + "]" * 50_000))):
        folder = area / name / "out"
        folder.mkdir(parents=True)
        plant(folder / "dataset_description.json")
    result = subprocess.run(TOOL + ["audit", str(area), "--format", "json"], capture_output=True, text=True,
                            timeout=TIME_LIMIT, preexec_fn=limited)
    assert result.returncode == 3, result.stderr
    data = json.loads(result.stdout)
    assert [row["path"] for row in data["datasets"]] == [str(good)]
    assert sorted(data["failed"]) == sorted(str(area / name / "out") for name in ("deep", "fifo", "zero"))
    assert "Traceback" not in result.stderr and result.stderr.count("warning:") >= 3


def reference_json_depth(text: str) -> int:
    """The nesting depth, a character at a time (what basics.guarded.json_depth must agree with)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def test_json_depth_agrees_with_a_character_loop_on_strings_escapes_and_stray_brackets():
    from fmriprep_cleanup.basics.guarded import json_depth

    rng = random.Random(7)
    alphabet = '[]{}"\\ a,:'
    texts = ['{"a": "[[[", "b": [1, {"c": "\\"]"}]}', '"unterminated [[[', '\\', ']]][[', '{"x": "\\\\"}[[',
             *("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(3000))]
    for text in texts:
        assert json_depth(text) == reference_json_depth(text), text
