"""The energy and carbon model, its options, and the reports that show it."""

import csv
import io
import json
import math
import re

import pytest
from conftest import cli as run
from conftest import finish_subjects, make_files, write_description

from fmriprep_cleanup.basics.errors import CleanupError
from fmriprep_cleanup.energy.model import assumptions, carbon_intensities, equivalences, footprint
from fmriprep_cleanup.rules.rulesets import load_rulesets

TB = 10**12


@pytest.fixture
def project(tmp_path):
    out = tmp_path / "out"
    write_description(out)
    make_files(out, {
        "sub-01.html": 2_000_000,
        "sub-01/anat/sub-01_desc-preproc_T1w.nii.gz": 3 * TB // 1000,  # 3 GB
        "sourcedata/freesurfer/fsaverage/surf/lh.white": 7_000_000,
        "work/fmriprep_23_2_wf/sub_01_wf/n/out.nii.gz": 2 * TB // 10,  # 200 GB, sparse
    })
    finish_subjects(out, ["01"])
    return out


def test_model_against_hand_computed_values():
    model = assumptions()  # hpc-hdd: 1.33 W/TB, PUE 1.56, 2 copies, CI 475, 20 kg/TB over 5 years
    result = footprint(TB, model)
    assert result.kwh_per_year == pytest.approx(1.33 * 8.766 * 1.56 * 2)  # 36.3753936
    assert result.kwh_per_year == pytest.approx(36.3753936)
    assert result.operational_kg == pytest.approx(36.3753936 * 0.475)
    assert result.embodied_kg == pytest.approx(20 * 2 / 5)
    assert result.total_kg == pytest.approx(17.27831196 + 8.0)
    ssd = footprint(5 * TB, assumptions("ssd", copies=1, carbon_intensity=100))
    assert ssd.kwh_per_year == pytest.approx(5 * 1.3 * 8.766 * 1.56)
    assert ssd.operational_kg == pytest.approx(ssd.kwh_per_year * 0.1)
    assert ssd.embodied_kg == pytest.approx(5 * 160 / 6)
    assert equivalences(1.75) == {"km_by_car": pytest.approx(10.0), "tree_months": pytest.approx(1750 / 917)}
    assert footprint(0, model).total_kg == 0


def test_every_default_has_a_source():
    for profile in ("hpc-hdd", "hdd", "ssd", "workstation-hdd"):
        model = assumptions(profile)
        for name in ("watts_per_tb", "pue", "copies", "carbon_intensity", "embodied_kg_per_tb", "lifetime_years"):
            assert model.sources[name].strip(), (profile, name)


