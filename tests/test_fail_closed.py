"""Fail closed (issue 42): no planted file, repository setting or typo turns a run into loss or escalation.
Each test rebuilds one of the hostile group member's reproductions; every one failed on the code before it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import cli, contents, project

HISTORY = "h.sqlite"


def archive_subject(tmp_path, out, label="01"):
    archives = tmp_path / "archives"
    done = cli("clean", out, "--mode", "archive", "--archive-dir", archives, "--participant-label", label, "--yes",
               "--history", tmp_path / HISTORY)
    assert done.exit_code == 0, done.output
    [run] = [path for path in archives.iterdir() if path.is_dir()]
    return archives, run


# --- 1. a shortened journal -------------------------------------------------------------------------------

def test_1_two_lines_of_a_finished_runs_journal_never_cost_its_verified_archive(tmp_path):
    out = project(tmp_path)
    archives, run = archive_subject(tmp_path, out)
    tar, manifest = run / "sub-01.tar", run / "sub-01.manifest.tsv"
    state = out / ".fmriprep-cleanup"
    [finished] = (state / "journal").glob("*.done.jsonl")
    lines = finished.read_text().splitlines(keepends=True)
    assert json.loads(lines[1])["event"] == "archive-begin"
    state.rename(out / ".aside")  # as a group member: the state folder moved away, a new one made
    (state / "journal").mkdir(parents=True)
    (state / "journal" / f"{run.name}.jsonl").write_text("".join(lines[:2]))
    before = contents(run)
    result = cli("clean", out, "--mode", "delete", "--participant-label", "02", "--yes", "--history", tmp_path / HISTORY)
    assert contents(run) == before and tar.exists() and manifest.exists(), result.output
    assert "not acted on" in result.output, result.output


def killed_delete(out, marker='"removing"', count=1):
    """A real delete run of ``out`` killed (SIGKILL) right after its journal said ``marker``: its journal waits,
    recorded as started in this user's own state."""
    import sys

    from conftest import kill_when_journal_says

    code = "from fmriprep_cleanup.cli import main; main()"
    kill_when_journal_says([sys.executable, "-c", code, "clean", str(out), "--mode", "delete", "--yes", "-q",
                            "--jobs", "1"], marker, count)
    [journal] = [path for path in (out / ".fmriprep-cleanup" / "journal").glob("*.jsonl")
                 if not path.name.endswith(".done.jsonl")]
    return journal


def drop_second(lines, finished):
    return [lines[0]] + lines[2:]


def swap(lines, finished):
    return [lines[0], lines[2], lines[1]] + lines[3:]


def splice(lines, finished):
    return [lines[0], finished[1]] + lines[2:]


def edit(lines, finished):
    record = json.loads(lines[1])
    record["batch"] = 7
    return [lines[0], json.dumps(record) + "\n"] + lines[2:]


@pytest.mark.parametrize("tamper", [drop_second, swap, splice, edit])
def test_1_a_cut_short_journal_with_a_line_dropped_moved_spliced_or_edited_is_never_acted_on(tmp_path, tamper):
    out = project(tmp_path, files=6)
    assert cli("clean", out, "--mode", "delete", "--participant-label", "01", "--yes").exit_code == 0
    [finished] = (out / ".fmriprep-cleanup" / "journal").glob("*.done.jsonl")
    journal = killed_delete(out, '"removed"', 1)
    lines = journal.read_text().splitlines(keepends=True)
    assert len(lines) >= 3
    journal.write_text("".join(tamper(lines, finished.read_text().splitlines(keepends=True))))
    tampered = journal.read_bytes()
    result = cli("clean", out, "--mode", "delete", "--yes", "--format", "json")
    assert journal.read_bytes() == tampered, "the tampered journal was acted on (marked finished)"
    data = json.loads(result.stdout)
    assert data["recovered_files"] == 0
    assert any(str(journal) in warning and "not acted on" in warning for warning in data["warnings"]), data["warnings"]


def test_1_a_journal_cut_short_by_a_real_kill_is_still_finished(tmp_path):
    """The chain holds from the first line: a run killed mid-batch is recovered as before."""
    out = project(tmp_path, files=6)
    journal = killed_delete(out, '"removing"', 1)
    result = cli("clean", out, "--mode", "delete", "--yes", "--format", "json")
    assert result.exit_code == 0, result.output
    assert not journal.exists() and journal.with_name(journal.name.replace(".jsonl", ".done.jsonl")).exists()
    assert not json.loads(result.stdout)["warnings"]


