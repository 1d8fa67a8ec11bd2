"""Names vulture cannot see used (tests/test_layers.py::test_no_dead_code): each is public, documented
interface read by name, never dead code. Add a name here only with the reason it is used."""

from fmriprep_cleanup.basics.options import Flag
from fmriprep_cleanup.cli import acting, hygiene, rulesets
from fmriprep_cleanup.fmriprep.evidence import SubjectStatus
from fmriprep_cleanup.plan.options import ArchiveFormat, Compression
from fmriprep_cleanup.plan.summary import Counts

# Commands of the command line: click registers them by decorator (docs/cli-reference.md).
acting.archives_list, acting.archives_verify, acting.archives_prune
acting.journals_list, acting.journals_discard, acting.journals_finish
hygiene.schedule_slurm_array, hygiene.schedule_print
rulesets.rules_show, rulesets.rules_validate

# An option's declaration: cli/common.py hands these fields to click by name (getattr).
Flag.metavar, Flag.multiple, Flag.is_flag, Flag.show_default

# Choices offered by their values (Choice.values()): --archive-format tree, --compress gz|xz.
ArchiveFormat.TREE, Compression.GZ, Compression.XZ

# Fields of the report's JSON and the Python API's results (docs/python-api.md, docs/output-formats.md), written by
# dataclasses.asdict.
Counts.allocated_bytes, Counts.keep_files, Counts.keep_bytes, Counts.junk_files, Counts.junk_linked_bytes
Counts.annexed_bytes, Counts.in_git_bytes
SubjectStatus.newest_run_time, SubjectStatus.recorded_work_dir, SubjectStatus.workdir_bytes
SubjectStatus.output_bytes
