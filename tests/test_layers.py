"""The stages stay stacked: each imports only the stages below it (an import contract, checked on every module's
own import statements), read-only commands never load the acting layer, and every clean - the command line's
and an unattended policy's - opens the same plan and writes the same history record."""

import ast
import json
import subprocess
import sys
from pathlib import Path

from conftest import cli, project

from fmriprep_cleanup.ops.history import History

PACKAGE = Path(__file__).resolve().parent.parent / "fmriprep_cleanup"
# Bottom up. A module may import its own stage and the stages listed before it; cli goes through api and the
# renderers (report/), and the small basics every stage stands on.
LAYERS = ["basics", "energy", "fmriprep", "rules", "plan", "act", "ops", "report", "api", "cli"]
CLI_MAY_IMPORT = {"api", "report", "basics", "cli"}


def stage_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "top"


def imports_of(path: Path, package: Path | None = None) -> list[tuple[int, str]]:
    """(line, module) of every fmriprep_cleanup module ``path`` imports, at any depth of the file."""
    module = "fmriprep_cleanup." + ".".join(path.relative_to(package or PACKAGE).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module.removesuffix(".__init__")
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("fmriprep_cleanup"):
                names = [f"{target}.{alias.name}" for alias in node.names] if not node.module else [target]
                found += [(node.lineno, name) for name in names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("fmriprep_cleanup")]
    return found


def test_each_stage_imports_only_the_stages_below_it():
    broken = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = "fmriprep_cleanup." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        mine = stage_of(module)
        if mine == "top":
            continue
        for line, target in imports_of(path):
            theirs = stage_of(target)
            if theirs == "top":
                continue  # the package's version
            if mine == "cli":
                if theirs not in CLI_MAY_IMPORT:
                    broken.append(f"{path.relative_to(PACKAGE)}:{line}: cli imports {target} (go through api)")
            elif LAYERS.index(theirs) > LAYERS.index(mine):
                broken.append(f"{path.relative_to(PACKAGE)}:{line}: {mine} imports {target}, a stage above it")
    assert not broken, "\n".join(broken)


def test_the_contract_catches_an_import_that_runs_back_up(tmp_path, monkeypatch):
    """The check itself can fail: a basics module importing plan/ is named."""
    fake = tmp_path / "fmriprep_cleanup" / "basics"
    fake.mkdir(parents=True)
    (fake / "bad.py").write_text("from ..plan.plan import Plan\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "fmriprep_cleanup")
    try:
        test_each_stage_imports_only_the_stages_below_it()
    except AssertionError as exc:
        assert "basics/bad.py:1: basics imports fmriprep_cleanup.plan.plan" in str(exc)
    else:
        raise AssertionError("an import running back up was not caught")


LOADED_ACT = """
import atexit, sys
atexit.register(lambda: sys.stderr.write("\\nACT:" + ",".join(sorted(m for m in sys.modules
                                                             if m.startswith("fmriprep_cleanup.act"))) + "\\n"))
from fmriprep_cleanup.cli import main
main()
"""


def test_read_only_commands_never_load_the_acting_layer(tmp_path):
    out = project(tmp_path)
    import_api = subprocess.run([sys.executable, "-c", "import sys, fmriprep_cleanup.api; "
                                 "print([m for m in sys.modules if m.startswith('fmriprep_cleanup.act')])"],
                                capture_output=True, text=True, check=True)
    assert import_api.stdout.strip() == "[]"
    for command in (["report", out], ["plan", out], ["status", out], ["explain", out, out / "sub-01.html"],
                    ["audit", tmp_path]):
        done = subprocess.run([sys.executable, "-c", LOADED_ACT, *map(str, command)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert done.stderr.rstrip().splitlines()[-1] == "ACT:", (command, done.stderr[-300:])
    acting = subprocess.run([sys.executable, "-c", LOADED_ACT, "clean", str(out)], capture_output=True, text=True)
    assert "fmriprep_cleanup.act.clean" in acting.stderr.splitlines()[-1]  # the check can see act/ being loaded


def history_row(path):
    [row] = History(str(path)).runs()
    return {key: value for key, value in row.items() if key not in ("id", "started", "finished", "duration")}


def test_a_policy_run_and_the_same_clean_plan_the_same_files_and_record_the_same_history(tmp_path):
    from fmriprep_cleanup.api import open_plan
    from fmriprep_cleanup.ops.hygiene import entry_plan
    from fmriprep_cleanup.ops.policy import load_policy

    by_clean, by_policy = project(tmp_path / "a"), project(tmp_path / "b")
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"version: 1\ndatasets:\n  - paths: ['{by_policy}']\n    mode: delete\n    min_age: 1h\n")
    [entry] = load_policy(str(policy)).entries
    planned = [row._replace(path=row.path.replace(str(by_policy), str(by_clean)),
                            root=row.root.replace(str(by_policy), str(by_clean)), dev=0, ino=0, ctime=0, mtime=0)
               for row in entry_plan(entry, str(by_policy))]
    cleaned = [row._replace(dev=0, ino=0, ctime=0, mtime=0) for row in open_plan(str(by_clean))]
    assert planned == cleaned and planned  # every line: action, category, rule, size, path
    assert cli("clean", by_clean, "--mode", "delete", "--yes", "--history", tmp_path / "clean.sqlite").exit_code == 0
    assert cli("run", policy, "--history", tmp_path / "policy.sqlite").exit_code == 0
    mine, theirs = history_row(tmp_path / "clean.sqlite"), history_row(tmp_path / "policy.sqlite")
    assert theirs["rules"] == "default,workdir-only"  # the pipeline's own default, as clean without --rules
    assert {**theirs, "dataset": mine["dataset"]} == mine


def test_the_policy_log_and_the_clean_summary_are_one_result_shape(tmp_path):
    out = project(tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"version: 1\ndatasets:\n  - paths: ['{out}']\n    mode: dry-run\n")
    log = tmp_path / "log.jsonl"
    assert cli("run", policy, "--log", log).exit_code == 0
    logged = json.loads(log.read_text().splitlines()[0])
    summary = json.loads(cli("clean", out, "--format", "json").stdout)
    assert logged["results"] == summary["results"]


def module_of(target: str, modules: set[str]) -> str | None:
    """The module an imported name lives in (``a.b.name`` -> ``a.b``), or None outside the package."""
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def import_graph(package: Path) -> dict[str, set[str]]:
    """module -> the package's modules it imports (at any depth of the file; a package's face left out: it
    imports lazily, by name)."""
    paths = {"fmriprep_cleanup." + ".".join(path.relative_to(package).with_suffix("").parts).removesuffix(".__init__"):
             path for path in package.rglob("*.py")}
    return {module: {found for _, target in imports_of(path, package)
                     if (found := module_of(target, set(paths))) not in (None, module)
                     and paths[found].name != "__init__.py"}
            for module, path in paths.items()}


def cycles_in(graph: dict[str, set[str]]) -> list[str]:
    """Each import cycle a depth-first walk meets, as "a -> b -> a"."""
    cycles: list[str] = []
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return cycles


def test_no_module_imports_itself_back_through_others():
    """No import cycle, at any depth of a file (an import inside a function is a cycle too, only hidden)."""
    assert cycles_in({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a -> b -> c -> a"]  # the check sees one
    cycles = cycles_in(import_graph(PACKAGE))
    assert not cycles, "\n".join(cycles)


def test_functions_and_modules_stay_small():
    """No function over 60 lines, no module over 500: a long one mixes steps that deserve names."""
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > 500:
            too_long.append(f"{path.relative_to(PACKAGE)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 60:
                too_long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}: "
                                f"{node.end_lineno - node.lineno + 1} lines")
    assert not too_long, "\n".join(too_long)


def test_no_dead_code():
    """vulture finds nothing unused in the package; what is used only by name (click commands, declared
    fields, JSON fields) is listed, with why, in tests/dead_code_whitelist.py."""
    whitelist = Path(__file__).with_name("dead_code_whitelist.py")
    found = subprocess.run([sys.executable, "-m", "vulture", str(PACKAGE), str(whitelist), "--min-confidence", "60"],
                           capture_output=True, text=True)
    assert found.returncode == 0 and not found.stdout, found.stdout + found.stderr


def test_the_dead_code_check_sees_dead_code(tmp_path):
    """The dead-code check is not blind: an unused function in a copy of a module is reported."""
    module = tmp_path / "sample.py"
    module.write_text("def used():\n    return 1\n\n\ndef never_called():\n    return 2\n\n\nused()\n")
    found = subprocess.run([sys.executable, "-m", "vulture", str(module), "--min-confidence", "60"],
                           capture_output=True, text=True)
    assert "never_called" in found.stdout and "used'" not in found.stdout.replace("never_called", "")
