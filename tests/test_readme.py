"""The documentation's sample outputs are the code's real outputs (see readme_samples.py), the README stays a
first page, and the CLI reference is the real --help."""

import json
import re
from pathlib import Path

from readme_samples import PAGES, cli_reference, run_sample, same, samples

ROOT = Path(__file__).resolve().parent.parent


def test_every_documented_sample_is_what_the_command_prints(tmp_path):
    shown = [sample for page in PAGES for sample in samples((ROOT / page).read_text())]
    assert len(shown) >= 3 and shown[0][0].startswith("fmriprep-cleanup demo --dir /tmp/demo")
    for command, output in shown:  # in page order: the first builds the demo project the others read
        real = run_sample(command, str(tmp_path))
        assert same(output, real), f"sample `{command}` differs from its output:\n{real}"


def test_the_docs_document_every_field_of_the_json_report(tmp_path):
    text = (ROOT / "docs" / "output-formats.md").read_text()
    section = text[text.index("## JSON report"):]
    documented = json.loads(re.search(r"```json\n(.*?)```", section, re.DOTALL).group(1))
    real = json.loads(run_sample("fmriprep-cleanup demo --dir /tmp/demo --format json", str(tmp_path)))
    assert list(documented) == list(real)
    assert list(documented["dataset"]) == list(real["dataset"])
    assert set(real["by_subject"][0]) <= set(documented["by_subject"][0]) | set(real["totals"]) | {"subject"}


def test_the_readme_is_a_first_page_and_its_links_resolve():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    for page in PAGES + ["README.md"]:
        for target in re.findall(r"\]\((?!https?:|mailto:)([^)#]+)(?:#[^)]*)?\)", (ROOT / page).read_text()):
            assert (ROOT / Path(page).parent / target).exists(), f"{page} links to a missing {target}"


def test_the_cli_reference_is_the_real_help():
    """docs/cli-reference.md is made by `python tests/readme_samples.py --cli-reference`: regenerate it when a
    command or option changes."""
    import difflib

    written, real = (ROOT / "docs" / "cli-reference.md").read_text(), cli_reference()
    assert written == real, "".join(list(difflib.unified_diff(written.splitlines(True), real.splitlines(True)))[:30])