def test_json_energy_agrees_with_the_formula_from_its_own_assumptions(project):
    data = json.loads(run("report", project, "--format", "json").output)
    energy = data["energy"]
    a = {key: value["value"] for key, value in energy["assumptions"].items() if isinstance(value, dict)}

    def expected(nbytes):
        tb = nbytes / TB
        kwh = tb * a["watts_per_tb"] * 8.766 * a["pue"] * a["copies"]
        operational = kwh * a["carbon_intensity"] / 1000
        embodied = tb * a["embodied_kg_per_tb"] * a["copies"] / a["lifetime_years"]
        return kwh, operational, embodied, operational + embodied

    for part, nbytes in (("total", data["totals"]["bytes"]), ("junk", data["totals"]["junk_bytes"])):
        row = energy[part]
        assert row["bytes"] == nbytes
        got = (row["kwh_per_year"], row["operational_kgco2e_per_year"], row["embodied_kgco2e_per_year"], row["kgco2e_per_year"])
        assert all(math.isclose(x, y, rel_tol=1e-12) for x, y in zip(got, expected(nbytes), strict=True))
    assert energy["junk"]["km_by_car"] == pytest.approx(energy["junk"]["kgco2e_per_year"] * 1000 / 175)
    by_category = {row["category"]: row for row in energy["by_category"]}
    work = by_category["working directory"]
    assert work["junk_bytes"] == 2 * TB // 10
    assert math.isclose(work["junk_kgco2e_per_year"], expected(2 * TB // 10)[3], rel_tol=1e-12)
    assert sum(row["junk_kwh_per_year"] for row in energy["by_category"]) == pytest.approx(energy["junk"]["kwh_per_year"])
    # existing fields are unchanged by the energy object
    assert data["totals"]["junk_bytes"] == 2 * TB // 10 + 7_000_000


def test_country_takes_the_tables_carbon_intensity(project):
    data = json.loads(run("report", project, "--format", "json", "--country", "fr").output)
    ci = data["energy"]["assumptions"]["carbon_intensity"]
    assert ci["value"] == carbon_intensities()["FR"][0] == 51.28
    assert "France" in ci["source"] and data["energy"]["assumptions"]["country"] == "FR"
    assert json.loads(run("report", project, "--format", "json", "--country", "US-CA").output)["energy"]["assumptions"]["carbon_intensity"]["value"] == carbon_intensities()["US-CA"][0]


def test_options_override_profile_and_rule_file(project, tmp_path):
    rules = tmp_path / "green.yaml"
    rules.write_text("version: 1\nname: green\nextends: default\nenergy: {profile: ssd, copies: 3, country: SE}\nrules: []\n")
    from_file = json.loads(run("report", project, "--rules", rules, "--format", "json").output)["energy"]["assumptions"]
    assert (from_file["profile"], from_file["copies"]["value"], from_file["country"]) == ("ssd", 3, "SE")
    overridden = json.loads(run("report", project, "--rules", rules, "--format", "json", "--copies", "1",
                                "--carbon-intensity", "20", "--pue", "1.1").output)["energy"]["assumptions"]
    assert (overridden["copies"]["value"], overridden["carbon_intensity"]["value"], overridden["pue"]["value"]) == (1, 20, 1.1)
    assert overridden["country"] is None and overridden["profile"] == "ssd"
    assert overridden["copies"]["source"] == "given by the user"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--country", "XX"], "unknown country or region code 'XX'"),
        (["--pue", "-1"], "--pue must be positive"),
        (["--pue", "0.5"], "--pue must be at least 1"),
        (["--copies", "-2"], "--copies must be positive"),
        (["--copies", "0"], "--copies must be positive"),
        (["--carbon-intensity", "-5"], "--carbon-intensity must be zero or positive"),
        (["--storage-profile", "tape"], "unknown storage profile 'tape'"),
    ],
)
def test_bad_energy_options_fail_cleanly(project, args, message):
    result = run("report", project, *args)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and message in result.output


def test_bad_energy_section_names_file_and_line(tmp_path):
    rules = tmp_path / "bad.yaml"
    rules.write_text("version: 1\nname: bad\nrules: []\nenergy:\n  watts: 3\n")
    with pytest.raises(CleanupError, match=r"bad.yaml:5: energy: unknown key 'watts'"):
        load_rulesets([str(rules)])
    rules.write_text("version: 1\nname: bad\nrules: []\nenergy: {copies: -1}\n")
    with pytest.raises(CleanupError, match=r"bad.yaml:4: energy: --copies must be positive"):
        load_rulesets([str(rules)])


def test_text_report_has_the_energy_block_with_assumptions_on_one_line(project):
    text = run("report", project, "--country", "DE").output
    assert "Energy and carbon per year of storage" in text
    assert "Junk (avoidable)" in text and "km by car" in text and "tree-months" in text
    assert "Assumptions: hpc-hdd: 1.33 W/TB, PUE 1.56, 2 copies, 338.66 gCO2e/kWh (DE), 20 kgCO2e/TB embodied over 5 years" in text


