"""What surprised a new user following the README on the demo (issue 49), each made a test."""

from __future__ import annotations

import json
import os

from conftest import age_run, cli, on_a_sized_terminal, project, write

import fmriprep_cleanup.fmriprep.demo as demo


def test_the_demo_writes_small_text_files_as_text_never_nul_bytes(tmp_path):
    """Copying the demo into a DataLad dataset overwrote its .gitattributes with 585 NUL bytes: small text
    files get real text, of the size the real ds003752 output has."""
    output, _ = demo.build_demo(str(tmp_path))
    sizes = dict(demo.load_listing())
    for name in (".gitattributes", ".gitmodules", ".bidsignore", "README.md"):
        data = open(os.path.join(output, name), "rb").read()
        assert b"\0" not in data and len(data) == sizes[name] and data.decode().startswith("# stand-in")
    sidecars = [path for path, size in sizes.items() if path.endswith(".json") and size <= demo.TEXT_CAP]
    for path in sidecars[:50]:
        with open(os.path.join(output, path), "rb") as handle:
            data = handle.read()
        assert len(data) == sizes[path] and isinstance(json.loads(data), dict)


def test_archive_without_archive_dir_says_that_first_even_without_a_terminal(tmp_path):
    """Without a terminal, `clean --mode archive` complained about --yes, and once given --yes about the
    missing --archive-dir: the folder is named first."""
    project(tmp_path)
    result = cli("clean", tmp_path / "out", "--mode", "archive", input="")
    assert result.exit_code == 2 and "--archive-dir" in result.output and "--yes" not in result.output


def test_a_yaml_quote_left_open_is_reported_where_it_opens(tmp_path):
    """An unclosed quote on line 4 was reported at line 6 ("expected alphabetic or numeric character"), where
    YAML met the next quote: the line that opened it is named."""
    rules = tmp_path / "mine.yaml"
    rules.write_text('name: mine\nextends: default\nrules:\n  - id: "broken\n    action: junk\n    glob: "**/*.svg"\n')
    project(tmp_path)
    said = cli("report", tmp_path / "out", "--rules", rules)
    assert said.exit_code == 2 and f"{rules}:4: a quote opened on this line is not closed" in said.output
    rules.write_text("name: mine\nextends: default\nrules:\n  - id: it's\n    action: [junk\n")  # no quote opened
    said = cli("report", tmp_path / "out", "--rules", rules)
    assert said.exit_code == 2 and "a quote opened" not in said.output


def test_fsavage_copies_are_freesurfer_templates_under_every_shipped_rule_set(tmp_path):
    """fsaverage was "FreeSurfer templates" under the default set and "FreeSurfer subjects" under volume-only:
    one thing, one name, whichever set junks it."""
    out = project(tmp_path)
    write(out / "sourcedata/freesurfer/sub-01/mri/T1.mgz", b"t1" * 100)
    age_run(out)
    for rules in ("default", "volume-only", "fmriprepcleanup"):
        planned = cli("plan", out, "--rules", rules, "--format", "jsonl").stdout.splitlines()
        categories = {json.loads(line)["path"].split("/freesurfer/", 1)[-1]: json.loads(line)["category"]
                      for line in planned if "/freesurfer/" in line}
        assert categories["fsaverage/surf/lh.white"] == "FreeSurfer templates", (rules, categories)


def test_explain_says_what_stale_means_where_it_says_stale(tmp_path):
    out = project(tmp_path)
    said = cli("explain", out, out / "work/fmriprep_23_2_wf/sub_01_wf/node0/out.nii.gz")
    assert said.exit_code == 0, said.output
    assert "stale: idle more than 30 days (--stale-after)" in said.output
    shorter = cli("explain", out, out / "work/fmriprep_23_2_wf/sub_01_wf/node0/out.nii.gz", "--stale-after", "400d")
    assert "idle more than 400 days" in shorter.output or "stale" not in shorter.output


