"""Compute beside storage: CodeCarbon records of several shapes attributed to subjects, and the break-even."""

import json
import os

from click.testing import CliRunner
from conftest import make_files, write_description

from fmriprep_cleanup.cli import cli
from fmriprep_cleanup.fmriprep import demo

RUN_A = "20240101-100000_0c970070-7984-4260-b527-e484380e8f41"  # sub-01 and sub-02 in one run
RUN_B = "20240102-100000_ae2f0b35-36b4-47c2-b987-1111907f4deb"  # sub-03
OLD_12 = ("timestamp,project_name,run_id,duration,emissions,emissions_rate,cpu_power,gpu_power,ram_power,"
          "cpu_energy,gpu_energy,ram_energy\n2024-01-01T12:00:00,fMRIPrep,x,7200,0.5,0.0001,40,0,10,0.6,0,0.1\n")
V28 = ("timestamp,project_name,run_id,experiment_id,duration,emissions,emissions_rate,cpu_power,gpu_power,"
       "ram_power,cpu_energy,gpu_energy,ram_energy,energy_consumed,country_name,country_iso_code,region,"
       "cloud_provider,cloud_region,os,python_version,codecarbon_version,cpu_count,cpu_model,gpu_count,gpu_model,"
       "longitude,latitude,ram_total_size,tracking_mode,on_cloud,pue\n"
       "2024-01-02T12:00:00,fMRIPrep,y,z,3600,0.9,0.00025,40,0,10,1.5,0,0.3,1.8,Canada,CAN,quebec,,,Linux,3.11,"
       "2.8.0,8,cpu,0,,0,0,32,machine,N,1.0\n")
V33 = V28.replace("tracking_mode,on_cloud,pue", "tracking_mode,cpu_utilization_percent,gpu_utilization_percent,"
                  "ram_utilization_percent,ram_used_gb,on_cloud,pue,wue,water_consumed").replace(
    "2024-01-02T12:00:00,fMRIPrep,y,z,3600,0.9", "2024-01-01T11:00:00,fMRIPrep,w,z,600,0.1").replace(
    "machine,N,1.0", "machine,50,0,20,8,N,1.0,0,0")


def build(tmp_path, emissions=True):
    out = tmp_path / "out"
    write_description(out)
    for run, labels in ((RUN_A, ["01", "02"]), (RUN_B, ["03"])):
        for label in labels:
            log = out / f"sub-{label}" / "log" / run
            log.mkdir(parents=True)
            config = demo.run_config("23.2.0", run, label).replace(
                f'participant_label = ["{label}"]'.encode(),
                ("participant_label = [" + ", ".join(f'"{x}"' for x in labels) + "]").encode())
            (log / "fmriprep.toml").write_bytes(config)
        for label in labels:
            (out / f"sub-{label}.html").write_bytes(b"<html>No errors to report!</html>")
    make_files(out, {"work/fmriprep_23_2_wf/sub_03_wf/n/out.nii.gz": 10**11})  # 100 GB of cache for sub-03
    for folder, _, names in os.walk(out):
        for name in names:
            os.utime(os.path.join(folder, name), (1_700_000_000, 1_700_000_000))
    if emissions:
        (out / "logs").mkdir(exist_ok=True)
        (out / "logs" / "emissions.csv.bak").write_text(OLD_12)  # a header change renamed the old file
        (out / "logs" / "emissions.csv").write_text(V28)
        per_run = out / "logs" / "codecarbon" / RUN_A.split("_", 1)[1]
        per_run.mkdir(parents=True)
        (per_run / "emissions.csv").write_text(V33)
    return out


def compute(out, *options):
    result = CliRunner().invoke(cli, ["report", str(out), "--format", "json", "-q", *options])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["compute"]


