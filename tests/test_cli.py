import csv
import io
import json
import os

import pytest
from click.testing import CliRunner
from conftest import cli as run
from conftest import finish_subjects, make_files, write_description

from fmriprep_cleanup.cli import cli, expand_participant_labels


@pytest.fixture
def project(tmp_path):
    out = tmp_path / "out"
    write_description(out, "23.2.0")
    make_files(out, {
        "sub-01.html": 1000, "sub-02.html": 1000,
        "sub-01/anat/sub-01_desc-preproc_T1w.nii.gz": 5000,
        "sub-02/func/sub-02_task-x_desc-confounds_timeseries.tsv": 300,
        "sub-02/func/sub-02_task-x_hemi-L_space-fsaverage_bold.func.gii": 700,
        "sourcedata/freesurfer/fsaverage/surf/lh.white": 4000,
        "sourcedata/freesurfer/sub-01/surf/lh.white": 2000,
        "work/fmriprep_23_2_wf/sub_01_wf/n/_node.pklz": 100_000,
        "work/fmriprep_23_2_wf/sub_02_wf/n/out.nii.gz": 200_000,
    })
    finish_subjects(out, ["01", "02"])
    return out


def test_report_json_contract(project):
    result = run("report", project, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["schema_version"] == 1
    assert data["dataset"]["path"] == str(project) and data["dataset"]["layout"] == "bids"
    assert data["dataset"]["fmriprep_version"] == "23.2.0"
    assert data["rules"] == ["default", "workdir-only"]
    totals = data["totals"]
    description = os.path.getsize(project / "dataset_description.json")
    run_configs = {p.parts[-4]: p.stat().st_size for p in project.rglob("fmriprep.toml")}  # sub-01, sub-02
    assert totals["bytes"] == 1000 + 1000 + 5000 + 300 + 700 + 4000 + 2000 + 100_000 + 200_000 + description + sum(run_configs.values())
    assert (totals["junk_files"], totals["junk_bytes"]) == (3, 304_000)
    assert totals["keep_bytes"] + totals["junk_bytes"] == totals["bytes"]
    assert set(totals) == {"files", "bytes", "allocated_bytes", "keep_files", "keep_bytes", "junk_files", "junk_bytes",
                           "junk_linked_bytes", "annexed_bytes", "elsewhere_bytes", "junk_elsewhere_bytes",
                           "in_git_bytes", "junk_in_git_bytes"}
    assert totals["elsewhere_bytes"] == totals["junk_elsewhere_bytes"] == 0  # no git-annex here
    by_category = {row["category"]: row for row in data["by_category"]}
    assert by_category["working directory"]["junk_bytes"] == 300_000
    assert by_category["FreeSurfer templates"]["junk_bytes"] == 4000
    assert data["by_category"][0]["category"] == "working directory"  # largest junk first
    by_subject = {row["subject"]: row for row in data["by_subject"]}
    assert by_subject["01"]["bytes"] == 1000 + 5000 + 2000 + 100_000 + run_configs["sub-01"]
    assert by_subject[None]["files"] == 2  # dataset_description.json and the fsaverage file
    assert sum(row["bytes"] for row in data["by_subject"]) == totals["bytes"]
    assert data["warnings"] == []


def test_report_text_and_csv_agree_with_json(project, tmp_path):
    data = json.loads(run("report", project, "--format", "json").output)
    text = run("report", project)
    assert text.exit_code == 0
    assert "fMRIPrep 23.2.0 · BIDS layout" in text.output
    assert "working directory" in text.output and "sub-02" in text.output
    assert "Reclaimable: 296.9 KiB" in text.output  # 304,000 bytes
    result = run("report", project, "--format", "csv", "--output", tmp_path / "r.csv")
    assert result.exit_code == 0 and result.output == ""
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert rows[-1]["category"] == "Total" and int(rows[-1]["junk_bytes"]) == data["totals"]["junk_bytes"]
    assert [r["category"] for r in rows[:-1]] == [r["category"] for r in data["by_category"]]
    energy = {r["category"]: r for r in data["energy"]["by_category"]}
    for row in rows[:-1]:
        assert int(row["bytes"]) == energy[row["category"]]["bytes"]
        assert float(row["junk_kgco2e_per_year"]) == energy[row["category"]]["junk_kgco2e_per_year"]


def test_plan_tsv_and_jsonl(project):
    result = run("plan", project)
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == "action\tcategory\trule_id\tsize\tpath"
    rows = [line.split("\t") for line in lines[1:]]
    assert len(rows) == 12 and len({row[4] for row in rows}) == 12
    work = [row for row in rows if "_node.pklz" in row[4]][0]
    assert work == ["junk", "working directory", "workdir", "100000", str(project / "work/fmriprep_23_2_wf/sub_01_wf/n/_node.pklz")]
    junk_only = run("plan", project, "--action", "junk", "--format", "jsonl")
    records = [json.loads(line) for line in junk_only.output.splitlines()]
    assert {r["action"] for r in records} == {"junk"} and len(records) == 3
    assert {r["subject"] for r in records} == {"01", "02", None}


def test_plan_escapes_tabs_and_newlines_in_names(project):
    make_files(project / "sub-01", ["odd\tname\nhere.txt"])
    lines = run("plan", project).output.splitlines()
    assert any(line.endswith("sub-01/odd\\tname\\nhere.txt") for line in lines)
    assert len(lines) == 14


def test_participant_labels_bids_apps_style(project):
    data = json.loads(run("report", project, "--participant-label", "02", "--format", "json").output)
    assert [row["subject"] for row in data["by_subject"]] == ["02"]
    assert data["participant_labels"] == ["02"]
    both = json.loads(run("report", project, "--format", "json", "--participant-label", "sub-01", "02").output)
    assert [row["subject"] for row in both["by_subject"]] == ["01", "02"]


def test_keep_and_junk_globs(project):
    result = run("plan", project, "--junk", "*.func.gii", "--junk", "sub-01.html", "--keep", "sub-01.html", "--action", "junk")
    junk = {line.split("\t")[4] for line in result.output.splitlines()[1:]}
    assert str(project / "sub-02/func/sub-02_task-x_hemi-L_space-fsaverage_bold.func.gii") in junk
    assert str(project / "sub-01.html") not in junk  # --keep beats --junk


def test_explain(project):
    result = run("explain", project, project / "sub-02/func/sub-02_task-x_desc-confounds_timeseries.tsv",
                 "sourcedata/freesurfer/fsaverage/surf/lh.white")
    assert result.exit_code == 0, result.output
    assert "entities  subject=02 task=x suffix=timeseries datatype=func extension=.tsv desc=confounds" in result.output
    assert 'KEEP · category "confounds" · rule confounds (workdir-only)' in result.output
    assert 'JUNK · category "FreeSurfer templates" · rule freesurfer-templates (default)' in result.output
    data = json.loads(run("explain", project, "work/fmriprep_23_2_wf/sub_02_wf/n/out.nii.gz", "--format", "json").output)
    assert data[0]["scope"] == "workdir" and data[0]["subject"] == "02" and data[0]["action"] == "junk"


def test_explain_refuses_files_outside_the_dataset(project, tmp_path):
    make_files(tmp_path, ["elsewhere.txt"])
    result = run("explain", project, tmp_path / "elsewhere.txt")
    assert result.exit_code == 2
    assert result.output.startswith("fmriprep-cleanup: error: ") and "outside the dataset's roots" in result.output


def test_rules_list_show_validate(tmp_path):
    listed = run("rules", "list")
    assert listed.exit_code == 0
    for name in ("default", "workdir-only", "fmriprepcleanup", "volume-only"):
        assert name in listed.output
    shown = run("rules", "show", "volume-only")
    assert shown.exit_code == 0
    rule_ids = [line.split()[1] for line in shown.output.splitlines() if line[:3].strip().isdigit()]
    assert rule_ids.index("surfaces-junk") < rule_ids.index("freesurfer-templates") < rule_ids.index("workdir")
    assert len(rule_ids) == 27  # volume-only 2, default 2, workdir-only 23 (3 for stale caches, 1 for orphaned ones)
    good = tmp_path / "good.yaml"
    good.write_text("version: 1\nname: good\nextends: default\nrules:\n  - {id: a, action: junk, category: c, why: w, match: {suffix: bold}}\n")
    ok = run("rules", "validate", good)
    assert ok.exit_code == 0 and "OK, 26 rules (with default, workdir-only)" in ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: bad\nrules:\n  - {id: a, action: junk, category: c, why: w, match: {spaec: x}}\n")
    failed = run("rules", "validate", bad)
    assert failed.exit_code == 2
    assert f"{bad}:4: rule 'a': unknown condition or entity 'spaec' (did you mean 'space'?)" in failed.output


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "no such directory"),
        (lambda p: make_files(p.parent, [p.name]), "is a file, not a directory"),
        (lambda p: os.makedirs(p), "is empty"),
        (lambda p: write_description(p, name="HALFpipe"), "names 'HALFpipe', not fMRIPrep"),
        (lambda p: make_files(p, {"dataset_description.json": 3}), "dataset_description.json:1: not valid JSON"),
    ],
)
def test_bad_paths_exit_2_with_one_line(tmp_path, make, message):
    path = tmp_path / "target"
    make(path)
    for command in (["report"], ["plan"], ["explain"]):
        args = command + [path] + (["x"] if command == ["explain"] else [])
        result = run(*args)
        assert result.exit_code == 2
        assert len(result.output.strip().splitlines()) == 1 and message in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--rules", "nosuch"], "unknown rule set 'nosuch'"),
        (["--junk", "a/[b"], "--junk a/[b: bad glob"),
        (["--work-dir", "/nonexistent/work"], "no such directory"),
    ],
)
def test_bad_options_exit_2(project, args, message):
    result = run("report", project, *args)
    assert result.exit_code == 2 and message in result.output