def test_1_a_complete_archive_whose_journal_line_never_came_is_kept(tmp_path, monkeypatch):
    """Killed after the manifest (the commit marker) was renamed into place and before the journal said so:
    recovery keeps the archive and its manifest, and says so."""
    from click.testing import CliRunner

    import fmriprep_cleanup.basics.journal_writer as journal_module
    from fmriprep_cleanup.cli import cli as command_line

    class Killed(BaseException):
        pass

    def killed(*args, **kwargs):
        raise Killed

    out = project(tmp_path)
    original = journal_module.Journal.archive_verified
    monkeypatch.setattr(journal_module.Journal, "archive_verified", killed)
    with pytest.raises(Killed):
        CliRunner().invoke(command_line, ["clean", str(out), "--mode", "archive", "--archive-dir",
                                          str(tmp_path / "a"), "--yes"], catch_exceptions=False)
    monkeypatch.setattr(journal_module.Journal, "archive_verified", original)
    [tar] = (tmp_path / "a").glob("*/*.tar")
    manifest = Path(str(tar)[:-4] + ".manifest.tsv")
    kept = tar.read_bytes(), manifest.read_bytes()
    result = cli("clean", out, "--mode", "delete", "--yes", "--history", tmp_path / HISTORY)
    assert (tar.read_bytes(), manifest.read_bytes()) == kept
    assert "a complete archive of an interrupted run" in result.output, result.output


def earlier_version_journal(state, run, records):
    """A journal as versions before the chain wrote it: each line sealed alone, bound to its state folder."""
    from fmriprep_cleanup.basics.formats import strict_json
    from fmriprep_cleanup.basics.journals import seal_context
    from fmriprep_cleanup.basics.seal import seal_json

    folder = state / "journal"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run}.jsonl"
    path.write_text("".join(seal_json(strict_json({"run": run, **record}), seal_context(str(state))) + "\n"
                            for record in records))
    return path


def test_1_an_earlier_versions_journal_is_reported_with_the_command_to_finish_or_discard_it(tmp_path):
    out = project(tmp_path)
    run = "20240101-000000_abcdef01"
    leftover = tmp_path / "a" / run / "sub-01.tar.tmp"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half")
    journal = earlier_version_journal(out / ".fmriprep-cleanup", run, [
        {"time": 1, "event": "run-start", "roots": [str(out)], "mode": "archive", "archive_dir": str(tmp_path / "a")},
        {"time": 2, "event": "archive-begin", "archive": str(leftover)[:-4], "temporary": str(leftover),
         "manifest": str(leftover.parent / "sub-01.manifest.tsv"), "files": 1}])
    result = cli("clean", out, "--mode", "delete", "--participant-label", "01", "--yes")
    assert journal.exists() and leftover.exists(), result.output
    assert "written by an earlier version" in result.output and "journals list" in result.output, result.output
    listed = json.loads(cli("journals", "list", out, "--format", "json").stdout)
    [row] = listed["journals"]
    assert (row["run"], row["recoverable"], row["finish"]) == (run, False, True)
    refused = cli("journals", "finish", out, "20240101-000000_ffffffff")
    assert refused.exit_code == 3 and "no unfinished journal" in refused.output
    finished = cli("journals", "finish", out, run)
    assert finished.exit_code == 0, finished.output
    assert not journal.exists() and not json.loads(cli("journals", "list", out, "--format", "json").stdout)["journals"]
    # its run folder has no sealed run.json: the leftover is not proven the tool's own, and stays
    assert leftover.exists()


def test_1_a_planted_journal_is_reported_until_discarded(tmp_path):
    out = project(tmp_path)
    planted = out / ".fmriprep-cleanup" / "journal" / "20200101-000000_deadbeef.jsonl"
    planted.parent.mkdir(parents=True)
    planted.write_text(json.dumps({"run": "20200101-000000_deadbeef", "event": "run-start", "time": 1}) + "\n")
    for _ in range(2):
        result = cli("clean", out, "--mode", "delete", "--participant-label", "01", "--yes")
        assert "not a run you started" in result.output and planted.exists(), result.output
    finish = cli("journals", "finish", out, "20200101-000000_deadbeef")
    assert finish.exit_code == 3 and "discard this one" in finish.output and planted.exists()
    assert cli("journals", "discard", out, "20200101-000000_deadbeef").exit_code == 0
    assert not planted.exists() and planted.with_name(planted.name + ".discarded").exists()
    assert "not a run you started" not in cli("clean", out, "--mode", "delete", "--yes").output


# --- 2. a typo through the Python API ---------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [("mode", "dryrun"), ("mode", "Delete"), ("mode", None),
                                          ("archive_format", "zip"), ("compress", "bz2"), ("git_rm", "no"),
                                          ("force_drop", 1), ("allow_output_loss", "yes"), ("archive_dir", 3)])
def test_2_clean_options_are_checked_when_made(field, value):
    from fmriprep_cleanup.plan.options import CleanOptions

    with pytest.raises(ValueError, match=field.replace("_", " ") if field in ("mode", "archive_format") else field
                       if field != "compress" else "compression"):
        CleanOptions(**{field: value})


