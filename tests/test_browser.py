"""The HTML report rendered by a real browser: headless Chromium driven by selenium."""

import os
import shutil
import subprocess
import sys

import pytest
from conftest import finish_subjects, make_files, write_description

pytestmark = [pytest.mark.integration]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def require_browser():
    """Skip on a laptop without Chromium; in CI (CI=true) its absence is a failure."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        selenium_missing = True
    else:
        selenium_missing = False
    if CHROMIUM and CHROMEDRIVER and not selenium_missing:
        return
    message = "needs Debian's chromium and chromium-driver and the selenium package (pip install '.[test]')"
    if os.environ.get("CI") == "true":
        pytest.fail("CI must run the browser test: " + message)
    pytest.skip(message)


@pytest.fixture
def browser():
    require_browser()
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1200,1600"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def test_html_report_renders_its_charts_and_loads_nothing(browser, tmp_path):
    out = tmp_path / "out"
    write_description(out)
    make_files(out, {
        "sub-01/anat/sub-01_desc-preproc_T1w.nii.gz": 60_000_000,
        "sourcedata/freesurfer/fsaverage/surf/lh.white": 9_000_000,
        **{f"work/fmriprep_23_2_wf/sub_0{s}_wf/node{n}/out.nii.gz": 100_000_000 + n for s in (1, 2) for n in range(4)},
    })
    finish_subjects(out, ["01", "02"])  # runs that ended long ago: their working directories are junk
    page = tmp_path / "report.html"
    subprocess.run([sys.executable, "-c", "from fmriprep_cleanup.cli import main; main()", "report", str(out),
                    "--format", "html", "--output", str(page)], check=True)
    assert "fmriprep-cleanup report " in page.read_text()  # the exact command is in the report
    browser.get(page.as_uri())
    assert browser.title.startswith("fmriprep-cleanup report")
    charts = browser.execute_script(
        "return Array.from(document.querySelectorAll('svg')).map(svg => {"
        "  const box = svg.getBoundingClientRect();"
        "  const bars = Array.from(svg.querySelectorAll('rect')).map(r => r.getBoundingClientRect());"
        "  return {width: box.width, height: box.height, bars: bars.length,"
        "          drawn: bars.filter(b => b.width > 0 && b.height > 0).length}; })")
    assert len(charts) == 3  # categories, subjects, largest junk folders
    for chart in charts:
        assert chart["width"] > 0 and chart["height"] > 0
        assert chart["bars"] > 0 and chart["drawn"] == chart["bars"]
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    failures = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert failures == []
    card = browser.execute_script("return document.querySelector('[data-key=junk_bytes]').getBoundingClientRect().width")
    assert card > 0


def render(tmp_path, *args):
    """Run the command line; the HTML it wrote to --output."""
    page = tmp_path / f"{args[0]}.html"
    subprocess.run([sys.executable, "-c", "from fmriprep_cleanup.cli import main; main()", *map(str, args),
                    "--format", "html", "--output", str(page)], check=True, stderr=subprocess.DEVNULL)
    return page


LAYOUT_PROBLEMS = """
const view = document.documentElement.clientWidth;
const problems = [];
if (document.documentElement.scrollWidth > view + 1) problems.push('page scrolls sideways: ' + document.documentElement.scrollWidth + ' > ' + view);
for (const svg of document.querySelectorAll('svg')) {
  const box = svg.getBoundingClientRect();
  if (box.right > view + 1) problems.push('chart wider than the page: ' + svg.getAttribute('aria-label'));
  for (const text of svg.querySelectorAll('text')) {
    const t = text.getBoundingClientRect();
    if (t.left < box.left - 1 || t.right > box.right + 1) problems.push('text outside its chart: ' + text.textContent);
  }
}
for (const table of document.querySelectorAll('table')) {
  const scroller = table.parentElement;
  if (scroller.getBoundingClientRect().right > view + 1) problems.push('table sticks out: ' + table.id);
}
for (const value of document.querySelectorAll('.card .value')) {
  const style = getComputedStyle(value);
  if (value.getBoundingClientRect().height > 2.2 * parseFloat(style.lineHeight || style.fontSize)) problems.push('card value wraps: ' + value.textContent);
}
return problems;
"""


@pytest.fixture
def site(tmp_path):
    """A dataset with a failed subject and deep working-directory folders, its audit and a history."""
    out = tmp_path / "project" / "ds001" / "derivatives" / "fmriprep"
    write_description(out)
    deep = "very_long_workflow_name_wf/another_long_node_name_with_details/yet_another_nested_folder_name"
    make_files(out, {
        "sub-01/anat/sub-01_desc-preproc_T1w.nii.gz": 60_000_000,
        "sourcedata/freesurfer/fsaverage/surf/lh.white": 9_000_000,
        **{f"work/fmriprep_23_2_wf/sub_0{s}_wf/{deep}_{n}/out.nii.gz": 100_000_000 + n for s in (1, 2, 3) for n in range(4)},
    })
    finish_subjects(out, ["01", "02", "03"])
    crash = next((out / "sub-02" / "log").iterdir()) / "crash-20240101-000000-root-node-x.txt"
    crash.write_text("crash")
    os.utime(crash, (1_600_000_000, 1_600_000_000))
    history = tmp_path / "h.sqlite"
    from fmriprep_cleanup.ops.history import History, RunRecord

    database = History(str(history))
    for month in range(6):
        started = 1_760_000_000 + month * 30 * 86400
        database.add(RunRecord(started, started + 60, str(out), "default", "delete", 1000, (month + 1) * 10**9,
                               0, 0, 0.5, 0.2 * (month + 1), 0, host="node1", user="alice"))
    database.close()
    return tmp_path, out, history


@pytest.mark.parametrize("width", [390, 1400])
def test_every_page_reads_at_phone_and_desktop_widths(browser, site, width):
    tmp_path, out, history = site
    pages = [render(tmp_path, "report", out), render(tmp_path, "audit", tmp_path / "project"),
             render(tmp_path, "history", "--history", history)]
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": width < 500})
    for page in pages:
        browser.get(page.as_uri())
        assert browser.execute_script("return window.innerWidth") == width
        assert browser.execute_script(LAYOUT_PROBLEMS) == [], page.name
        assert browser.execute_script("return document.querySelectorAll('svg rect').length") > 0, page.name


def test_the_report_has_a_subject_table_and_labels_what_bars_show(browser, site):
    tmp_path, out, _ = site
    browser.get(render(tmp_path, "report", out).as_uri())
    statuses = browser.execute_script(
        "return Array.from(document.querySelectorAll('#subjects tbody tr')).map(r => [r.cells[0].textContent, r.dataset.status])")
    assert statuses == [["sub-01", "finished"], ["sub-02", "failed"], ["sub-03", "finished"]]
    heading = browser.execute_script("return Array.from(document.querySelectorAll('h2')).map(h => h.textContent)")
    assert "Per subject (3), most junk first" in heading  # "(no subject)" is not a subject
    folder_labels = browser.execute_script(
        "return Array.from(document.querySelectorAll('svg[aria-label^=\"junk bytes\"] text.label'))"
        ".map(t => [t.lastChild.textContent, t.querySelector('title').textContent])")
    assert any(shown != full for shown, full in folder_labels)  # the long ones are shortened...
    for shown, full in folder_labels:  # ...to whole folders at the end of the path, the full path on hover
        assert shown == full or (shown.startswith("…/") and full.endswith(shown.rsplit("…/", 1)[-1]) and len(shown) <= 48)
    values = browser.execute_script(
        "return Array.from(document.querySelectorAll('svg[aria-label^=\"junk bytes\"] text.value')).map(t => t.textContent)")
    assert values and all(value.endswith(" junk") for value in values)  # sorted by junk, labelled with junk


def test_the_audit_page_says_when_how_and_on_what_assumptions(browser, site):
    tmp_path, _, _ = site
    browser.get(render(tmp_path, "audit", tmp_path / "project", "--pue", "1.3").as_uri())
    text = browser.execute_script("return document.body.innerText")
    assert "fmriprep-cleanup audit" in text and "--pue 1.3" in text  # the command
    assert browser.execute_script("return document.querySelector('[data-assumption=pue]').textContent") == "1.3"
    assert "given by the user" in browser.execute_script(
        "return document.querySelector('[data-assumption=pue]').parentElement.textContent")
    from fmriprep_cleanup import __version__

    assert f"fmriprep-cleanup {__version__}" in text and "20" in text  # tool version and date


KEY_COLUMNS_OUT_OF_VIEW = """
const [table, keys] = arguments;
const headers = Array.from(document.querySelectorAll('#' + table + ' thead th'));
return keys.filter(key => {
  const cell = headers.find(th => th.textContent === key);
  if (!cell) return true;
  const box = cell.getBoundingClientRect();
  return box.width === 0 || box.right > window.innerWidth + 1;
});
"""


def test_key_columns_stay_in_view_on_a_phone(browser, site):
    tmp_path, out, _ = site
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 390, "height": 900, "deviceScaleFactor": 1, "mobile": True})
    browser.get(render(tmp_path, "report", out).as_uri())
    assert browser.execute_script(KEY_COLUMNS_OUT_OF_VIEW, "subjects", ["Subject", "Run status", "Kept", "Junk"]) == []
    browser.get(render(tmp_path, "audit", tmp_path / "project").as_uri())
    assert browser.execute_script(KEY_COLUMNS_OUT_OF_VIEW, "datasets", ["Dataset", "On this disk", "Reclaimable"]) == []


def test_largest_junk_folder_labels_show_the_subject(browser, site):
    tmp_path, out, _ = site
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 1400, "height": 900, "deviceScaleFactor": 1, "mobile": False})
    browser.get(render(tmp_path, "report", out).as_uri())
    labels = browser.execute_script(
        "return Array.from(document.querySelectorAll('svg[aria-label^=\"junk bytes\"] text.label'))"
        ".map(t => [t.lastChild.textContent, t.querySelector('title').textContent])")
    assert labels
    for shown, full in labels:
        subject = next((part for part in full.split("/") if part.startswith(("sub_", "sub-"))), None)
        if subject is not None:
            assert subject in shown, (shown, full)
