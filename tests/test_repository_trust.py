"""No program a repository names runs with the tool's privileges (issue 42, item 3): a marker program planted
under each setting git and git-annex would run - the repository's own config, its attributes, its hooks -
never runs under report, audit, clean --git-rm and restore; and acting commands refuse a repository others can
write. With the real git and git-annex."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest
from conftest import LONG_AGO, cli, finish_subjects, make_files, write_description
from test_annex import git, require_git_annex

pytestmark = [pytest.mark.integration]

HOOKS = ("pre-commit", "prepare-commit-msg", "commit-msg", "post-commit", "post-checkout", "post-index-change",
         "reference-transaction", "pre-auto-gc", "post-rewrite", "pre-merge-commit", "post-merge",
         "fsmonitor-watchman", "post-update", "pre-push")
SETTINGS = ("core.fsmonitor", "filter.evil.clean", "filter.evil.smudge", "filter.evil.process", "filter.annex.clean",
            "filter.annex.smudge", "filter.annex.process", "diff.evil.textconv", "diff.evil.command",
            "merge.evil.driver", "core.pager", "core.editor", "sequence.editor", "core.askPass", "core.sshCommand",
            "credential.helper", "gpg.program", "pager.status", "annex.freezecontent-command",
            "annex.thawcontent-command", "annex.secure-erase-command")
IN_GIT_JUNK = "sourcedata/freesurfer/fsaverage/label/lh.cortex.label"


def marker(tmp_path):
    """A program that writes down who ran it; returns (the program, its log)."""
    log = tmp_path / "ran.log"
    program = tmp_path / "marker.sh"
    program.write_text(f'#!/bin/sh\necho "$0 $*" >> {log}\nexit 0\n')
    program.chmod(0o755)
    return program, log


@pytest.fixture
def planted(tmp_path):
    """An fMRIPrep output kept in git-annex (FreeSurfer templates annexed, one template file in git itself),
    finished long ago, whose .git/config, attributes and hooks name a marker program everywhere they can."""
    require_git_annex()
    repo = tmp_path / "ds-fmriprep"
    write_description(repo)
    make_files(repo, {"sub-01/anat/sub-01_desc-preproc_T1w.nii.gz": 5000,
                      "sourcedata/freesurfer/fsaverage/surf/lh.white": 4000, IN_GIT_JUNK: 300})
    finish_subjects(repo, ["01"])
    (repo / "sourcedata/freesurfer/fsaverage/surf/lh.white").write_bytes(b"w" * 4000)
    git(repo, "init", "-q")
    git(repo, "config", "user.name", "Test")
    git(repo, "config", "user.email", "test@example.org")
    git(repo, "annex", "init", "-q", "test")
    git(repo, "-c", "annex.largefiles=nothing", "add", "dataset_description.json", IN_GIT_JUNK)
    git(repo, "annex", "add", "-q", ".")
    git(repo, "commit", "-q", "-m", "fmriprep outputs")
    for folder, _, names in os.walk(repo):
        if ".git" not in folder.split(os.sep):
            for name in names:
                os.utime(os.path.join(folder, name), (LONG_AGO, LONG_AGO), follow_symlinks=False)
    program, log = marker(tmp_path)
    for key in SETTINGS:
        git(repo, "config", key, f"{program} {key}")
    git(repo, "config", "commit.gpgSign", "true")
    (repo / ".git" / "info").mkdir(exist_ok=True)
    (repo / ".git" / "info" / "attributes").write_text("* filter=evil diff=evil merge=evil\n")
    for hook in HOOKS:
        path = repo / ".git" / "hooks" / hook
        path.write_text(f"#!/bin/sh\nexec {program} hook-{hook}\n")
        path.chmod(0o755)
    assert not log.exists()
    git(repo, "status", check=False)  # the plant is live: git itself runs it
    assert log.exists()
    log.unlink()
    return repo, log


def ran(log):
    return log.read_text() if log.exists() else ""


def inspect(repo, *args):
    """The test's own look into the repository, with what the repository names switched off as the tool does."""
    from fmriprep_cleanup.basics import gitcall

    return gitcall.git(str(repo), list(args)).stdout.decode()