def test_2_a_mistyped_mode_through_the_api_deletes_nothing(tmp_path):
    import dataclasses

    import fmriprep_cleanup as fc

    out = project(tmp_path)
    before = contents(out)
    plan = fc.open_plan(str(out))
    with pytest.raises(ValueError, match="unknown mode 'dryrun'"):
        fc.clean(plan, fc.CleanOptions(mode="dryrun"))
    options = fc.CleanOptions(mode="dry-run")
    object.__setattr__(options, "mode", "dryrun")  # made around the check: refused where it is acted on
    with pytest.raises(ValueError, match="unknown mode"):
        fc.clean(plan, options)
    assert contents(out) == before
    assert fc.clean(plan, dataclasses.replace(options, mode="dry-run")).as_dict()["dry_run"]
    assert contents(out) == before


@pytest.mark.parametrize("fmt, only", [("tsvv", None), ("tsv", "Junk"), ("JSON", "junk")])
def test_2_an_unknown_plan_format_or_action_is_an_error_not_a_default(tmp_path, fmt, only):
    import io

    import fmriprep_cleanup as fc
    from fmriprep_cleanup.report.planfile import write_plan, write_plan_of

    plan = fc.open_plan(str(project(tmp_path)))
    for write in (lambda: write_plan([], io.StringIO(), fmt, only), lambda: write_plan_of(plan, io.StringIO(), fmt, only)):
        with pytest.raises(ValueError, match="unknown"):
            write()


def test_2_a_policy_with_an_unknown_mode_or_format_is_refused_whole(tmp_path):
    out = project(tmp_path)
    before = contents(out)
    for key, value in (("mode", "dryrun"), ("archive_format", "zip"), ("compress", "bz2")):
        policy = tmp_path / f"{key}.yaml"
        entry = {"mode": "archive", "archive_dir": str(tmp_path / "a"), key: value}
        policy.write_text(f"version: 1\ndatasets:\n  - paths: ['{out}']\n"
                          + "".join(f"    {name}: {text}\n" for name, text in entry.items()))
        result = cli("run", policy, "--history", tmp_path / HISTORY)
        assert result.exit_code == 2 and key in result.output, result.output
    assert contents(out) == before


# --- 4. writes that follow planted links --------------------------------------------------------------------

def planted_link(path, target, uid=1000):
    os.symlink(target, path)
    os.lchown(path, uid, uid)
    return path


@pytest.mark.parametrize("dangling", [False, True])
def test_4_output_through_someone_elses_link_is_refused(tmp_path, dangling):
    out = project(tmp_path)
    victim = tmp_path / "victim.txt"
    if not dangling:
        victim.write_bytes(b"root's file")
    link = planted_link(tmp_path / "report.txt", victim)
    result = cli("report", out, "-o", link)
    assert result.exit_code == 2 and "symlink owned by uid 1000" in result.output, result.output
    assert (victim.read_bytes() == b"root's file") if not dangling else not victim.exists()
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"version: 1\ndatasets:\n  - paths: ['{out}']\n    mode: dry-run\n")
    log = planted_link(tmp_path / "run.log", victim)
    ran = cli("run", policy, "--log", log, "--history", tmp_path / HISTORY)
    assert ran.exit_code == 2 and "symlink owned by uid 1000" in ran.output, ran.output
    assert (victim.read_bytes() == b"root's file") if not dangling else not victim.exists()


def test_4_your_own_links_and_devices_are_written_through(tmp_path):
    out = project(tmp_path)
    mine = tmp_path / "mine.txt"
    os.symlink(tmp_path / "target.txt", mine)  # owned by the invoking user (root here)
    assert cli("report", out, "-o", mine, "--format", "json").exit_code == 0
    assert mine.is_symlink() and json.loads((tmp_path / "target.txt").read_text())["totals"]
    assert cli("report", out, "-o", "/dev/null").exit_code == 0
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    import threading
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    assert cli("report", out, "-o", fifo, "--format", "json").exit_code == 0
    reader.join(10)
    assert json.loads(got[0])["totals"]


def test_4_in_a_sticky_folder_everyone_writes_only_the_invokers_or_the_folders_owners_links(tmp_path, monkeypatch):
    """The kernel's protected_symlinks rule, whatever the kernel's setting: played as user 1000 in a /tmp-like
    folder of user 2000."""
    import fmriprep_cleanup.basics.outputs as outputs

    out = project(tmp_path)
    public = tmp_path / "public"
    public.mkdir()
    os.chown(public, 2000, 2000)
    public.chmod(0o1777)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"kept")
    monkeypatch.setattr(outputs.os, "geteuid", lambda: 1000)
    roots = planted_link(public / "by-root.txt", victim, uid=0)  # root's link: followed elsewhere, not here
    result = cli("report", out, "-o", roots)
    assert result.exit_code == 2 and "everyone can write" in result.output, result.output
    assert victim.read_bytes() == b"kept"
    owners = planted_link(public / "by-owner.txt", tmp_path / "owners.txt", uid=2000)
    assert outputs.link_may_be_followed(str(owners), os.lstat(owners)) is not None  # 2000 is not you nor root
    mine = planted_link(public / "mine.txt", tmp_path / "mine.txt", uid=1000)
    assert outputs.link_may_be_followed(str(mine), os.lstat(mine)) is None


