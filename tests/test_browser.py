"""The HTML report rendered by a real browser: headless Chromium driven by selenium."""

import os
import shutil
import subprocess
import sys

import pytest
from conftest import finish_subjects, make_files, write_description

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
