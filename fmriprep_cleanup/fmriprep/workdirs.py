"""Working directories (-w): recognising one (its workflow folder holding subjects' folders), finding the one of an
output (inside it, recorded in its newest run config, or work/ beside it), and what its run folders record
(the output directory it ran for: another dataset's, or one that no longer exists - orphaned).

Only a few folders are listed and a few run configs read; the scan comes later.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from typing import Any

from ..basics.errors import CleanupError
from ..basics.folders import BY_NAME, list_folder
from ..basics.guarded import load_toml
from .layout import RUN_UUID, STATE_DIR_NAME, SUBJECT_WORKFLOW_DIR
from .pipelines import Pipeline, pipeline_by_key, pipeline_of_workflow_dir

# Folders of an output directory that are never a working directory: no need to look inside.
KNOWN_OUTPUT_FOLDERS = {"sourcedata", "logs", "figures", "fmriprep", "freesurfer", STATE_DIR_NAME}


def pipeline_of_workdir_name(name: str) -> tuple[str, str | None] | None:
    """(pipeline key, version) when ``name`` is itself a workflow folder (the user gave WORK/fmriprep_24_1_wf)."""
    found = pipeline_of_workflow_dir(name)
    return (found[0].key, found[1]) if found else None


def list_dir(path: str) -> list[os.DirEntry]:
    """A folder discovery must read; CleanupError (the command stops) saying why it cannot."""
    try:
        with os.scandir(path) as entries:
            return sorted(entries, key=BY_NAME)
    except PermissionError:
        raise CleanupError(f"cannot read {path}: permission denied") from None
    except OSError as exc:
        raise CleanupError(f"cannot read {path}: {exc.strerror or exc}") from None


def workdir_version(path: str, pipeline: str | None = "fmriprep") -> tuple[bool, str | None]:
    """(is a working directory of the pipeline, version from the workflow folder name); ``pipeline`` None:
    of any pipeline (see workdir_pipeline)."""
    found = workdir_pipeline(path, pipeline)
    return (True, found[1]) if found else (False, None)


def workdir_pipeline(path: str, pipeline: str | None = None) -> tuple[str, str | None] | None:
    """(pipeline key, version) of the working directory at ``path``: a workflow folder holding a subject's
    workflow folder (or, for a pipeline whose working directory is not per subject - MRIQC -, any folder)."""
    try:
        entries = list_dir(path)
    except CleanupError:
        return None
    for entry in entries:
        found = pipeline_of_workflow_dir(entry.name)
        if found is None or (pipeline is not None and found[0].key != pipeline) \
                or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            inner = list_dir(entry.path)
        except CleanupError:
            continue
        per_subject = found[0].subject_workflows
        if any((SUBJECT_WORKFLOW_DIR.match(child.name) or not per_subject) and child.is_dir(follow_symlinks=False)
               for child in inner):
            return found[0].key, found[1]
    return None


def find_workdirs(folder: str, entries: list[os.DirEntry], pipeline: str = "fmriprep",
                   known: frozenset[str] = frozenset()) -> list[str]:
    """Working directories kept inside the output directory (e.g. OUT/work), as fMRIPrepCleanup's example has;
    ``known``: folders earlier cleanups of the dataset acted on, still its working directory once emptied of
    the subjects' folders (by the shards of a job array, say)."""
    found = []
    for entry in entries:
        if entry.name.startswith("sub-") or entry.name in KNOWN_OUTPUT_FOLDERS:
            continue
        path = os.path.join(folder, entry.name)
        if entry.is_dir(follow_symlinks=False) and (path in known or workdir_version(entry.path, pipeline)[0]):
            found.append(path)
    return found


def recorded_outputs(workdir: str) -> list[str]:
    """The output directories the run folders of a working directory ran for: ``execution.output_dir`` of
    each ``<run_uuid>/config.toml`` fMRIPrep (20.1 and later) writes there, as the run saw them."""
    outputs: list[str] = []
    for entry in listing(workdir):
        if RUN_UUID.match(entry.name) and entry.is_dir(follow_symlinks=False):
            try:
                recorded = read_run_config(os.path.join(entry.path, "config.toml")).get("output_dir")
            except (OSError, ValueError):
                continue
            if isinstance(recorded, str) and recorded and recorded not in outputs:
                outputs.append(recorded)
    return outputs


RECORDED_WORKDIR_MISSING = "the working directory recorded in"  # how that warning starts


PathMap = tuple[tuple[str, str], ...]  # (path as a container saw it, the same path on this machine)


def map_path(path: str, path_map: PathMap) -> str:
    """A path a run recorded, as this machine sees it: the longest matching container prefix is replaced
    (``/out=/project/ds/derivatives/fmriprep`` maps /out/sub-01 to /project/ds/derivatives/fmriprep/sub-01)."""
    for container, host in sorted(path_map, key=lambda pair: -len(pair[0])):
        container = container.rstrip("/") or "/"
        if path == container or path.startswith(container.rstrip("/") + "/"):
            return host.rstrip("/") + path[len(container.rstrip("/")):]
    return path


