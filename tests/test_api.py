"""The Python API: every command's logic without click, giving what the command prints as JSON."""

import json
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from conftest import finish_subjects, make_files, write_description

import fmriprep_cleanup as fc
from fmriprep_cleanup.cli import cli

WORK = {f"work/fmriprep_23_2_wf/sub_{s}_wf/n{n}/out.nii.gz": 1000 + n for s in ("01", "02") for n in range(3)}


@pytest.fixture
def project(tmp_path):
    out = tmp_path / "out"
    write_description(out)
    make_files(out, {"sub-01/anat/sub-01_desc-preproc_T1w.nii.gz": 5000,
                     "sub-02/func/sub-02_task-x_desc-confounds_timeseries.tsv": 300, **WORK})
    finish_subjects(out, ["01", "02"])
    return out


def command_json(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_report_status_and_explain_are_the_commands_json(project):
    plan = fc.open_plan(str(project), participant_labels=["sub-01"])
    report = fc.make_report(plan)
    printed = command_json("report", project, "--participant-label", "01", "--format", "json")
    assert {k: v for k, v in report.items() if k != "command"} == {k: v for k, v in printed.items() if k != "command"}
    assert report["command"] is None and report["participant_labels"] == ["01"]
    assert report["totals"]["junk_bytes"] == sum(size for path, size in WORK.items() if "sub_01" in path)
    status = fc.make_status(fc.open_plan(str(project)))
    printed = command_json("status", project, "--format", "json")
    for row in status["subjects"] + printed["subjects"]:
        assert row.pop("idle_seconds") > 0  # since the runs ended: a little more at the second look
    assert status == printed
    assert [row["status"] for row in status["subjects"]] == ["finished", "finished"]
    why = fc.explain(fc.open_plan(str(project)), ["sub-01.html"])
    assert why == command_json("explain", project, "sub-01.html", "--format", "json")


def test_clean_dry_run_and_delete_from_python_match_the_command(project, tmp_path):
    history = tmp_path / "h.sqlite"
    preview = fc.clean(fc.open_plan(str(project)))
    assert preview.mode == "dry-run" and preview.outcome["bytes"] == sum(WORK.values())
    assert not history.exists()  # a dry run is not recorded unless asked
    printed = command_json("clean", project, "--format", "json")
    assert printed == preview.as_dict()
    done = fc.clean(fc.open_plan(str(project)), fc.CleanOptions(mode="delete"), history=str(history))
    assert done.exit_status == 0 and done.outcome["files"] == len(WORK)
    assert not (project / "work" / "fmriprep_23_2_wf").exists()
    runs = fc.history(str(history))
    assert [(run["mode"], run["bytes"]) for run in runs["runs"]] == [("delete", sum(WORK.values()))]
    assert runs == command_json("history", "--history", history, "--format", "json")


def test_audit_schedule_and_rule_sets(project, tmp_path):
    site = fc.audit([str(tmp_path)], energy={"country": "FR"})
    printed = command_json("audit", tmp_path, "--country", "FR", "--format", "json")
    assert site.pop("created")[:4] == printed.pop("created")[:4] == time.strftime("%Y")  # made a moment apart
    assert site == printed and [row["path"] for row in site["datasets"]] == [str(project)]
    assert site["energy_assumptions"]["country"] == "FR"
    policy = tmp_path / "p.yaml"
    policy.write_text(f"version: 1\ndatasets:\n  - paths: ['{project}']\n    mode: dry-run\n")
    assert fc.schedule("sbatch", str(policy)).startswith("#!/bin/bash\n")
    names = [name for name, _ in fc.rule_sets()]
    assert names == sorted(names) and {"default", "fmriprepcleanup", "volume-only", "workdir-only",
                                       "qsiprep-default", "xcp_d-minimal"} <= set(names)


def test_bad_input_raises_the_commands_one_line_error(tmp_path):
    with pytest.raises(fc.CleanupError, match="no such directory"):
        fc.open_plan(str(tmp_path / "nowhere"))
    with pytest.raises(fc.CleanupError, match="contradict"):
        fc.open_plan(str(tmp_path), work_dir=str(tmp_path), find_work_dir=False)
    with pytest.raises(fc.CleanupError, match="unknown scheduler 'at'"):
        fc.schedule("at", str(tmp_path / "p.yaml"))
    with pytest.raises(fc.CleanupError, match="p.yaml: No such file"):
        fc.schedule("cron", str(tmp_path / "p.yaml"))


def test_importing_the_package_imports_no_stage_until_a_name_is_used():
    code = ("import sys, fmriprep_cleanup as fc; before = sorted(m for m in sys.modules if m.startswith('fmriprep_cleanup'));"
            "fc.open_plan; print(before, 'fmriprep_cleanup.api' in sys.modules)")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "['fmriprep_cleanup', 'fmriprep_cleanup.basics', 'fmriprep_cleanup.basics.lazy'] True"


def test_no_public_name_of_a_stage_is_also_one_of_its_modules():
    """A face naming ``clean`` in a package with a clean.py would give the function or the module depending on
    what was imported before: every public name must be unambiguous."""
    import importlib
    import pkgutil

    for package in ("fmriprep_cleanup", *(f"fmriprep_cleanup.{name}" for name in
                    ("basics", "energy", "fmriprep", "rules", "plan", "act", "ops", "report"))):
        module = importlib.import_module(package)
        modules = {info.name for info in pkgutil.iter_modules(module.__path__)}
        assert not modules & set(dir(module)) - {"__version__"}, package
        for name in dir(module):
            assert getattr(module, name) is not None, f"{package}.{name}"


def test_report_in_processes_is_deprecated_and_still_the_report(tmp_path):
    """The one-release rule for the Python API: the old function still gives the same report, and says so."""
    import warnings

    fc.demo(str(tmp_path / "demo"))
    out = tmp_path / "demo" / "ds003752"
    options = fc.plan_options(str(out), find_work_dir=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = fc.report_in_processes(options, 2)
    assert any(issubclass(item.category, DeprecationWarning) for item in caught)
    new = fc.make_report(fc.open_plan(**options, jobs=2))
    assert old == new and old["totals"]["files"] > 0