def test_3_report_and_audit_run_no_program_the_repository_names(planted, tmp_path):
    repo, log = planted
    report = cli("report", repo, "--format", "json")
    assert report.exit_code == 0, report.output
    assert json.loads(report.stdout)["dataset"]["repository"]["annexed"] is True
    assert cli("plan", repo).exit_code == 0
    assert cli("status", repo).exit_code == 0
    assert cli("audit", tmp_path).exit_code in (0, 3)
    assert ran(log) == ""


def test_3_clean_git_rm_and_restore_run_no_program_the_repository_names(planted, tmp_path):
    repo, log = planted
    archives = tmp_path / "archives"
    done = cli("clean", repo, "--mode", "archive", "--archive-dir", archives, "--git-rm", "--yes", "--format", "json",
               "--history", tmp_path / "h.sqlite")
    assert done.exit_code == 0, done.output
    assert not (repo / IN_GIT_JUNK).exists() and "fmriprep-cleanup" in inspect(repo, "log", "-1", "--format=%s")
    assert not os.path.exists(repo / "sourcedata/freesurfer/fsaverage/surf/lh.white")  # dropped
    restored = cli("restore", archives)
    assert restored.exit_code == 0, restored.output
    assert (repo / "sourcedata/freesurfer/fsaverage/surf/lh.white").read_bytes() == b"w" * 4000
    assert ran(log) == ""


def test_3_acting_commands_refuse_a_repository_others_can_write(planted, tmp_path):
    repo, log = planted
    config = repo / ".git" / "config"
    config.chmod(config.stat().st_mode | stat.S_IWGRP)  # as `git init --shared=group` leaves it
    before = inspect(repo, "ls-files", "-s")
    refused = cli("clean", repo, "--mode", "delete", "--git-rm", "--force-drop", "--yes",
                  "--history", tmp_path / "h.sqlite")
    assert refused.exit_code == 2 and refused.output.count("\n") == 1, refused.output
    assert "writable by its group" in refused.output and str(config) in refused.output
    assert (repo / IN_GIT_JUNK).exists() and os.path.exists(repo / "sourcedata/freesurfer/fsaverage/surf/lh.white")
    assert inspect(repo, "ls-files", "-s") == before
    assert cli("report", repo).exit_code == 0  # read-only commands still run: nothing the repository names does
    assert ran(log) == ""


def test_3_a_shared_repository_made_by_git_itself_is_refused_for_acting(tmp_path):
    require_git_annex()
    repo = tmp_path / "shared"
    write_description(repo)
    make_files(repo, {IN_GIT_JUNK: 300})
    finish_subjects(repo, ["01"])
    subprocess.run(["git", "init", "-q", "--shared=group", str(repo)], check=True)
    git(repo, "config", "user.name", "Test")
    git(repo, "config", "user.email", "test@example.org")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "outputs")
    refused = cli("clean", repo, "--mode", "delete", "--git-rm", "--yes", "--history", tmp_path / "h.sqlite")
    assert refused.exit_code == 2 and "refusing to run git" in refused.output, refused.output
    assert (repo / IN_GIT_JUNK).exists()


def test_4_restoring_annexed_content_never_writes_through_a_planted_staging_link(planted, tmp_path):
    """.git/fmriprep-cleanup/reinject planted as a link to another folder: restore neither writes there nor
    follows it; the content stays in its archive and the failure is said."""
    repo, log = planted
    archives = tmp_path / "archives"
    assert cli("clean", repo, "--mode", "archive", "--archive-dir", archives, "--yes",
               "--history", tmp_path / "h.sqlite").exit_code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (repo / ".git" / "fmriprep-cleanup").mkdir(exist_ok=True)
    staging = repo / ".git" / "fmriprep-cleanup" / "reinject"
    if staging.exists():
        staging.rmdir()
    staging.symlink_to(elsewhere)
    restored = cli("restore", archives)
    assert restored.exit_code == 3 and "symlink is not followed" in restored.output, restored.output
    assert not list(elsewhere.iterdir())
    assert not os.path.exists(repo / "sourcedata/freesurfer/fsaverage/surf/lh.white")