def test_records_of_three_codecarbon_shapes_are_attributed_to_subjects(tmp_path):
    data = compute(build(tmp_path))
    by_subject = {row["subject"]: row for row in data["subjects"]}
    assert data["records"] == 3 and abs(data["recorded_kgco2e"] - 1.5) < 1e-12
    # run A (old file's row by time, and its own codecarbon/<uuid>/ file): 0.5 + 0.1 shared by sub-01 and sub-02
    assert abs(by_subject["01"]["compute_kgco2e"] - 0.3) < 1e-12 and abs(by_subject["02"]["compute_kgco2e"] - 0.3) < 1e-12
    assert abs(by_subject["03"]["compute_kgco2e"] - 0.9) < 1e-12  # run B, by time, from the 2.8 file
    assert by_subject["03"]["compute_kwh"] == 1.8 and by_subject["01"]["compute_source"] == "recorded"
    assert any("emissions.csv.bak" in source for source in by_subject["01"]["sources"])


def test_break_even_by_hand(tmp_path):
    data = compute(build(tmp_path))
    sub03 = {row["subject"]: row for row in data["subjects"]}["03"]
    terabytes = 10**11 / 10**12
    kwh = terabytes * 1.33 * 8.766 * 1.56 * 2  # hpc-hdd: W/TB, hours per year / 1000, PUE, copies
    kg_per_year = kwh * 475 / 1000 + terabytes * 20 * 2 / 5  # operational + embodied
    assert abs(sub03["workdir_kgco2e_per_year"] - kg_per_year) < 1e-9
    assert abs(sub03["break_even_years"] - 0.9 / kg_per_year) < 1e-9  # ≈ 0.21 years of keeping = one re-run


def test_a_dataset_without_records_says_so_and_an_estimate_is_marked(tmp_path):
    out = build(tmp_path, emissions=False)
    data = compute(out)
    assert data["records"] == 0 and "no CodeCarbon record" in data["note"]
    assert all(row["compute_kgco2e"] is None for row in data["subjects"])
    text = CliRunner().invoke(cli, ["report", str(out), "-q"]).stdout
    assert "no CodeCarbon record here" in text
    estimated = compute(out, "--compute-estimate", "2.0")
    assert {row["compute_source"] for row in estimated["subjects"]} == {"estimate"}
    assert all(row["compute_kgco2e"] == 2.0 for row in estimated["subjects"])


def test_a_failed_runs_cache_is_weighed_against_a_re_run(tmp_path):
    out = build(tmp_path)
    (out / "sub-03" / "log" / RUN_B / "crash-20240102-110000-root-node-x.txt").write_text("crash")
    os.utime(out / "sub-03" / "log" / RUN_B / "crash-20240102-110000-root-node-x.txt", (1_700_000_000,) * 2)
    sub03 = {row["subject"]: row for row in compute(out)["subjects"]}["03"]
    assert sub03["status"] == "failed"
    kept = sub03["workdir_kgco2e_per_year"] * 30 / 365.25
    assert kept < 0.9 and sub03["verdict"].startswith("keeping its cache for 30 days costs")
    assert "less than one re-run" in sub03["verdict"]


def test_the_html_report_has_the_compute_table(tmp_path):
    out = build(tmp_path)
    page = tmp_path / "report.html"
    assert CliRunner().invoke(cli, ["report", str(out), "--format", "html", "-o", str(page), "-q"]).exit_code == 0
    html = page.read_text()
    table = html[html.index('<table id="compute">'):]
    table = table[:table.index("</table>")]
    assert table.count("<tr>") == 4 and "sub-03" in table and " yr</td>" in table  # header and three subjects
    chart = html[html.index('aria-label="kgCO2e of compute and of a year of storage per subject"'):]
    chart = chart[:chart.index("</svg>")]
    assert "sub-03: compute" in chart and "sub-03: keeping it a year" in chart and "0.9 kgCO2e" in chart


def test_the_compute_csv_has_a_row_per_subject(tmp_path):
    import csv
    import io

    out = build(tmp_path)
    result = CliRunner().invoke(cli, ["report", str(out), "--format", "compute-csv", "-q"])
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["subject"] for row in rows] == ["01", "02", "03"]
    assert abs(float(rows[2]["compute_kgco2e"]) - 0.9) < 1e-12 and rows[2]["compute_source"] == "recorded"
    assert float(rows[2]["break_even_years"]) > 0