def test_4_temporary_names_cannot_be_predicted_and_are_never_followed(tmp_path):
    out = project(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"kept")
    report = tmp_path / "report.json"
    report.write_text("old")
    for pid in range(os.getpid() - 150, os.getpid() + 150):  # the names earlier versions used
        planted_link(tmp_path / f"report.json.tmp-{pid}", victim)
    assert cli("report", out, "-o", report, "--format", "json").exit_code == 0
    assert victim.read_bytes() == b"kept" and json.loads(report.read_text())["totals"]
    assert not report.is_symlink() and len(list(tmp_path.glob(".report.json.*"))) == 0


def test_4_a_fifo_put_in_place_of_a_log_while_it_is_opened_is_refused_not_waited_on(tmp_path, monkeypatch):
    import fmriprep_cleanup.basics.outputs as outputs
    from fmriprep_cleanup.basics.errors import CleanupError

    log = tmp_path / "run.log"
    real_lstat = os.lstat

    def absent_then_fifo(path, *args, **kwargs):  # lstat finds nothing; a FIFO appears before the open
        if str(path) == str(log) and not log.exists():
            os.mkfifo(log)
            raise FileNotFoundError(path)
        return real_lstat(path, *args, **kwargs)

    monkeypatch.setattr(outputs.os, "lstat", absent_then_fifo)
    with pytest.raises(CleanupError, match="run.log"):
        with outputs.output_file(str(log), append=True) as handle:
            handle.write("never")


# --- 5. scheduling recipes, read by the real parsers -------------------------------------------------------

HOSTILE_FOLDERS = ["pol\\x2f..\\x2fevil", "it's $(touch PWNED) `touch PWNED2` ; a b", "$HOME ${X} \\q \"dq\"",
                   "back\\slash\\n", "tab\\tand\\\\double", "%n %% %z \\%"]


def systemd_split(line):
    """ExecStart's words as systemd 252 splits them (double or single quoted, C escapes, %% and $$): a reference
    the real systemd-analyze checks below on the words it can check."""
    words, i = [], 0
    escapes = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b", "f": "\f", "r": "\r",
               "v": "\v", "s": " "}
    while i < len(line):
        while i < len(line) and line[i] == " ":
            i += 1
        if i >= len(line):
            break
        word = ""
        if line[i] in "\"'":
            quote, i = line[i], i + 1
            while line[i] != quote:
                if line[i] == "\\":
                    i += 1
                    if line[i] == "x":
                        word += chr(int(line[i + 1:i + 3], 16))
                        i += 2
                    else:
                        word += escapes[line[i]]
                else:
                    word += line[i]
                i += 1
            i += 1
        else:
            while i < len(line) and line[i] != " ":
                word += line[i]
                i += 1
        words.append(word.replace("%%", "%").replace("$$", "$") if words else word.replace("%%", "%"))
    return words


def recorder(tmp_path, folder_name="bin $x ;z`"):
    """A stand-in for the installed program, in a folder with characters systemd and shells read specially:
    it writes its arguments, NUL-separated, to a file."""
    folder = tmp_path / folder_name
    folder.mkdir()
    record = tmp_path / "argv"
    program = folder / "fmriprep-cleanup"
    program.write_text(f"#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done > '{record}'\n")
    program.chmod(0o755)
    return str(program), record


def recorded(record):
    return record.read_bytes().decode().split("\0")[:-1]


@pytest.mark.parametrize("hostile", HOSTILE_FOLDERS)
def test_5_every_recipe_carries_hostile_paths_as_data(tmp_path, monkeypatch, hostile):
    import shutil
    import subprocess

    import fmriprep_cleanup.ops.schedule as schedule

    program, record = recorder(tmp_path)
    monkeypatch.setattr(schedule, "program", lambda: [program])
    folder = tmp_path / hostile
    folder.mkdir()
    policy = folder / "hygiene.yaml"
    policy.write_text("version: 1\ndatasets:\n  - paths: ['/nowhere']\n    mode: dry-run\n")
    log = folder / "log.jsonl"
    expected = ["run", str(policy), "--log", str(log)]
    sandbox = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    sbatch = cli("schedule", "sbatch", policy, "--log", log)
    assert sbatch.exit_code == 0, sbatch.output
    script = tmp_path / "job.sbatch"
    script.write_text(sbatch.stdout)
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert subprocess.run(["bash", str(script)], env=sandbox, cwd=tmp_path).returncode == 0
    assert recorded(record) == expected and not list(tmp_path.rglob("PWNED*"))

    for kind in ("cron", "scrontab"):  # the line after the five time fields, as cron hands it to the shell
        line = cli("schedule", kind, policy, "--log", log)
        if "%" in hostile:
            assert line.exit_code == 2 and "%" in line.output, line.output
            continue
        assert line.exit_code == 0, line.output
        command = line.stdout.strip().splitlines()[-1].split(" ", 5)[5]
        record.unlink()
        assert subprocess.run(["sh", "-c", command], env=sandbox, cwd=tmp_path).returncode == 0
        assert recorded(record) == expected and not list(tmp_path.rglob("PWNED*"))

    service = cli("schedule", "systemd-service", policy, "--log", log)
    assert service.exit_code == 0, service.output
    [exec_start] = [line for line in service.stdout.splitlines() if line.startswith("ExecStart=")]
    assert systemd_split(exec_start[len("ExecStart="):]) == [program, *expected]
    if shutil.which("systemd-analyze") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must check the systemd recipe with systemd-analyze (Debian: systemd)")
        return
    units = tmp_path / "units"
    units.mkdir()
    (units / "fmriprep-cleanup.service").write_text(service.stdout)
    (units / "fmriprep-cleanup.timer").write_text(cli("schedule", "systemd-timer", policy).stdout)
    verified = subprocess.run(["systemd-analyze", "verify", "--man=no", str(units / "fmriprep-cleanup.service"),
                               str(units / "fmriprep-cleanup.timer")], capture_output=True, text=True)
    assert verified.returncode == 0 and not verified.stderr.strip(), verified.stderr


