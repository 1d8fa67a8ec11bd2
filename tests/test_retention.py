"""A retention plan carried out by `run --config` over simulated days (times injected, never waited for)."""

import os
import time

import pytest
from conftest import finish_subjects, make_files, write_description

from fmriprep_cleanup.basics.errors import CleanupError
from fmriprep_cleanup.ops.hygiene import run_policy
from fmriprep_cleanup.ops.policy import load_policy

DAY = 86400


@pytest.fixture
def aged(tmp_path):
    """A finished dataset whose junk was last touched ten days ago: a working directory and template copies."""
    start = time.time() - 10 * DAY
    out = tmp_path / "out"
    write_description(out)
    make_files(out, {"sub-01/anat/sub-01_desc-preproc_T1w.nii.gz": 500,
                     "work/fmriprep_23_2_wf/sub_01_wf/node/out.nii.gz": 7000,
                     "sourcedata/freesurfer/fsaverage/surf/lh.white": 3000})
    for folder, _, names in os.walk(out):
        for name in names:
            os.utime(os.path.join(folder, name), (start, start))
    finish_subjects(out, ["01"], mtime=start + 3600)  # the report comes last: a finished run
    policy = tmp_path / "retention.yaml"
    policy.write_text(f"""version: 1
datasets:
  - name: lab
    paths: ['{out}']
    mode: delete
    archive_dir: {tmp_path / 'archives'}
    retention:
      - category: working directory
        archive_after: 30d
      - category: FreeSurfer templates
        delete_after: 60d
    expire_archives_after: 1y
""")
    (tmp_path / "archives").mkdir()
    return out, tmp_path, policy, start


def test_archive_then_delete_then_expire_in_order(aged):
    out, tmp_path, policy, start = aged
    workdir = out / "work" / "fmriprep_23_2_wf" / "sub_01_wf" / "node" / "out.nii.gz"
    template = out / "sourcedata" / "freesurfer" / "fsaverage" / "surf" / "lh.white"
    loaded = load_policy(str(policy))
    history = str(tmp_path / "h.sqlite")

    run_policy(loaded, history_path=history, now=start + 20 * DAY)  # day 20: nothing is due
    assert workdir.exists() and template.exists() and not any((tmp_path / "archives").iterdir())

    results, code = run_policy(loaded, history_path=history, now=start + 40 * DAY)  # day 40: archive the cache
    assert code == 0, [r.as_dict() for r in results]
    assert not workdir.exists() and template.exists()
    assert len(list((tmp_path / "archives").rglob("*.manifest.tsv"))) == 1

    run_policy(loaded, history_path=history, now=start + 70 * DAY)  # day 70: delete the template copies
    assert not template.exists() and (out / "sub-01/anat/sub-01_desc-preproc_T1w.nii.gz").exists()
    assert any((tmp_path / "archives").rglob("*.manifest.tsv"))

    results, _ = run_policy(loaded, history_path=history, now=time.time() + 400 * DAY)  # a year on: expire
    assert not any((tmp_path / "archives").rglob("*.manifest.tsv"))
    assert any("retention expire: 1 archive run(s)" in r.reason for r in results)


def test_a_dry_run_retention_changes_nothing(aged):
    out, tmp_path, policy, start = aged
    policy.write_text(policy.read_text().replace("mode: delete", "mode: dry-run"))
    before = sorted(p for p in out.rglob("*") if p.is_file())
    results, code = run_policy(load_policy(str(policy)), now=start + 400 * DAY)
    assert code == 0 and sorted(p for p in out.rglob("*") if p.is_file() and ".fmriprep-cleanup" not in str(p)) == \
        [p for p in before if ".fmriprep-cleanup" not in str(p)]
    assert {r.mode for r in results} == {"dry-run"}


@pytest.mark.parametrize("step, message", [
    ("{category: working directory}", "needs archive_after or delete_after"),
    ("{category: working directory, archive_after: 60d, delete_after: 30d}", "delete_after must come after"),
    ("{category: working directory, archive_after: soon}", "archive_after"),
    ("{categry: working directory, delete_after: 1d}", "needs a category"),
])
def test_a_bad_retention_step_is_refused_with_its_line(tmp_path, step, message):
    policy = tmp_path / "p.yaml"
    policy.write_text(f"version: 1\ndatasets:\n  - paths: [{tmp_path}]\n    mode: delete\n    archive_dir: {tmp_path}\n"
                      f"    retention:\n      - {step}\n")
    with pytest.raises(CleanupError, match=message):
        load_policy(str(policy))


def test_the_report_foresees_the_plan_day_by_day(aged):
    import json

    from click.testing import CliRunner

    from fmriprep_cleanup.cli import cli

    out, tmp_path, policy, start = aged
    result = CliRunner().invoke(cli, ["report", str(out), "--retention", str(policy),
                                      "--format", "json", "-q"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    rows = {round(row["day"]): row for row in data["retention"]["timeline"]}
    total = data["totals"]["bytes"]
    assert sorted(rows) == [0, 20, 50, 385]  # today; the cache archived; the templates deleted; the archive expired
    assert (rows[0]["dataset_bytes"], rows[0]["archive_bytes"]) == (total, 0)
    assert (rows[20]["dataset_bytes"], rows[20]["archive_bytes"]) == (total - 7000, 7000)
    assert (rows[50]["dataset_bytes"], rows[50]["archive_bytes"]) == (total - 10_000, 7000)
    assert (rows[385]["dataset_bytes"], rows[385]["archive_bytes"]) == (total - 10_000, 0)
    text = CliRunner().invoke(cli, ["report", str(out), "--retention", str(policy), "-q"]).stdout
    assert "Retention plan of 'lab'" in text
    page = tmp_path / "r.html"
    CliRunner().invoke(cli, ["report", str(out), "--retention", str(policy), "--format", "html",
                             "-o", str(page), "-q"])
    assert '<table id="retention">' in page.read_text() and "day 20" in page.read_text()
