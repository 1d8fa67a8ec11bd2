"""Unattended runs over several datasets, the site audit, the run history and scheduling recipes."""

import json
import os
import subprocess
import sys

import pytest
from conftest import DATA, ci_listing, finish_subjects, make_files, write_description
from conftest import cli as run

from fmriprep_cleanup.act.lock import RunLock
from fmriprep_cleanup.ops.history import History, RunRecord, totals

OLD = 1_600_000_000


def build_dataset(root, listing="ds005_outputs.txt", subjects=("01",)):
    """A real fMRIPrep output (from fMRIPrep's CI lists, small files) with a working directory inside it."""
    write_description(root)
    make_files(root, {path: 100 + len(path) for path in ci_listing(DATA / listing) if path != "dataset_description.json"})
    for subject in subjects:
        make_files(root / "work", {f"fmriprep_25_0_wf/sub_{subject}_wf/node{n}/out.nii.gz": 5000 + n for n in range(5)})
    for dirpath, _, names in os.walk(root):
        for name in names:
            os.utime(os.path.join(dirpath, name), (OLD, OLD))
    finish_subjects(root, subjects)
    return root


def tree_state(root):
    return {os.path.join(d, n): os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(root) for n in names
            if ".fmriprep-cleanup" not in d}


def write_policy(path, text):
    path.write_text(text)
    return path


@pytest.fixture
def area(tmp_path):
    datasets = {name: build_dataset(tmp_path / "area" / name / "fmriprep") for name in ("alpha", "beta", "gamma")}
    return tmp_path, datasets


def test_policy_runs_each_entry_on_its_own_datasets(area):
    tmp_path, datasets = area
    before = {name: tree_state(path) for name, path in datasets.items()}
    policy = write_policy(tmp_path / "hygiene.yaml", f"""\
version: 1
datasets:
  - name: look
    paths: ["{datasets['alpha']}"]
    mode: dry-run
  - name: keep-a-copy
    paths: ["{datasets['beta']}"]
    mode: archive
    archive_dir: {tmp_path / 'archives'}
  - name: tidy
    paths: ["{tmp_path}/area/gam*/fmriprep"]
    mode: delete
""")
    history = tmp_path / "history.sqlite"
    result = run("run", policy, "--log", tmp_path / "log.jsonl", "--history", history)
    assert result.exit_code == 0, result.output
    assert tree_state(datasets["alpha"]) == before["alpha"]  # dry run
    for name in ("beta", "gamma"):
        after = tree_state(datasets[name])
        assert not any("/work/" in path for path in after)
        assert {p: s for p, s in before[name].items() if "/work/" not in p} == after  # only the junk went
    assert list((tmp_path / "archives").glob("*/sub-01.tar"))
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [entry.get("entry") for entry in log[:-1]] == ["look", "keep-a-copy", "tidy"]
    assert [entry["status"] for entry in log[:-1]] == ["ok", "ok", "ok"]
    assert log[-1]["summary"] and log[-1]["ok"] == 3 and log[-1]["exit_status"] == 0
    rows = History(str(history)).runs()
    assert [(row["dataset"], row["mode"]) for row in rows] == [(str(datasets["beta"]), "archive"), (str(datasets["gamma"]), "delete")]
    assert rows[0]["bytes"] == sum(5000 + n for n in range(5)) == rows[1]["bytes"]
    assert totals(rows)["overall"]["bytes"] == 2 * rows[0]["bytes"]


def test_a_failing_dataset_does_not_stop_the_others(area):
    tmp_path, datasets = area
    (datasets["beta"] / "dataset_description.json").write_text("{broken")
    policy = write_policy(tmp_path / "p.yaml", f"""\
version: 1
datasets:
  - paths: ["{datasets['alpha']}", "{datasets['beta']}", "{datasets['gamma']}", "{tmp_path}/nowhere"]
    mode: delete
""")
    result = run("run", policy, "--history", tmp_path / "h.sqlite")
    assert result.exit_code == 4
    assert "FAILED     " + str(datasets["beta"]) in result.output and "not valid JSON" in result.output
    assert "no such directory" in result.output
    assert not (datasets["alpha"] / "work" / "fmriprep_25_0_wf").exists()
    assert not (datasets["gamma"] / "work" / "fmriprep_25_0_wf").exists()
    assert "4 datasets: 2 ok, 0 incomplete, 0 skipped, 2 failed" in result.output