def test_5_the_reference_splitter_agrees_with_systemd_on_the_executable(tmp_path):
    """systemd-analyze verify finds the executable only where the word is read as this test's splitter reads it
    (the same rules apply to every word; backslashes and quotes are refused in an executable's name)."""
    import shutil
    import subprocess

    from fmriprep_cleanup.ops.schedule import systemd_word

    if shutil.which("systemd-analyze") is None:
        pytest.skip("needs systemd-analyze") if os.environ.get("CI") != "true" else pytest.fail("needs systemd")
    for name in ("sp ace", "per%cent", "dol$lar", "semi;colon", "back`tick", "%n"):
        folder = tmp_path / f"x{abs(hash(name))}" / name
        folder.mkdir(parents=True)
        program = folder / "prog"
        program.write_text("#!/bin/sh\n")
        program.chmod(0o755)
        word = systemd_word(str(program), executable=True)
        assert systemd_split(word) == [str(program)]
        unit = tmp_path / "t.service"
        unit.write_text(f"[Unit]\nDescription=t\n[Service]\nType=oneshot\nExecStart={word}\n")
        done = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True)
        assert done.returncode == 0, (name, done.stderr)


# --- 8. plan and explain: one decision --------------------------------------------------------------------

def test_8_plan_clean_and_explain_agree_on_another_pipelines_file_in_a_shared_working_folder(tmp_path):
    from test_nipreps import build

    out, work = build(tmp_path, "qsiprep")
    for name in (".fmriprep.toml", ".qsiprep.toml"):  # fMRIPrep's and QSIPrep's run files, side by side in -w
        (work / name).write_text("[environment]\n")
        os.utime(work / name, (1_600_000_000, 1_600_000_000))
    planned = {line.split("\t")[4]: line.split("\t")[0] for line in cli("plan", out, "-q").stdout.splitlines()[1:]}
    for name in (".fmriprep.toml", ".qsiprep.toml"):
        path = str(work / name)
        explained = json.loads(cli("explain", out, path, "--format", "json").stdout)[0]
        assert explained["action"] == planned[path], (name, explained, planned[path])
    assert json.loads(cli("explain", out, str(work / ".fmriprep.toml"), "--format", "json").stdout)[0][
        "rule_id"] == "not-fmriprep"  # another pipeline's file in a shared -w: left alone, by plan and explain
    result = cli("clean", out, "--mode", "delete", "--yes")
    assert result.exit_code == 0 and (work / ".fmriprep.toml").exists(), result.output


# --- 6. git's own files -------------------------------------------------------------------------------------

GIT_OWN = (".gitattributes", ".gitignore", ".gitmodules", "sub-01/.gitkeep", ".noannex")


def git_project(tmp_path):
    """A project in plain git, everything committed, with git's own files where the fmriprepcleanup rules would
    take them: every file not on its keep list is junk."""
    import subprocess

    out = project(tmp_path, subjects=("01",), files=2)
    for name in GIT_OWN:
        (out / name).write_text("# git's own\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "T",
           "GIT_COMMITTER_EMAIL": "t@e"}

    def git(*args, check=True):
        return subprocess.run(["git", "-C", str(out), *args], capture_output=True, text=True, env=env, check=check)

    git("init", "-q")
    git("config", "user.name", "T")
    git("config", "user.email", "t@e")
    git("add", "-A")
    git("commit", "-q", "-m", "outputs")
    for path in out.rglob("*"):
        if ".git" not in path.parts:
            os.utime(path, (1_600_000_000, 1_600_000_000), follow_symlinks=False)
    return out, git