def orphaned_output(workdir: str, path_map: PathMap = ()) -> str | None:
    """The output directory a working directory ran for, when it provably no longer exists: every output its
    run folders record (mapped to this machine) is gone while the folder that held it is here. None when some
    recorded output exists, when nothing is recorded, or when the path cannot be judged here (a container path
    such as /out, whose parent is /): a cache is called orphaned only on evidence."""
    recorded = [map_path(path, path_map) for path in recorded_outputs(workdir)]
    if not recorded or any(os.path.isdir(path) for path in recorded):
        return None
    for path in recorded:
        parent = os.path.dirname(os.path.normpath(path))
        while parent != "/" and not os.path.isdir(parent):
            parent = os.path.dirname(parent)
        if parent == "/":
            return None  # nothing of the path exists here: another machine's or a container's path
    return recorded[0]


def run_ids_of_workdir(workdir: str) -> set[str]:
    """The run UUIDs a working directory names, written with "_" for "-" as nipype names nodes: its
    ``<run_uuid>/`` folders (20.1 on) and each run's FreeSurfer node in a workflow folder
    (``fmriprep_23_2_wf/fsdir_run_<run_uuid>``)."""
    found = set()
    for entry in listing(workdir):
        if RUN_UUID.match(entry.name):
            found.add(entry.name.replace("-", "_"))
        elif pipeline_of_workflow_dir(entry.name) and entry.is_dir(follow_symlinks=False):
            found |= {inner.name[len("fsdir_run_"):] for inner in listing(entry.path)
                      if inner.name.startswith("fsdir_run_")}
    return found


def run_ids_of_output(derivatives: str) -> set[str]:
    """The run UUIDs an output's subjects' log folders name (``sub-<label>/log/<run_uuid>/``), "_" for "-"."""
    return {run.name.replace("-", "_") for subject in listing(derivatives) if subject.name.startswith("sub-")
            and subject.is_dir(follow_symlinks=False)
            for run in listing(os.path.join(subject.path, "log")) if RUN_UUID.match(run.name)}


def other_dataset_of(workdir: str, output_dir: str, derivatives: str) -> str | None:
    """The other dataset a working directory ran for, if its run folders say so: a recorded output directory
    that exists here and is not this one. None when they name this dataset or cannot tell (no run folders,
    or only container paths such as /out that do not exist on this machine), and when the same run named both
    (one run UUID in the output's log folders and in the working directory): a container records its own paths
    (/tmp), which may well exist here."""
    if run_ids_of_workdir(workdir) & run_ids_of_output(derivatives):
        return None
    ours = {os.path.realpath(output_dir), os.path.realpath(derivatives)}
    for recorded in recorded_outputs(workdir):
        if os.path.isdir(recorded) and os.path.realpath(recorded) not in ours:
            return recorded
    return None


def only_ours(workdirs: list[str], output_dir: str, derivatives: str, warnings: list[str],
              left_out: dict[str, str]) -> list[str]:
    """Working directories found without --work-dir, less those whose run folders belong to another dataset
    (into ``left_out``: folder -> why, so that files of one inside the output are not taken for outputs)."""
    kept = []
    for workdir in workdirs:
        other = other_dataset_of(workdir, output_dir, derivatives)
        if other is None:
            kept.append(workdir)
        else:
            warnings.append(f"working directory {workdir} left out: its run folders record another output directory "
                         f"({other}); give --work-dir {workdir} to include it")
            left_out[workdir] = (f"its run folders record another output directory ({other}): another run's "
                                 f"working directory, left as it is (--work-dir {workdir} includes it)")
    return kept


def listing(path: str) -> list[os.DirEntry]:
    """A folder's entries, or none where it cannot be read (for evidence that may simply be absent)."""
    return list_folder(path)[0]


RUN_CONFIGS_REMEMBERED = 20_000
_run_configs: dict[tuple[str, int, int, int, int, int], dict[str, Any]] = {}