def test_a_locked_dataset_is_skipped_not_waited_on(area):
    tmp_path, datasets = area
    before = tree_state(datasets["alpha"])
    policy = write_policy(tmp_path / "p.yaml", f"version: 1\ndatasets:\n  - paths: ['{datasets['alpha']}', '{datasets['beta']}']\n    mode: delete\n")
    with RunLock(str(datasets["alpha"] / ".fmriprep-cleanup")):
        result = run("run", policy, "--history", tmp_path / "h.sqlite")
    assert result.exit_code == 3
    assert "SKIPPED" in result.output and "another fmriprep-cleanup run is working on this dataset" in result.output
    assert tree_state(datasets["alpha"]) == before
    assert not (datasets["beta"] / "work" / "fmriprep_25_0_wf").exists()


def test_thresholds_are_honoured(area):
    tmp_path, datasets = area
    before = tree_state(datasets["alpha"])
    high = write_policy(tmp_path / "high.yaml", f"version: 1\ndatasets:\n  - paths: ['{datasets['alpha']}']\n    mode: delete\n    threshold: {{bytes: 1GB}}\n")
    result = run("run", high, "--history", tmp_path / "h.sqlite")
    assert result.exit_code == 3 and "below the threshold" in result.output
    assert tree_state(datasets["alpha"]) == before
    by_share = write_policy(tmp_path / "share.yaml", f"version: 1\ndatasets:\n  - paths: ['{datasets['alpha']}']\n    mode: delete\n    threshold: {{share: 0.01}}\n")
    result = run("run", by_share, "--history", tmp_path / "h.sqlite")
    assert result.exit_code == 0 and not (datasets["alpha"] / "work" / "fmriprep_25_0_wf").exists()


def test_running_subject_is_untouched(area):
    tmp_path, datasets = area
    build_dataset(tmp_path / "busy", subjects=("01", "02"))
    os.utime(tmp_path / "busy/work/fmriprep_25_0_wf/sub_02_wf/node3/out.nii.gz", None)  # still being written
    policy = write_policy(tmp_path / "p.yaml", f"version: 1\ndatasets:\n  - paths: ['{tmp_path / 'busy'}']\n    mode: delete\n")
    result = run("run", policy, "--history", tmp_path / "h.sqlite")
    assert result.exit_code == 0, result.output  # the rules keep a running subject's working directory
    assert len(list((tmp_path / "busy/work/fmriprep_25_0_wf/sub_02_wf").rglob("*.gz"))) == 5
    assert not (tmp_path / "busy/work/fmriprep_25_0_wf/sub_01_wf").exists()


@pytest.mark.parametrize(
    "text, message",
    [
        ("version: 1\ndatasets:\n  - paths: [/x]\n    mode: nuke\n", r"p.yaml:4: entry '/x': unknown mode 'nuke'"),
        ("version: 1\ndatasets:\n  - paths: [/x]\n    mode: archive\n", r"p.yaml:4: entry '/x': mode archive needs archive_dir"),
        ("version: 1\ndatasets:\n  - paths: [/x]\n    mode: delete\n    min_age: soon\n", r"p.yaml:5: entry '/x': min_age: not a duration"),
        ("version: 1\ndatasets:\n  - paths: [/x]\n    mode: delete\n    treshold: {bytes: 1GB}\n", r"p.yaml:5: entry '/x': unknown key 'treshold' \(did you mean 'threshold'\?\)"),
        ("version: 1\ndatasets:\n  - paths: [/x]\n    mode: delete\n    rules: [nosuch]\n", r"p.yaml:3: entry '/x': rules: unknown rule set 'nosuch'"),
        ("version: 1\ndatasets: []\n", r"p.yaml:2: datasets: expected a non-empty list"),
        ("version: 1\ndatasets:\n  - mode: delete\n", r"p.yaml:3: entry '#1': missing 'paths'"),
    ],
)
def test_malformed_policy_is_rejected_before_anything_runs(area, text, message):
    tmp_path, datasets = area
    before = tree_state(datasets["alpha"])
    policy = write_policy(tmp_path / "p.yaml", text + f"  - paths: ['{datasets['alpha']}']\n    mode: delete\n" if "datasets: []" not in text else text)
    result = run("run", policy, "--history", tmp_path / "h.sqlite")
    assert result.exit_code == 2
    import re
    assert re.search(message, result.output), result.output
    assert tree_state(datasets["alpha"]) == before