def test_unwritable_output_is_one_line(project, tmp_path):
    result = run("report", project, "--output", tmp_path / "missing-dir" / "r.json")
    assert result.exit_code == 2 and "cannot write" in result.output


def test_output_into_a_pipe_or_through_a_link_writes_into_it_and_keeps_it(project, tmp_path):
    """-o /dev/null, -o /dev/stdout, -o FIFO: the output goes into what is there, which stays what it was (an
    atomic replace would put a regular file in its place: as root, /dev/null itself)."""
    import stat
    import threading

    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    result = run("report", project, "--format", "json", "-o", fifo)
    reader.join(timeout=10)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the pipe was replaced by a file"
    assert received and json.loads(received[0])["dataset"]["path"] == str(project)
    target, link = tmp_path / "kept.json", tmp_path / "link.json"
    target.write_text("old")
    link.symlink_to(target)
    assert run("report", project, "--format", "json", "-o", link).exit_code == 0
    assert link.is_symlink() and json.loads(target.read_text())["dataset"]["path"] == str(project)


def test_demo_builds_and_reports(tmp_path):
    result = run("demo", "--dir", tmp_path / "demo", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["dataset"]["fmriprep_version"] == "23.2.0"
    assert data["totals"]["files"] > 8000 and data["totals"]["junk_bytes"] > 10 * 1024**3
    assert (tmp_path / "demo" / "ds003752" / "sub-01.html").exists()
    text = run("demo")
    assert text.exit_code == 0 and "Reclaimable:" in text.output and "was removed" in text.output


def test_expand_participant_labels():
    assert expand_participant_labels(["report", "p", "--participant-label", "01", "02", "--format", "json"]) == [
        "report", "p", "--participant-label", "01", "--participant-label", "02", "--format", "json"]
    assert expand_participant_labels(["plan", "--participant-label", "01", "./out"]) == ["plan", "--participant-label", "01", "./out"]


def test_progress_only_on_a_terminal(monkeypatch, capsys):
    import fmriprep_cleanup.cli.common as cli_module

    clock = iter(range(0, 10_000))
    monkeypatch.setattr(cli_module.sys.stderr, "isatty", lambda: True)
    progress = cli_module.Progress(enabled=True)
    progress._clock, progress._next = (lambda: next(clock)), 0
    for _ in range(2048):
        progress(1, 1024)
    progress.done()
    shown = capsys.readouterr().err
    assert "scanning: 1 file, 1.0 KiB" in shown and "scanning: 2,048 files, 2.0 MiB" in shown
    quiet = cli_module.Progress(enabled=False)  # --quiet
    for _ in range(2048):
        quiet(1, 1)
    assert capsys.readouterr().err == ""


def test_report_prints_no_progress_when_not_a_terminal(project):
    result = CliRunner().invoke(cli, ["report", str(project)])  # output holds stdout and stderr
    assert result.exit_code == 0 and "scanning" not in result.output  # the progress line says "scanning: ..."


@pytest.mark.parametrize("command", ["report", "plan", "status"])
def test_a_raw_bids_root_or_a_parent_gets_a_did_you_mean(project, tmp_path, command):
    raw = tmp_path / "raw"
    (raw / "sub-01" / "anat").mkdir(parents=True)
    (raw / "dataset_description.json").write_text('{"Name": "raw", "BIDSVersion": "1.8.0"}')
    (raw / "derivatives").mkdir()
    os.rename(project, raw / "derivatives" / "fmriprep")
    result = run(command, raw)
    assert result.exit_code == 2
    assert f"did you mean {raw / 'derivatives' / 'fmriprep'}?" in result.output
    parent = run(command, tmp_path)  # a folder of datasets: the same hint
    assert parent.exit_code == 2 and f"did you mean {raw / 'derivatives' / 'fmriprep'}?" in parent.output
    (raw / "derivatives" / "fmriprep2").mkdir()
    lonely = tmp_path / "empty"
    lonely.mkdir()
    assert "did you mean" not in run(command, lonely).output  # nothing below: no hint


def test_audit_progress_names_the_dataset_being_scanned(project, tmp_path, monkeypatch, capsys):
    import fmriprep_cleanup.cli.common as cli_module
    from fmriprep_cleanup.api import audit

    monkeypatch.setattr(cli_module.sys.stderr, "isatty", lambda: True)
    progress = cli_module.Progress(enabled=True)
    told = []
    audit([str(tmp_path)], progress=progress.callback(),
          announce=lambda path, number, total: (told.append((path, number, total)), progress.dataset(path, number, total)))
    progress.done()
    assert told == [(str(project), 1, 1)]
    assert f"scanning 1/1 {project}" in capsys.readouterr().err


def visible_options():
    """Every visible option of every visible leaf command: {option name: {command path: help text}}."""
    import click

    found: dict[str, dict[str, str]] = {}

    def walk(command, path):
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                if not sub.hidden:
                    walk(sub, [*path, name])
            return
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                found.setdefault(param.opts[0], {})[" ".join(path)] = param.help or ""

    walk(cli, [])
    return found


# Names whose help differs by command, with the words every command's help starts with: one meaning, the
# command's own choices (formats, modes, what a shard is a share of, a schedule's default log).
SAME_MEANING_OWN_CHOICES = {"--format": "Output format: ", "--mode": "dry-run ", "--shard": "Do only shard K of N (",
                            "--log": "Append one JSON object per dataset, and a final summary, to FILE (JSON lines",
                            "--archive-dir": "Where archives go (needed for --"}


def test_each_option_name_means_one_thing_in_every_command():
    options = visible_options()
    assert len(options) > 40  # the walk saw the whole tool
    for name, helps in options.items():
        assert all(helps.values()), f"{name} has no help in {[c for c, h in helps.items() if not h]}"
        if len(set(helps.values())) > 1:
            assert name in SAME_MEANING_OWN_CHOICES, f"{name} reads differently in {sorted(helps)}"
            assert all(text.startswith(SAME_MEANING_OWN_CHOICES[name]) for text in helps.values()), (name, helps)
    assert "--only" in options and set(options["--only"]) == {"status"}  # plan's and merge's --only is --action
    assert {"report", "plan", "status", "explain", "regenerate", "audit", "history"} <= set(options["--output"])


def test_status_explain_and_regenerate_write_to_output_files(project, tmp_path):
    for command, extra in (("explain", [str(project / "sub-01.html")]), ("status", ["--format", "tsv"])):
        written = tmp_path / f"{command}.out"
        result = run(command, project, *extra, "-o", written)
        assert result.exit_code == 0 and result.stdout == ""
        first_columns = [line.split("\t")[:2] for line in written.read_text().splitlines()]  # not the idle time
        assert first_columns == [line.split("\t")[:2] for line in run(command, project, *extra).stdout.splitlines()]
        assert len(first_columns) > 2


@pytest.mark.parametrize("action", [None, "keep", "junk"])
def test_plan_lines_made_a_folder_at_a_time_equal_lines_made_row_by_row(project, action):
    """TSV lines made from a folder's names and lstat results are the lines of its plan rows: names to escape, a
    path to escape, a symlink in the folder (its record is not an lstat result), two subjects' memoised folders."""
    from fmriprep_cleanup.api import open_plan
    from fmriprep_cleanup.plan.rows import planned_files
    from fmriprep_cleanup.report.planfile import folder_lines, plan_line

    make_files(project / "sub-01", ["odd\tname\nhere.txt", "back\\slash.txt"])
    make_files(project / "sub-02/func\tdir", {"sub-02_task-y_desc-confounds_timeseries.tsv": 40})
    make_files(project / "sub-01/func", {"sub-01_task-x_desc-confounds_timeseries.tsv": 30,
                                         "sub-01_task-x_hemi-L_space-fsaverage_bold.func.gii": 50})
    os.symlink("sub-01_task-x_desc-confounds_timeseries.tsv", project / "sub-01/func/sub-01_link.tsv")
    plan = open_plan(str(project), jobs=1)
    folders = list(plan.folders())
    by_folder = [folder_lines(classified, "tsv", action) for classified in folders]
    by_row = [[plan_line(row, "tsv") for row in planned_files(classified) if action is None or row.action == action]
              for classified in folders]
    assert [text for text, _ in by_folder] == ["".join(lines) for lines in by_row]
    assert [count for _, count in by_folder] == [len(lines) for lines in by_row]
    text = "".join(text for text, _ in by_folder)
    assert ("odd\\tname\\nhere.txt" in text and "back\\\\slash.txt" in text) == (action != "junk")
    assert "func\\tdir/" in text or action == "junk"