def test_6_gits_own_files_are_never_junk_whatever_the_rules(tmp_path):
    out, git = git_project(tmp_path)
    rows = {line.split("\t")[4]: line.split("\t") for line in
            cli("plan", out, "--rules", "fmriprepcleanup", "-q").stdout.splitlines()[1:]}
    for name in GIT_OWN:
        assert rows[str(out / name)][0] == "keep" and rows[str(out / name)][2] == "git-own", rows[str(out / name)]
        explained = json.loads(cli("explain", out, out / name, "--rules", "fmriprepcleanup", "--format",
                                   "json").stdout)[0]
        assert (explained["action"], explained["rule_id"]) == ("keep", "git-own")
    done = cli("clean", out, "--rules", "fmriprepcleanup", "--mode", "delete", "--git-rm", "--yes",
               "--allow-output-loss", "--history", tmp_path / HISTORY)
    assert done.exit_code == 0, done.output
    assert all((out / name).exists() for name in GIT_OWN)
    assert git("status", "--porcelain").stdout == ""
    assert not {name for name in git("ls-files").stdout.split()} ^ {*GIT_OWN, *git("ls-files").stdout.split()}


@pytest.mark.parametrize("state", ["merge", "staged", "rebase", "bisect"])
def test_6_git_rm_refuses_a_repository_in_the_middle_of_something(tmp_path, state):
    out, git = git_project(tmp_path)
    git_dir = out / ".git"
    if state == "merge":
        (git_dir / "MERGE_HEAD").write_text(git("rev-parse", "HEAD").stdout)
    elif state == "staged":
        (out / "notes.txt").write_text("mine")
        git("add", "notes.txt")
    elif state == "rebase":
        (git_dir / "rebase-merge").mkdir()
    else:
        (git_dir / "BISECT_LOG").write_text("git bisect start\n")
    def tree():
        return {path: digest for path, digest in contents(out).items() if "/.git/" not in path}

    before = tree()
    refused = cli("clean", out, "--mode", "delete", "--git-rm", "--yes", "--history", tmp_path / HISTORY)
    assert refused.exit_code == 2 and refused.output.count("\n") == 1, refused.output
    assert tree() == before


# --- 7. a folder swapped for a symlink mid-walk --------------------------------------------------------------

@pytest.mark.parametrize("jobs", [1, 4])
def test_7_a_folder_swapped_for_a_symlink_between_listing_and_opening_is_never_followed(tmp_path, monkeypatch, jobs):
    import fmriprep_cleanup.basics.diskwalk as folders  # the walk of the disk and the listing it calls
    from fmriprep_cleanup.basics.warnings import Warnings
    from fmriprep_cleanup.fmriprep.layout import ScanRoot

    out = project(tmp_path, subjects=("01",), files=1)
    (out / "b" / "c").mkdir(parents=True)
    (out / "b" / "c" / "mine.txt").write_bytes(b"m")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "c").mkdir(parents=True)
    (elsewhere / "c" / "secret.txt").write_bytes(b"s")
    real = folders.list_directory
    seen = []

    def list_then_swap(path, *args, **kwargs):
        listed = real(path, *args, **kwargs)
        seen.append(path)
        if path == str(out / "b") and str(out) in seen and not (out / "b").is_symlink():
            (out / "b").rename(out / "b.moved")  # the walk listed b: now b is swapped for a link elsewhere
            (out / "b").symlink_to(elsewhere)
        return listed

    monkeypatch.setattr(folders, "list_directory", list_then_swap)
    roots = [ScanRoot("derivatives", str(out))]
    listed = {f"{folder.path}/{name}" for folder in folders.walk(roots, Warnings(), jobs=jobs)
              for name in folder.names}
    assert f"{out}/b/c/mine.txt" in listed and not any("secret" in path for path in listed), sorted(listed)


def test_7_walk_folder_opens_each_folder_from_its_parent_and_never_through_a_swapped_link(tmp_path, monkeypatch):
    import fmriprep_cleanup.basics.diskwalk as folders

    top = tmp_path / "top"
    (top / "b" / "c").mkdir(parents=True)
    (top / "b" / "c" / "mine.txt").write_bytes(b"m")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "c").mkdir(parents=True)
    (elsewhere / "c" / "secret.txt").write_bytes(b"s")
    seen = []
    for folder in folders.walk_folder(str(top)):
        seen += [f"{folder.path}/{name}" for name in folder.names]
        if folder.path == str(top / "b"):  # b listed: swapped for a link before its subfolder is opened
            (top / "b").rename(top / "b.moved")
            (top / "b").symlink_to(elsewhere)
    assert str(top / "b" / "c" / "mine.txt") in seen and not any("secret" in path for path in seen), seen


# --- 9-13. bad input: one line, exit 2, bounded time and memory ----------------------------------------------

BIG = "9" * 400


