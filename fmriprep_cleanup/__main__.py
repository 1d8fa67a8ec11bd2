"""``python -m fmriprep_cleanup`` runs the command line (for schedulers that need an absolute interpreter)."""

from .cli import main

main()