def test_the_version_is_read_from_the_run_config_the_same_way_status_reads_it(tmp_path):
    """report said "the version cannot be known" of an output whose dataset_description.json is annexed and not
    here, while status showed 23.2.0 from the same fmriprep.toml: the run config whose content is here gives
    the version to both."""
    from fmriprep_cleanup.fmriprep.identify import identify

    out = tmp_path / "fmriprep"
    run = "20240127-124830_0c970070-7984-4260-b527-e484380e8f41"
    write(out / "sub-01" / "log" / run / "fmriprep.toml", demo.run_config("23.2.0", run, "01"))
    write(out / "sub-01" / "anat" / "sub-01_desc-preproc_T1w.nii.gz", b"t1")
    key = "MD5E-s400--0123456789abcdef0123456789abcdef.json"
    os.symlink(f".git/annex/objects/Xx/Yy/{key}/{key}", out / "dataset_description.json")  # content not here
    pipeline, version, note = identify(str(out), str(out / "dataset_description.json"))
    assert pipeline.key == "fmriprep" and version == "23.2.0" and "version 23.2.0" in note


def test_the_same_warning_about_many_subjects_is_one_line_and_json_keeps_each(tmp_path):
    """100 subjects each with the same unreadable fmriprep.toml printed 100 near-identical warnings."""
    subjects = [f"{n:02d}" for n in range(1, 8)]
    out = project(tmp_path, subjects=subjects)
    run = "20240127-124830_0c970070-7984-4260-b527-e484380e8f41"
    for label in subjects:
        write(out / f"sub-{label}" / "log" / run / "fmriprep.toml", b"[environment\\nversion = 23.2.0\\n")
    age_run(out)
    said = cli("report", out, "--format", "json")
    assert said.exit_code == 0, said.output
    each = [line for line in json.loads(said.stdout)["warnings"] if "fmriprep.toml" in line]
    assert len(each) >= len(subjects)  # JSON: every message, exact
    told = [line for line in said.stderr.splitlines() if "fmriprep.toml" in line]
    assert len(told) == 1 and "sub-*" in told[0] and f"{len(each)} times: sub-01, sub-02, sub-03 and" in told[0]
    [group] = [group for group in json.loads(said.stdout)["warning_groups"] if "fmriprep.toml" in group["message"]]
    assert group["count"] == len(each) and group["subjects"] == [f"sub-{label}" for label in subjects]


def test_every_line_of_the_report_fits_80_columns_and_no_folder_note_breaks_inside_a_word(tmp_path):
    """At 80 columns the header broke "sourcedata/freesurf" / "er in the output", and the energy heading, the
    assumptions (155 characters) and the CodeCarbon line ran past the edge."""
    output, work = demo.build_demo(str(tmp_path))
    shown = on_a_sized_terminal(80, "report", output, "--work-dir", work, "-q")
    assert "Assumptions:" in shown and "CodeCarbon" in shown
    too_long = [line for line in shown.splitlines() if len(line) > 80]
    assert too_long == [], too_long
    assert "(sourcedata/freesurfer in the output)" in shown  # how it was found, whole


def test_the_dry_run_says_what_will_happen_folder_by_folder(tmp_path):
    """The README promised the dry run "lists exactly the files the real run acts on"; it printed totals per
    category. It now names the folders it acts on (the largest, with their files and bytes) and how to list
    every file."""
    out = project(tmp_path, subjects=("01", "02", "03"))
    said = cli("clean", out)
    assert said.exit_code == 0, said.output
    rows = [line.split() for line in said.output.splitlines() if "work/fmriprep_23_2_wf/" in line]
    assert sorted(row[-1].rsplit("/", 1)[-1] for row in rows) == ["sub_01_wf", "sub_02_wf", "sub_03_wf"]
    assert all(row[0] == "6" for row in rows)  # six node outputs in each subject's workflow folder
    assert f"In 4 folders of {out} (each below):" in said.output and "--list" in said.output
    listed = cli("clean", out, "--list")
    assert "In 4 folders" not in listed.output  # the list itself says it, file by file