def ncdu_list(out, tmp_path, entry="", meta='{"progname": "ncdu", "timestamp": 1700000000}'):
    """An ncdu export of ``out``'s top folder, one line per entry, with ``entry`` (JSON members) as its last
    file's."""
    good = '{"name": "sub-01.html", "asize": 13, "dsize": 4096, "mtime": 1600000000, "ino": 5, "nlink": 1}'
    fields = {"name": '"bad.txt"', "asize": "1", "dsize": "4096", "mtime": "1600000000"}
    if entry:
        key, _, value = entry.partition(": ")
        fields[key.strip('"')] = value
    hostile = "{" + ", ".join(f'"{key}": {value}' for key, value in fields.items()) + "}"
    roots = '[{"name": "sourcedata"}, [{"name": "freesurfer"}]], [{"name": "work"}]'
    text = f'[1, 2, {meta},\n[{{"name": "{out}"}},\n{good},\n{hostile}, {roots}]]\n'
    path = tmp_path / "scan.json"
    path.write_text(text)
    return path


def test_9_the_hostile_lists_below_are_readable_but_for_their_one_bad_number(tmp_path):
    out = project(tmp_path)
    result = cli("report", out, "--from-scan", ncdu_list(out, tmp_path), "--format", "json", "-q")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["totals"]["files"] == 2


def one_line_refusal(result, *words):
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert "Traceback" not in result.output and all(word in result.output for word in words), result.output


@pytest.mark.parametrize("entry", ['"ino": "abc"', '"ino": [1]', '"nlink": "x"', '"mtime": NaN', '"mtime": Infinity',
                                   f'"asize": {BIG}', '"mode": -1', f'"mode": {"7" * 30}', '"asize": 1.5',
                                   '"dsize": true'])
def test_9_a_bad_number_in_an_ncdu_export_is_one_line_naming_file_and_line(tmp_path, entry):
    out = project(tmp_path)
    listed = ncdu_list(out, tmp_path, entry)
    result = cli("report", out, "--from-scan", listed)
    one_line_refusal(result, f"{listed}:4")


@pytest.mark.parametrize("stamp", ["NaN", "1e300", "-1e18", '"x"'])
def test_9_a_bad_timestamp_in_an_ncdu_export_is_refused(tmp_path, stamp):
    out = project(tmp_path)
    listed = ncdu_list(out, tmp_path, meta=f'{{"progname": "ncdu", "timestamp": {stamp}}}')
    one_line_refusal(cli("report", out, "--from-scan", listed), str(listed))


@pytest.mark.parametrize("field", range(7))
def test_9_a_find_list_with_a_400_digit_number_is_refused(tmp_path, field):
    out = project(tmp_path)
    numbers = ["f", "13", "8", "1600000000.5", "2049", "12", "1"]
    numbers[field] = BIG if field else numbers[field]
    if field == 0:
        numbers[3] = BIG + ".5"
    listed = tmp_path / "scan.list"
    listed.write_bytes(f"d 4096 8 1600000000.0 2049 11 2 {out}\0{' '.join(numbers)} {out}/sub-01.html\0".encode())
    one_line_refusal(cli("report", out, "--from-scan", listed, "--scan-format", "find"), str(listed), "entry 2")


@pytest.mark.parametrize("field", ["inode", "size", "kb", "nlink"])
def test_9_a_gpfs_list_with_a_400_digit_number_is_refused(tmp_path, field):
    out = project(tmp_path)
    values = {"inode": "12", "size": "13", "kb": "8", "nlink": "1"} | {field: BIG}
    listed = tmp_path / "scan.list"
    listed.write_text(f"{values['inode']} 1 0  {values['size']} {values['kb']} 2020-09-13 12:26:40.000000 "
                      f"-rw-r--r-- {values['nlink']} -- {out}/sub-01.html\n")
    one_line_refusal(cli("report", out, "--from-scan", listed, "--scan-format", "gpfs"), f"{listed}:1")


def test_9_a_partial_counting_10_to_the_400_bytes_is_refused(tmp_path):
    out = project(tmp_path, subjects=("01", "02"))
    partials = []
    for shard in (1, 2):
        partial = tmp_path / f"partial-{shard}.json"
        assert cli("report", out, "--shard", f"{shard}/2", "--partial-out", partial, "-q").exit_code == 0
        partials.append(partial)
    data = json.loads(partials[1].read_text())
    data["summary"]["totals"]["bytes"] = 10**400
    partials[1].write_text(json.dumps(data))
    one_line_refusal(cli("merge", *partials), "partial-2.json", "bytes")
    data["summary"]["totals"]["bytes"] = 1
    data["statuses"]["02"]["newest_run_time"] = float("nan")
    partials[1].write_text(json.dumps(data))
    one_line_refusal(cli("merge", *partials), "partial-2.json")


