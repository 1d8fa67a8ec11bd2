"""Policy triggers: act only when the storage is full (statvfs, or a quota read from lfs quota, quota -w,
mmlsquota or an admin's command), stop once a run has brought it under the lower level."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import cli, project

from fmriprep_cleanup.basics.errors import CleanupError
from fmriprep_cleanup.ops.history import History
from fmriprep_cleanup.ops.triggers import parse_trigger, parse_usage

# the tables as the tools' manuals show them (lfs-quota(1), quota(1) with -w, IBM's mmlsquota command page)
LFS = """Disk quotas for usr bob (uid 500):
     Filesystem  kbytes   quota   limit   grace   files   quota   limit   grace
    /mnt/lustre  217544*      0  200000       -       1       0       0       -
"""
LFS_WRAPPED = """Disk quotas for prj 1234 (pid 1234):
     Filesystem  kbytes   quota   limit   grace   files   quota   limit   grace
/very/long/lustre/mount/point
                 850000  1000000 1200000       -    4567       0       0       -
"""
QUOTA = """Disk quotas for user bob (uid 1000):
     Filesystem  blocks   quota   limit   grace   files   quota   limit   grace
      /dev/sda1  620000  1000000 1100000              12       0       0
"""
MMLSQUOTA = """                         Block Limits                                    |     File Limits
Filesystem Fileset    type             KB      quota      limit   in_doubt    grace |    files   quota    limit in_doubt    grace  Remarks
gpfs1      proj1      FILESET      900000    1000000    1100000          0     none |        4       0        0        0     none
"""


@pytest.mark.parametrize(("text", "used", "limit"), [
    (LFS, 217544, 200000), (LFS_WRAPPED, 850000, 1000000), (QUOTA, 620000, 1000000), (MMLSQUOTA, 900000, 1000000),
])
def test_quota_tables_are_read_in_kib_soft_quota_first(text, used, limit):
    assert parse_usage(text) == (used * 1024, limit * 1024)


def test_a_plain_used_and_limit_line_is_bytes():
    assert parse_usage("900 1000\n") == (900, 1000)


@pytest.mark.parametrize("text", ["", "hello\n", "Filesystem kbytes quota limit\n/x 12 0 0\n", "5 0\n"])
def test_what_cannot_be_read_is_one_error(text):
    with pytest.raises(CleanupError, match="trigger: "):
        parse_usage(text)


def test_trigger_levels_are_shares():
    trigger = parse_trigger({"usage": "filesystem", "start_above": "85%", "stop_below": 0.75})
    assert (trigger.start_above, trigger.stop_below, trigger.command) == (0.85, 0.75, None)
    with pytest.raises(ValueError, match="stop_below must not be above start_above"):
        parse_trigger({"start_above": "50%", "stop_below": "60%"})
    with pytest.raises(ValueError, match="start_above"):
        parse_trigger({"start_above": "lots"})


def policy_with_usage(tmp_path, used: int, limit: int = 100, command: str | None = None):
    out = project(tmp_path / "ds")
    printer = command or f"{sys.executable} -c \"print({used}, {limit})\""
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"version: 1\ndatasets:\n  - paths: ['{out}']\n    mode: delete\n    min_age: 1h\n"
                      f"    trigger: {{usage: {{command: {json.dumps(printer)}}}, start_above: 85%, stop_below: 75%}}\n")
    return out, policy


def test_an_85_percent_trigger_does_nothing_at_62_percent(tmp_path):
    out, policy = policy_with_usage(tmp_path, 62)
    before = sorted(out.rglob("*"))
    log = tmp_path / "log.jsonl"
    result = cli("run", policy, "--log", log, "--history", tmp_path / "h.sqlite")
    assert result.exit_code == 0, result.output
    assert sorted(out.rglob("*")) == before
    line = json.loads(log.read_text().splitlines()[0])
    assert line["reason"].startswith("not triggered: quota (") and "62% full, not above 85%: nothing to do" in line["reason"]
    assert line["trigger"]["triggered"] is False and line["trigger"]["share"] == 0.62
    rows = History(str(tmp_path / "h.sqlite")).runs()  # the history says why nothing was done, too
    assert [(row["files"], row["bytes"], row["exit_status"]) for row in rows] == [(0, 0, 0)]
    assert rows[0]["note"] == line["reason"] and rows[0]["dataset"] == str(out)


def test_an_85_percent_trigger_acts_at_90_percent(tmp_path):
    out, policy = policy_with_usage(tmp_path, 90)
    log = tmp_path / "log.jsonl"
    result = cli("run", policy, "--log", log, "--history", tmp_path / "h.sqlite")
    assert result.exit_code == 0, result.output
    assert not list(out.glob("work/fmriprep_23_2_wf/sub_01_wf/node*/out.nii.gz"))
    line = json.loads(log.read_text().splitlines()[0])
    assert line["trigger"]["triggered"] is True and line["reason"].startswith("triggered: quota (")
    assert line["files"] > 0
    rows = History(str(tmp_path / "h.sqlite")).runs()
    assert len(rows) == 1 and rows[0]["files"] == line["files"] and rows[0]["note"].startswith("triggered: quota (")


def test_a_quota_command_that_fails_changes_nothing(tmp_path):
    out, policy = policy_with_usage(tmp_path, 0, command=f"{sys.executable} -c \"import sys; sys.exit('no quota')\"")
    before = sorted(out.rglob("*"))
    result = cli("run", policy, "--history", tmp_path / "h.sqlite")
    assert result.exit_code == 2 and "trigger: " in result.output and "failed (exit 1): no quota" in result.output
    assert sorted(out.rglob("*")) == before


def test_a_run_stops_once_usage_is_below_stop_below(tmp_path):
    first, second = project(tmp_path / "a"), project(tmp_path / "b")
    counter = tmp_path / "calls"
    script = tmp_path / "usage.py"  # 90 % when asked first, 70 % after the first dataset was cleaned
    script.write_text(f"import pathlib\np = pathlib.Path({str(counter)!r})\nn = int(p.read_text()) if p.exists() else 0\n"
                      "p.write_text(str(n + 1))\nprint(90 if n == 0 else 70, 100)\n")
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"version: 1\ndatasets:\n  - paths: ['{first}', '{second}']\n    mode: delete\n    min_age: 1h\n"
                      f"    trigger: {{usage: {{command: '{sys.executable} {script}'}}, start_above: 85%, stop_below: 75%}}\n")
    log = tmp_path / "log.jsonl"
    assert cli("run", policy, "--log", log, "--history", tmp_path / "h.sqlite").exit_code == 0
    lines = [json.loads(line) for line in log.read_text().splitlines()[:2]]
    assert lines[0]["dataset"] == str(first) and lines[0]["files"] > 0
    assert lines[1]["dataset"] == str(second) and lines[1]["reason"].startswith("stopped: ") and "70% full" in lines[1]["reason"]
    assert list(second.glob("work/fmriprep_23_2_wf/sub_01_wf/node*/out.nii.gz"))  # untouched