def read_run_config(path: str) -> dict[str, Any]:
    """The parts of an fmriprep.toml (or a work dir's config.toml) we use; ValueError if it cannot be read or parsed.

    Each file is parsed once per process while it stays the same file (same inode, size, times): a report
    asks for every subject's config several times (status, runs, emissions)."""
    try:
        st = os.stat(path)
    except OSError:
        st = None
    key = None if st is None else (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key is not None and key in _run_configs:
        return dict(_run_configs[key])
    try:
        config = load_toml(path, "run config")
    except CleanupError as exc:
        raise ValueError(str(exc)) from None
    settings = _run_config_settings(config)
    if key is not None and len(_run_configs) < RUN_CONFIGS_REMEMBERED:
        _run_configs[key] = dict(settings)
    return settings


def _run_config_settings(config: dict[str, Any]) -> dict[str, Any]:
    environment, execution = config.get("environment"), config.get("execution")
    environment = environment if isinstance(environment, dict) else {}
    execution = execution if isinstance(execution, dict) else {}
    spaces = execution.get("output_spaces")
    labels = execution.get("participant_label")
    return {
        "version": environment.get("version"),
        "work_dir": execution.get("work_dir"),
        "output_dir": execution.get("output_dir"),
        "output_spaces": " ".join(spaces) if isinstance(spaces, list) else spaces,
        "run_uuid": execution.get("run_uuid"),
        "participant_label": [str(label) for label in labels] if isinstance(labels, list) else labels,
    }


def newest_run_config(derivatives: str, config_name: str | None = "fmriprep.toml") -> tuple[str, dict[str, Any]] | None:
    """(path, settings) of the newest run config (fmriprep.toml, qsiprep.toml...) of any subject, for finding
    the recorded work dir."""
    newest: tuple[str, str] | None = None
    if config_name is None:
        return None
    for entry in listing(derivatives):
        if entry.name.startswith("sub-") and entry.is_dir(follow_symlinks=False):
            for run in listing(os.path.join(entry.path, "log")):
                candidate = os.path.join(run.path, config_name)
                if run.is_dir(follow_symlinks=False) and os.path.isfile(candidate) and (newest is None or run.name > newest[0]):
                    newest = (run.name, candidate)
    if newest is None:
        return None
    try:
        return newest[1], read_run_config(newest[1])
    except (OSError, ValueError):
        return None


def recorded_or_beside(derivatives: str, output_dir: str, notes: list[str], warnings: list[str],
                        found: dict[str, str], pipeline: Pipeline, known: frozenset[str] = frozenset()) -> list[str]:
    """The working directory when --work-dir is not given and none is inside the output: the one the
    newest fmriprep.toml records, if it exists here; else a work/ beside the output directory (fMRIPrep's
    OUTPUT_DIR). No further guessing."""
    recorded = newest_run_config(derivatives, pipeline.run_config)
    if recorded is not None and recorded[1].get("work_dir"):
        work_dir = str(recorded[1]["work_dir"])
        if os.path.isdir(work_dir) and (os.path.realpath(work_dir) in known or workdir_version(work_dir, pipeline.key)[0]):
            found[os.path.realpath(work_dir)] = f"recorded in {recorded[0]}"
            return [os.path.realpath(work_dir)]
        missing = f"{RECORDED_WORKDIR_MISSING} {recorded[0]} ({work_dir}) is not here (a container path?)"
    else:
        missing = None
    beside = os.path.join(os.path.dirname(output_dir), "work")
    if os.path.isdir(beside) and not os.path.islink(beside) and (
            os.path.realpath(beside) in known or workdir_version(beside, pipeline.key)[0]):
        found[os.path.realpath(beside)] = "the work/ beside the output"
        if missing:
            notes.append(f"{missing}; the work/ beside the output is used")
        return [os.path.realpath(beside)]
    if missing:
        warnings.append(f"{missing}; give --work-dir to include it")
    return []


def check_directory(path: str, what: str) -> str:
    if not os.path.lexists(path):
        raise CleanupError(f"{path}: no such directory (expected {what})")
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CleanupError(f"{path} is a symlink loop, not a directory (expected {what})") from None
        if os.path.islink(path):
            raise CleanupError(f"{path} is a symlink to nothing ({exc.strerror}), not a directory (expected {what})") from None
        raise CleanupError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise CleanupError(f"{path} is a file, not a directory (expected {what})")
    return os.path.realpath(path)


KnownRoots = Callable[[str], "set[str]"]  # dataset identity -> folders earlier cleanups of it acted on


def explicit_workdir(work_dir: str, identity: str | None, known_roots: KnownRoots | None, notes: list[str],
                      pipeline: str = "fmriprep") -> str:
    """The working directory the user named. One an earlier cleanup emptied is still one: an empty folder, or
    a folder the dataset's journal records as its working directory (nothing fMRIPrep wrote is left in it)."""
    path = check_directory(os.path.abspath(os.path.expanduser(work_dir)), "an fMRIPrep working directory")
    if pipeline_by_key(pipeline).workflow_dir.match(os.path.basename(path)) or workdir_version(path, pipeline)[0]:
        return path
    if not [entry for entry in listing(path) if entry.name != STATE_DIR_NAME]:
        notes.append(f"working directory {path} is empty (emptied by an earlier cleanup?)")
        return path
    if identity is not None and known_roots is not None and path in known_roots(identity):
        notes.append(f"working directory {path} holds nothing of fMRIPrep's any more (an earlier cleanup emptied it)")
        return path
    prefix = pipeline_by_key(pipeline).workflow_prefix
    raise CleanupError(
        f"{path} is not {'an fMRIPrep' if pipeline == 'fmriprep' else 'a ' + pipeline_by_key(pipeline).name} "
        f"working directory: no {prefix}_wf/ or {prefix}_<major>_<minor>_wf/ "
        "holding single_subject_<label>_wf/ or sub_<label>_wf/"
    )