def test_9_a_manifest_line_with_a_400_digit_size_or_a_negative_mode_is_refused(tmp_path):
    from fmriprep_cleanup.act.manifest import load_manifest
    from fmriprep_cleanup.basics.errors import CleanupError

    out = project(tmp_path, subjects=("01",), files=1)
    archives, run = archive_subject(tmp_path, out)
    manifest = run / "sub-01.manifest.tsv"
    lines = manifest.read_text().splitlines(keepends=True)
    columns = lines[0].rstrip("\n").split("\t")
    for column, value in (("size", BIG), ("mode", "-1"), ("mtime_ns", BIG), ("uid", "-3")):
        fields = lines[1].rstrip("\n").split("\t")
        fields[columns.index(column)] = value
        manifest.write_text(lines[0] + "\t".join(fields) + "\n" + "".join(lines[2:]))
        with pytest.raises(CleanupError, match=r"manifest.tsv:2: malformed"):
            load_manifest(str(manifest))


def test_10_arrays_nested_100000_deep_in_an_ncdu_entry_are_refused(tmp_path):
    out = project(tmp_path)
    listed = ncdu_list(out, tmp_path, '"extra": ' + "[" * 100_000 + "]" * 100_000)
    one_line_refusal(cli("report", out, "--from-scan", listed), f"{listed}:4", "nested")


def test_10_a_find_list_path_3000_folders_deep_is_read(tmp_path):
    out = project(tmp_path)
    deep = str(out) + "/d" * 3000
    listed = tmp_path / "scan.list"
    folders = "".join(f"d 4096 8 1600000000.0 2049 {11 + n} 2 {folder}\0" for n, folder in
                      enumerate((out, out / "sourcedata" / "freesurfer", out / "work")))
    listed.write_bytes(f"{folders}f 13 8 1600000000.5 2049 9 1 {deep}/x.txt\0".encode())
    result = cli("report", out, "--from-scan", listed, "--scan-format", "find", "--format", "json", "-q")
    assert result.exit_code == 0, result.output[-300:]
    assert json.loads(result.stdout)["totals"]["files"] == 1


def test_11_a_quota_command_printing_gigabytes_is_stopped_at_a_cap(tmp_path):
    import resource
    import subprocess
    import sys

    script = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (600 << 20, 600 << 20)); "
              "from fmriprep_cleanup.ops.triggers import command_usage; command_usage('yes 1234567890')")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "printed more than" in done.stderr and "MemoryError" not in done.stderr, done.stderr[-500:]
    assert resource.getrlimit(resource.RLIMIT_AS)  # the limit above was the child's alone


def test_12_a_fifo_given_as_a_scan_list_or_a_sealing_key_is_refused_not_waited_on(tmp_path):
    import subprocess
    import sys

    from fmriprep_cleanup.basics import seal

    out = project(tmp_path)
    fifo = tmp_path / "scan.fifo"
    os.mkfifo(fifo)
    done = subprocess.run([sys.executable, "-c", "from fmriprep_cleanup.cli import main; main()", "report", str(out),
                           "--from-scan", str(fifo)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "FIFO" in done.stderr and "Traceback" not in done.stderr, done.stderr
    key = seal.key_path()
    os.makedirs(os.path.dirname(key), exist_ok=True)
    if os.path.exists(key):
        os.unlink(key)
    os.mkfifo(key, 0o600)
    done = subprocess.run([sys.executable, "-c", "from fmriprep_cleanup.cli import main; main()", "clean", str(out),
                           "--mode", "delete", "--yes"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "sealing key" in done.stderr and "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("command", ["report", "plan", "status"])
def test_13_standard_output_on_a_full_disk_is_one_line_and_non_zero(tmp_path, command):
    import subprocess
    import sys

    out = project(tmp_path)
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-c", "from fmriprep_cleanup.cli import main; main()", command,
                               str(out)], stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode != 0 and done.stderr.count("\n") == 1 and "No space left" in done.stderr, done.stderr
    piped = subprocess.run(f"{sys.executable} -c 'from fmriprep_cleanup.cli import main; main()' {command} {out} "
                           "| head -c 1 > /dev/null; exit ${PIPESTATUS[0]}", shell=True, executable="/bin/bash",
                           capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0 and not piped.stderr, piped.stderr  # a closed pipe stays quiet


@pytest.mark.parametrize("kind", ["report", "plan"])
@pytest.mark.parametrize("option, value", [("bogus", 1), ("min_age", "soon"), ("rules", "default"),
                                           ("scan_format", "zip"), ("path", "relative/path")])
def test_2_an_unknown_or_mistyped_option_in_a_partial_is_refused_not_passed_on(tmp_path, kind, option, value):
    out = project(tmp_path)
    partial = tmp_path / "partial.json"
    assert cli(kind, out, "--shard", "1/1", "--partial-out", partial, "-q").exit_code == 0
    if kind == "report":
        data = json.loads(partial.read_text())
        data["options"][option] = value
        partial.write_text(json.dumps(data))
    else:  # a plan partial: JSON lines, the options in the first
        lines = partial.read_text().splitlines()
        header = json.loads(lines[0])
        header["options"][option] = value
        partial.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    one_line_refusal(cli("merge", partial), f"options.{option}")
