"""The demo command: a small real-shaped fMRIPrep project to try every command on."""

from __future__ import annotations

import sys

import click

from .common import format_option


@click.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=str),
              help="Build the demo project here and keep it (default: a temporary folder, removed afterwards).")
@format_option(["text", "json", "csv"], "text")
def demo(directory: str | None, fmt: str) -> None:
    """Build a small real-shaped fMRIPrep project (sparse files) and report on it.

    \b
    Examples:
      fmriprep-cleanup demo
      fmriprep-cleanup demo --dir /tmp/demo && fmriprep-cleanup clean /tmp/demo/ds003752
    """
    import tempfile

    from ..api.reading import demo as build_demo
    from ..api.reading import make_report, open_plan
    from ..report.text import RENDERERS

    def run(where: str) -> tuple[str, str]:
        output, workdir = build_demo(where)
        sys.stdout.write(RENDERERS[fmt](make_report(open_plan(output, work_dir=workdir))))
        return output, workdir

    if directory:
        output, workdir = run(directory)
        if fmt == "text":
            click.echo(f"\nThe demo project is in {directory}. Try:\n"
                       f"  fmriprep-cleanup plan {output} --work-dir {workdir} --action junk\n"
                       f"  fmriprep-cleanup explain {output} {output}/sub-01.html")
        return
    with tempfile.TemporaryDirectory(prefix="fmriprep-cleanup-demo-") as where:
        run(where)
    if fmt == "text":
        click.echo("\n(The demo project was removed; use --dir DIR to keep it and try plan and explain.)")