def test_audit_finds_nested_and_sibling_datasets_and_counts_each_file_once(tmp_path):
    area = tmp_path / "area"
    bids = build_dataset(area / "labA" / "derivatives" / "fmriprep")
    os.rename(bids / "work", area / "labA" / "derivatives" / "work")  # -w beside the output
    legacy = area / "labB" / "out"
    write_description(legacy / "fmriprep", "20.2.7")
    make_files(legacy, {"fmriprep/sub-01/anat/sub-01_desc-preproc_T1w.nii.gz": 1000, "freesurfer/fsaverage/surf/lh.white": 300,
                        "freesurfer/sub-01/surf/lh.white": 200})
    raw = area / "labC" / "rawdata"
    (raw).mkdir(parents=True)
    (raw / "dataset_description.json").write_text('{"Name": "raw", "BIDSVersion": "1.8.0"}')
    nested = build_dataset(raw / "derivatives" / "fmriprep", listing="ds054_outputs.txt")
    alone = area / "scratch" / "w"
    make_files(alone, {"fmriprep_23_2_wf/sub_09_wf/n/out.nii.gz": 777})
    result = run("audit", area, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    paths = {row["path"]: row for row in data["datasets"]}
    assert set(paths) == {str(bids), str(legacy), str(nested), str(alone)}
    assert paths[str(bids)]["workdirs"] == [str(area / "labA" / "derivatives" / "work")]
    assert paths[str(legacy)]["layout"] == "legacy" and paths[str(legacy)]["fmriprep_version"] == "20.2.7"
    counted = sum(row["files"] for row in data["datasets"])
    on_disk = sum(len(names) for d, _, names in os.walk(area) if not d.startswith(str(raw)) or "/derivatives/" in d)
    assert counted == on_disk  # every file of every dataset once (the raw dataset's own file is not fMRIPrep's)
    assert [row["junk_bytes"] for row in data["datasets"]] == sorted((row["junk_bytes"] for row in data["datasets"]), reverse=True)
    assert paths[str(bids)]["owner"] and paths[str(bids)]["subjects"] == 1
    csv_out = run("audit", area, "--format", "csv").output.splitlines()
    assert csv_out[0].startswith("path,owner,fmriprep_version") and len(csv_out) == 5
    page = tmp_path / "site.html"
    assert run("audit", area, "--format", "html", "--output", page).exit_code == 0
    assert str(legacy) in page.read_text() and "src=" not in page.read_text()


def test_history_rows_totals_and_since(tmp_path):
    database = History(str(tmp_path / "h.sqlite"))
    for started, mode, nbytes in ((1_700_000_000, "archive", 100), (1_800_000_000, "delete", 50), (1_800_000_100, "dry-run", 999)):
        database.add(RunRecord(started, started + 5, "/d", "default", mode, 3, nbytes, 0, 0, 1.5, 0.5, 0))
    database.close()
    data = json.loads(run("history", "--history", tmp_path / "h.sqlite", "--format", "json").output)
    assert len(data["runs"]) == 3 and data["totals"]["overall"]["bytes"] == 150 and data["totals"]["overall"]["runs"] == 2
    since = json.loads(run("history", "--history", tmp_path / "h.sqlite", "--format", "json", "--since", "2025-01-01").output)
    assert [row["bytes"] for row in since["runs"]] == [50, 999]
    text = run("history", "--history", tmp_path / "h.sqlite").output
    assert "In all: 150 B reclaimed in 2 runs" in text
    assert run("history", "--history", tmp_path / "h.sqlite", "--format", "csv").output.splitlines()[0].startswith("id,started,finished")
    assert run("history", "--history", tmp_path / "h.sqlite", "--since", "someday").exit_code == 2


def test_concurrent_writers_lose_no_rows(tmp_path):
    database = tmp_path / "h.sqlite"
    writer = (
        "import sys; from fmriprep_cleanup.ops.history import History, RunRecord\n"
        "h = History(sys.argv[1])\n"
        "for i in range(60): h.add(RunRecord(i, i + 1, sys.argv[2], 'default', 'delete', 1, 10, 0, 0, 0.1, 0.1, 0))\n"
    )
    processes = [subprocess.Popen([sys.executable, "-c", writer, str(database), f"/d{n}"]) for n in range(3)]
    assert [process.wait() for process in processes] == [0, 0, 0]
    rows = History(str(database)).runs()
    assert len(rows) == 180 and {row["dataset"] for row in rows} == {"/d0", "/d1", "/d2"}


def test_history_schema_is_versioned_and_refuses_a_newer_one(tmp_path):
    import sqlite3

    path = tmp_path / "h.sqlite"
    History(str(path)).close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 2
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA user_version = 99")
    connection.commit()
    connection.close()
    result = run("history", "--history", path)
    assert result.exit_code == 2 and "newer fmriprep-cleanup" in result.output


def test_a_version_1_history_migrates_forward_keeping_its_rows(tmp_path):
    import sqlite3

    from fmriprep_cleanup.ops.history import MIGRATIONS

    path = tmp_path / "h.sqlite"
    connection = sqlite3.connect(path)
    connection.executescript(MIGRATIONS[1] + "; PRAGMA user_version = 1;")
    connection.execute("INSERT INTO runs (started, finished, host, user, dataset, tool_version, rules, mode, files, "
                       "bytes, skipped_files, failed_files, kwh_per_year, kgco2e_per_year, duration, exit_status) "
                       "VALUES (1, 2, 'h', 'u', '/d', '0.1', 'default', 'delete', 3, 4, 0, 0, 0.5, 0.1, 1, 0)")
    connection.commit()
    connection.close()
    rows = History(str(path)).runs()
    assert [(row["dataset"], row["files"], row["bytes"], row["note"]) for row in rows] == [("/d", 3, 4, "")]
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 2


@pytest.mark.parametrize("kind, expected", [("cron", "17 3 * * *"), ("systemd-service", "ExecStart="),
                                            ("systemd-timer", "OnCalendar="), ("scrontab", "#SCRON"),
                                            ("sbatch", "#SBATCH")])
def test_schedule_fills_in_absolute_paths(area, kind, expected):
    tmp_path, datasets = area
    write_policy(tmp_path / "hygiene.yaml", f"version: 1\ndatasets:\n  - paths: ['{datasets['alpha']}']\n    mode: dry-run\n")
    os.chdir(tmp_path)
    result = run("schedule", kind, "hygiene.yaml")
    assert result.exit_code == 0, result.output
    assert expected in result.output
    if kind != "systemd-timer":  # the timer only starts the service
        assert f"run {tmp_path / 'hygiene.yaml'} --log {tmp_path / 'hygiene.log.jsonl'}" in result.output
    broken = write_policy(tmp_path / "broken.yaml", "version: 1\n")
    assert run("schedule", kind, broken).exit_code == 2


def test_clean_and_run_record_the_same_carbon_for_the_same_dataset(tmp_path):
    """A rule file's energy: section counts whether the run came from `clean` or from a policy (`run`)."""
    rules = tmp_path / "green.yaml"
    rules.write_text("version: 1\nname: green\nextends: default\nenergy: {profile: ssd, copies: 3, country: SE}\nrules: []\n")
    by_hand, by_policy = (build_dataset(tmp_path / name / "fmriprep") for name in ("by-hand", "by-policy"))
    history = tmp_path / "h.sqlite"
    assert run("clean", by_hand, "--rules", rules, "--mode", "delete", "--yes", "--history", history).exit_code == 0
    policy = write_policy(tmp_path / "p.yaml", f"version: 1\ndatasets:\n  - paths: ['{by_policy}']\n    rules: ['{rules}']\n"
                                               "    mode: delete\n")
    assert run("run", policy, "--history", history).exit_code == 0
    hand, scheduled = History(str(history)).runs()
    assert hand["bytes"] == scheduled["bytes"] > 0
    assert hand["kgco2e_per_year"] == scheduled["kgco2e_per_year"] > 0
    assert hand["kwh_per_year"] == scheduled["kwh_per_year"]


def test_schedule_emits_exactly_one_submit_ready_recipe(area):
    tmp_path, datasets = area
    write_policy(tmp_path / "hygiene.yaml", f"version: 1\ndatasets:\n  - paths: ['{datasets['alpha']}']\n    mode: dry-run\n")
    script = run("schedule", "sbatch", tmp_path / "hygiene.yaml")
    assert script.stdout.startswith("#!/bin/bash\n") and "#SCRON" not in script.stdout  # sbatch can take it as is
    assert "#SBATCH" not in run("schedule", "scrontab", tmp_path / "hygiene.yaml").stdout
    old = run("schedule", "print", "--sbatch", "--config", tmp_path / "hygiene.yaml")  # the old spelling, one release
    assert old.exit_code == 0 and old.stdout == script.stdout
    assert "deprecated: schedule print --KIND --config FILE is now schedule KIND FILE" in old.stderr
    both = run("schedule", "print", "--cron", "--sbatch", "--config", tmp_path / "hygiene.yaml")
    assert both.exit_code == 2 and "exactly one" in both.stderr
    old = run("schedule", "print", "--slurm", "--config", tmp_path / "hygiene.yaml")
    assert old.exit_code == 2 and "scrontab or sbatch" in old.output


def test_old_spellings_still_work_for_one_release_with_a_note(area):
    tmp_path, datasets = area
    policy = write_policy(tmp_path / "p.yaml", f"version: 1\ndatasets:\n  - paths: ['{datasets['alpha']}']\n    mode: dry-run\n")
    old = run("run", "--config", policy, "--history", tmp_path / "h.sqlite")
    new = run("run", policy, "--history", tmp_path / "h.sqlite")
    assert old.exit_code == new.exit_code == 0 and old.stdout == new.stdout
    assert "deprecated: run --config FILE is now run FILE" in old.stderr and "deprecated" not in new.stderr
    both = run("run", policy, "--config", policy)
    assert both.exit_code == 2 and "give the policy file once" in both.output
    assert run("run").exit_code == 2
    shard = run("clean", datasets["alpha"], "--shard", "1/2", "--format", "json")  # a dry run of half the subjects
    assert shard.exit_code == 0 and "deprecated: clean --shard K/N is now clean --array-task K/N" in shard.stderr
    task = json.loads(run("clean", datasets["alpha"], "--array-task", "1/2", "--format", "json").stdout)
    assert {key: json.loads(shard.stdout)[key] for key in ("files", "bytes")} == {key: task[key] for key in ("files", "bytes")}


def test_prune_acts_only_with_mode_delete_and_asks_without_yes(tmp_path):
    archives = tmp_path / "archives"
    archives.mkdir()
    no_terminal = run("archives", "prune", archives, "--older-than", "1y", "--mode", "delete")
    assert no_terminal.exit_code == 2 and "--mode delete needs --yes when there is no terminal" in no_terminal.output
    old = run("archives", "prune", archives, "--older-than", "1y", "--yes", "--history", tmp_path / "h.sqlite")
    assert old.exit_code == 0 and "Removed 0 run(s)" in old.stdout
    assert "deprecated: archives prune --yes (remove them) is now --mode delete --yes" in old.stderr
    dry = run("archives", "prune", archives, "--older-than", "1y")
    assert dry.exit_code == 0 and "Would remove 0 run(s)" in dry.stdout and "--mode delete removes them" in dry.stdout


def test_plan_only_is_now_action_and_status_keeps_only(area):
    tmp_path, datasets = area
    new = run("plan", datasets["alpha"], "--action", "junk", "-q")
    old = run("plan", datasets["alpha"], "--only", "junk", "-q")
    assert new.exit_code == old.exit_code == 0 and old.stdout == new.stdout
    lines = new.stdout.splitlines()[1:]
    assert lines and all(line.startswith("junk\t") for line in lines)
    assert "deprecated: plan --only keep|junk is now plan --action keep|junk" in old.stderr
    assert "deprecated" not in new.stderr
    assert run("status", datasets["alpha"], "--only", "finished").stderr.count("deprecated") == 0


def test_an_output_whose_description_is_annexed_and_not_here_is_listed_not_silently_skipped(tmp_path):
    """A DataLad clone whose dataset_description.json was not fetched, and nothing else there names the pipeline:
    audit says it found it and could not judge it, and exits 3 - never "0 datasets" with exit 0."""
    clone = tmp_path / "site" / "ds-clone"
    (clone / "sub-01").mkdir(parents=True)
    (clone / "sub-01.html").write_text("<html></html>")
    (clone / "dataset_description.json").symlink_to(
        ".git/annex/objects/Xk/3v/MD5E-s120--0123456789abcdef0123456789abcdef.json/"
        "MD5E-s120--0123456789abcdef0123456789abcdef.json")
    result = run("audit", tmp_path / "site", "--format", "json")
    assert result.exit_code == 3, result.output
    assert f"{clone}: found, not judged" in result.stderr and "datalad get" in result.stderr
    assert json.loads(result.stdout)["failed"] == [str(clone)]
