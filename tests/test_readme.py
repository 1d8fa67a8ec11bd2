"""The README's sample outputs are the code's real outputs (see readme_samples.py)."""

from pathlib import Path

from readme_samples import run_sample, same, samples

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_readme_sample_is_what_the_command_prints(tmp_path):
    shown = samples(README.read_text())
    assert len(shown) >= 3 and shown[0][0].startswith("fmriprep-cleanup demo --dir /tmp/demo")
    for command, output in shown:  # in README order: the first builds the demo project the others read
        real = run_sample(command, str(tmp_path))
        assert same(output, real), f"README sample `{command}` differs from its output:\n{real}"


def test_the_readme_documents_every_field_of_the_json_report(tmp_path):
    import json
    import re

    text = README.read_text()
    section = text[text.index("## JSON report"):text.index("## Performance")]
    documented = json.loads(re.search(r"```json\n(.*?)```", section, re.DOTALL).group(1))
    real = json.loads(run_sample("fmriprep-cleanup demo --dir /tmp/demo --format json", str(tmp_path)))
    assert list(documented) == list(real)
    assert list(documented["dataset"]) == list(real["dataset"])
    assert set(real["by_subject"][0]) <= set(documented["by_subject"][0]) | set(real["totals"]) | {"subject"}