def test_plan_csv_is_the_per_file_plan(project):
    rows = list(csv.reader(io.StringIO(run("plan", project, "--format", "csv").output)))
    assert rows[0] == ["action", "category", "rule_id", "size", "path"]
    assert len(rows) == 7
    assert ["junk", "working directory", "workdir", str(2 * TB // 10), str(project / "work/fmriprep_23_2_wf/sub_01_wf/n/out.nii.gz")] in rows


def html_report(project, tmp_path, *args):
    path = tmp_path / "report.html"
    result = run("report", project, "--format", "html", "--output", path, *args)
    assert result.exit_code == 0, result.output
    return path.read_text()


def test_html_is_self_contained_and_its_numbers_are_the_jsons(project, tmp_path):
    page = html_report(project, tmp_path)
    assert not re.search(r"""(src|href)\s*=|url\(|@import|<link|<script(?![^>]*application/json)""", page, re.IGNORECASE)
    data = json.loads(run("report", project, "--format", "json").output)
    embedded = json.loads(re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S).group(1))
    assert {k: v for k, v in embedded.items() if k != "command"} == {k: v for k, v in data.items() if k != "command"}
    cards = {key: float(value) for key, value in re.findall(r'data-key="(\w+)" data-value="([^"]+)"', page)}
    assert cards["junk_bytes"] == data["totals"]["junk_bytes"]
    assert cards["junk_files"] == data["totals"]["junk_files"]
    assert cards["junk_kwh_per_year"] == data["energy"]["junk"]["kwh_per_year"]
    assert cards["junk_kgco2e_per_year"] == data["energy"]["junk"]["kgco2e_per_year"]
    html_rows = re.findall(r'<tr data-category="([^"]+)"><td>[^<]*</td><td data-files="(\d+)">.*?data-bytes="(\d+)".*?'
                           r'data-junk-bytes="(\d+)".*?data-junk-kg="([^"]+)"', page)
    energy = {row["category"]: row for row in data["energy"]["by_category"]}
    assert [(c, int(f), int(b), int(j)) for c, f, b, j, _ in html_rows] == [
        (r["category"], r["files"], r["bytes"], r["junk_bytes"]) for r in data["by_category"]]
    assert all(float(kg) == energy[c]["junk_kgco2e_per_year"] for c, _, _, _, kg in html_rows)
    for text in ("fMRIPrep 23.2.0", "BIDS layout", "default, workdir-only", "Storj", "Uptime Institute"):
        assert text in page


def test_html_charts_scale_to_hundreds_of_subjects(tmp_path):
    out = tmp_path / "big"
    write_description(out)
    make_files(out, {f"work/fmriprep_23_2_wf/sub_{n:03d}_wf/n/out.nii.gz": 1000 + n for n in range(300)})
    finish_subjects(out, [f"{n:03d}" for n in range(300)])
    page = html_report(out, tmp_path)
    assert "Per subject (300)" in page  # "(no subject)" is not a subject
    chart = page[page.index('aria-label="kept and junk bytes per subject"'):]
    chart = chart[:chart.index("</svg>")]
    assert chart.count('class="junk"') == 50 and "files of no subject" in chart  # the 50 with the most junk
    assert "sub-299" in chart and "sub-000" not in chart
    table = page[page.index('<table id="subjects"'):]
    assert table[:table.index("</table>")].count("<tr data-status=") == 300  # every subject in the table


def test_cloud_carbon_footprint_profiles_sit_beside_the_others_with_their_sources():
    from fmriprep_cleanup.energy.model import assumptions, footprint

    hdd, ssd = assumptions("ccf-hdd"), assumptions("ccf-ssd")
    assert (hdd.watts_per_tb, ssd.watts_per_tb) == (0.65, 1.2)
    assert "Cloud Carbon Footprint" in hdd.sources["watts_per_tb"] and "1.2 Wh per TB-hour" in ssd.sources["watts_per_tb"]
    # 1 TB for a year: 0.65 W x 8,766 h x PUE 1.56 x 2 copies = 17.78 kWh
    assert abs(footprint(10**12, hdd).kwh_per_year - 0.65 * 8.766 * 1.56 * 2) < 1e-9
