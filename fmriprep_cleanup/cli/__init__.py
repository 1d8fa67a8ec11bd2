"""The command line: parsing and rendering over the Python API (api/), one module per command group.

Exit codes (basics/errors.py): 0 done; 2 bad input or refused (one line on stderr, never a traceback);
3 done, but something was skipped or could not be read; 4 a policy's dataset failed; 130/143 stopped by a signal.
"""

from __future__ import annotations

import gc
import sys

import click

from .. import __version__
from .acting import archives, clean, journals, restore
from .common import ARGUMENTS, CleanupGroup, expand_participant_labels
from .dataset import explain, merge, plan, regenerate, report, status
from .demo import demo
from .hygiene import audit, history, run_policy, schedule
from .rulesets import rules


@click.group(cls=CleanupGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="fmriprep-cleanup")
def cli() -> None:
    """Find what fMRIPrep left on disk that no analysis needs, and how much space it takes.

    Start with `fmriprep-cleanup demo`, then `fmriprep-cleanup report PATH`.
    """


for command in (report, merge, plan, status, explain, regenerate, clean, history, restore, archives, journals, audit, run_policy, schedule, rules, demo):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    # A short-lived process that streams millions of small tuples and builds no reference cycles:
    # the cyclic garbage collector would only spend time (about 10 % of a scan) finding nothing.
    gc.disable()
    ARGUMENTS[:] = sys.argv[1:] if argv is None else argv
    cli.main(args=expand_participant_labels(ARGUMENTS), prog_name="fmriprep-cleanup")


__all__ = ["cli", "expand_participant_labels", "main"]
