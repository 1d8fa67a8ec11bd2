"""Discovery: what fMRIPrep wrote, where, and which version wrote it.

fMRIPrep has two output layouts (see README, "Layouts"):

* BIDS layout (fMRIPrep >= 21, the default): the output directory *is* the
  derivatives dataset, FreeSurfer lives in ``sourcedata/freesurfer/``;
* legacy layout (fMRIPrep 1.x-20.x, or ``--output-layout legacy``): the
  derivatives are in ``OUT/fmriprep/`` and FreeSurfer in ``OUT/freesurfer/``.

The nipype working directory (``-w``) holds ``fmriprep_wf/`` (<= 21.x) or
``fmriprep_<major>_<minor>_wf/`` (>= 22) with one folder per subject.

Discovery only lists a few folders and reads one JSON file; the scan comes later.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..basics.annex import key_of
from ..basics.errors import CleanupError
from ..basics.folders import BY_NAME, list_folder
from ..basics.guarded import load_json, load_toml, read_bytes
from ..basics.repository import GitRepo, datalad_problem, find_repository
from .pipelines import Pipeline, known_names, pipeline_by_key, pipeline_named, pipeline_of_workflow_dir, pipelines

STATE_DIR_NAME = ".fmriprep-cleanup"
WORKFLOW_DIR = re.compile(r"^fmriprep(?:_(\d+)_(\d+))?_wf$")
SUBJECT_WORKFLOW_DIR = re.compile(  # NiBabies: single_subject_<label>_<session>_wf
    r"^(?:single_subject_([a-zA-Z0-9]+)(?:_[a-zA-Z0-9]+)?_wf|sub_([a-zA-Z0-9]+)(?:_ses_[a-zA-Z0-9]+)?_wf)$"
)
# fMRIPrep's run identifier (config.execution.run_uuid): a time stamp and a uuid4. Each run writes
# WORK/<run_uuid>/config.toml (and bids_db/) and OUTPUT/sub-<label>/log/<run_uuid>/.
RUN_UUID = re.compile(r"^\d{8}-\d{6}_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# What else fMRIPrep creates at the top of a working directory: the reportlets and, in 20.0, the config.
WORKDIR_OWN_NAMES = frozenset({"reportlets", ".fmriprep.toml"})
# Folders of an output directory that are never a working directory: no need to look inside.
_KNOWN_OUTPUT_FOLDERS = {"sourcedata", "logs", "figures", "fmriprep", "freesurfer", STATE_DIR_NAME}


@lru_cache(maxsize=4096)
def workdir_entry(name: str, pipeline: str = "fmriprep") -> bool:
    """True for what the pipeline creates at the top of a working directory (-w): its workflow folder
    (fmriprep_wf/, fmriprep_<major>_<minor>_wf/), reportlets/, run folders <run_uuid>/ and .fmriprep.toml
    (for fMRIPrep; the same shapes for the others). ``-w`` is often a shared scratch folder: everything else
    there belongs to someone else - another pipeline's workflow folder too."""
    return (name in ("reportlets", f".{pipeline}.toml") or pipeline_by_key(pipeline).workflow_dir.match(name) is not None
            or RUN_UUID.match(name) is not None)


def fmriprep_workdir_entry(name: str) -> bool:
    return workdir_entry(name, "fmriprep")


@dataclass(frozen=True)
class ScanRoot:
    """A folder to scan and the scope its files belong to."""

    scope: str  # "derivatives" | "freesurfer" | "workdir" | "other"
    path: str  # absolute, symlinks resolved once
    fmriprep_entries_only: bool = False  # a working directory (-w): only the pipeline's top entries are its
    pipeline: str = "fmriprep"  # whose output it is (a key of fmriprep.pipelines)

    def owns(self, relpath: str) -> bool:
        """Whether the file at ``relpath`` (below this root, "/"-separated) is the pipeline's to judge at all."""
        return not self.fmriprep_entries_only or workdir_entry(relpath.split("/", 1)[0], self.pipeline)


@dataclass(frozen=True)
class Dataset:
    """Where fMRIPrep's outputs are. Plain data: the scanner and reports read it."""

    path: str  # what the user pointed at, made absolute
    layout: str  # "bids" | "legacy" | "workdir"
    fmriprep_version: str | None
    derivatives: str | None
    freesurfer: str | None
    workdirs: tuple[str, ...]
    container: str | None = None  # legacy OUT/ when the user gave it: its other files are scope "other"
    notes: tuple[str, ...] = field(default=())
    found: tuple[tuple[str, str], ...] = field(default=())  # (folder, how discovery found it), for people
    warnings: tuple[str, ...] = field(default=())  # what discovery saw but left out (a working directory elsewhere)
    orphan_of: str | None = None  # a lone working directory whose recorded output directory no longer exists
    repository: GitRepo | None = None  # the git (git-annex, DataLad) repository the outputs live in, if any
    pipeline: str = "fmriprep"  # which NiPreps pipeline wrote it (a key of fmriprep.pipelines); its version is
    # fmriprep_version (named when fMRIPrep was the only one)

    @property
    def pipeline_name(self) -> str:
        return pipeline_by_key(self.pipeline).name

    @property
    def annexed(self) -> bool:
        return self.repository is not None and self.repository.annexed

    def never_scanned(self) -> frozenset[str]:
        """Folders of the repository that are not output: .git/, .datalad/ and the subdatasets."""
        if self.repository is None:
            return frozenset()
        repo = self.repository
        return frozenset({repo.git_dir, os.path.join(repo.top, ".datalad"), *repo.subdatasets})

    def folders(self) -> list[dict[str, str]]:
        """The folders commands read and may act in, each with how discovery found it (shown before acting)."""
        how = dict(self.found)
        return [{"scope": root.scope, "path": root.path, "found": how.get(root.path, "")} for root in self.scan_roots]

    @property
    def scan_roots(self) -> list[ScanRoot]:
        """Every root with its scope; nested roots (FreeSurfer in sourcedata/) are listed too."""
        roots = []
        key = self.pipeline
        if self.container:
            roots.append(ScanRoot("other", self.container, pipeline=key))
        if self.derivatives:
            roots.append(ScanRoot("derivatives", self.derivatives, pipeline=key))
        if self.freesurfer:
            roots.append(ScanRoot("freesurfer", self.freesurfer, pipeline=key))
        workflow_dir = pipeline_by_key(key).workflow_dir
        roots.extend(ScanRoot("workdir", path, not workflow_dir.match(os.path.basename(path)), key)
                     for path in self.workdirs)
        return roots

    @property
    def top(self) -> str:
        """The outermost folder the user pointed at (OUT/ of a legacy layout, else the derivatives)."""
        return self.container or self.derivatives or self.workdirs[0]

    @property
    def identity(self) -> str:
        """The dataset's real root, whatever the spelling: the derivatives (resolved), or a lone working directory."""
        return self.derivatives or self.workdirs[0]

    @property
    def state_dir(self) -> str:
        """Where the lock and journal live by default: keyed on the identity, so OUT and OUT/fmriprep share it."""
        return state_dir_for(self.identity)


def state_dir_for(identity: str, base: str | None = None) -> str:
    """The state directory of the dataset whose real root is ``identity``: ``<identity>/.fmriprep-cleanup``, or,
    under a ``--state-dir`` base shared by several datasets (or .git/fmriprep-cleanup/ when the dataset is in a
    git repository), a folder of the base named after the dataset. Both depend only on resolved paths, so every
    spelling of the same dataset takes the same lock."""
    if base is None:
        repository = find_repository(identity)
        if repository is None:
            return os.path.join(identity, STATE_DIR_NAME)
        base = os.path.join(repository.git_dir, "fmriprep-cleanup")  # inside .git/: `git status` stays clean
    name = identity.strip("/").replace("/", "_")[-80:] or "root"
    digest = hashlib.sha256(identity.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    return os.path.join(os.path.realpath(os.path.expanduser(base)), f"{name}-{digest}")


class NotFMRIPrepError(CleanupError):
    """The folder holds no fMRIPrep output (a raw BIDS dataset, another pipeline's derivatives, anything else)."""


def pipeline_of_workdir_name(name: str) -> tuple[str, str | None] | None:
    """(pipeline key, version) when ``name`` is itself a workflow folder (the user gave WORK/fmriprep_24_1_wf)."""
    found = pipeline_of_workflow_dir(name)
    return (found[0].key, found[1]) if found else None


def _version_tuple(version: str | None) -> tuple[int, ...]:
    numbers = re.findall(r"\d+", version or "")
    return tuple(int(number) for number in numbers[:3])


def read_generator(description_path: str) -> tuple[str | None, str | None]:
    """(pipeline name, version) from a dataset_description.json: its first GeneratedBy entry, the pipeline
    that wrote it (fMRIPost-AROMA, XCP-D... list their inputs' pipelines after their own); CleanupError if
    unreadable. A known pipeline's name is spelled as its description spells it (fMRIPrep, not fmriprep)."""
    description = load_json(description_path, "dataset description")
    if not isinstance(description, dict):
        raise CleanupError(f"{description_path} is not a JSON object")
    generators = description.get("GeneratedBy")
    if isinstance(generators, dict):
        generators = [generators]
    first: Any = None
    if isinstance(generators, list):
        first = next((g for g in generators if isinstance(g, dict) and g.get("Name")), None)
    elif isinstance(description.get("PipelineDescription"), dict):  # BIDS-Derivatives RC, fMRIPrep 1.0-1.3
        first = description["PipelineDescription"]
    if first is None or not str(first.get("Name", "")):
        return None, None
    name = str(first["Name"])
    known = pipeline_named(name)
    return (known.name if known else name), (str(first.get("Version")) if first.get("Version") else None)


def unfetched(path: str) -> bool:
    """An annexed link (into .git/annex/objects) whose content is not on this disk: git (datalad) get fetches it."""
    if not os.path.islink(path):
        return False
    try:
        target = os.readlink(path)
    except OSError:
        return False
    return key_of(target) is not None and not os.path.exists(path)


CITATION_VERSION = re.compile(r"\b({names})\s+(?:version\s+)?v?(\d+\.\d+[\w.\-]*)", re.IGNORECASE)


def recognise_unfetched(folder: str, description: str, notes: list[str]) -> tuple[Pipeline, str | None]:
    """The pipeline (and version, if anything here tells it) of an output whose dataset_description.json is
    annexed and not fetched: from the description's git-annex key (a URL key names where the file came from),
    the run configs its subjects' log folders name (fmriprep.toml, qsiprep.toml...), a readable
    logs/CITATION.md, or the legacy layout (OUT/fmriprep beside OUT/freesurfer). CleanupError, with the command
    that fixes it, when nothing does."""
    key = (key_of(os.readlink(description)) or "").lower()
    found: list[tuple[Pipeline, str]] = []
    for pipeline in pipelines():
        if pipeline.key in key.replace("-", "_") or pipeline.name.lower() in key:
            found.append((pipeline, "its dataset_description.json's git-annex key"))
        elif pipeline.run_config and _names_run_config(folder, pipeline.run_config):
            found.append((pipeline, f"its subjects' {pipeline.run_config}"))
        elif pipeline.output_folder and os.path.basename(folder) == pipeline.output_folder and \
                os.path.isdir(os.path.join(os.path.dirname(folder), "freesurfer")):
            found.append((pipeline, f"the legacy layout ({pipeline.output_folder}/ beside freesurfer/)"))
    fetch = f"`datalad get {os.path.basename(description)}` in {folder} (or `git annex get`) fetches it"
    if len({pipeline.key for pipeline, _ in found}) != 1:
        raise NotFMRIPrepError(f"{description} is annexed and its content is not here, and nothing else here tells "
                               f"which pipeline wrote {folder}: {fetch}")
    pipeline, how = found[0]
    version = _citation_version(folder, pipeline)
    told = f"version {version} from logs/CITATION.md" if version else "the version cannot be known"
    notes.append(f"dataset_description.json is annexed and not here: {pipeline.name} recognised from {how}; "
                 f"{told} ({fetch}); version-independent rules apply")
    return pipeline, version


def _names_run_config(folder: str, run_config: str) -> bool:
    """Whether some sub-*/log/<run>/ folder holds ``run_config`` (annexed or not: its name is enough)."""
    for entry in _listing(folder):
        if entry.name.startswith("sub-") and entry.is_dir(follow_symlinks=False):
            for run in _listing(os.path.join(entry.path, "log")):
                if RUN_UUID.match(run.name) and os.path.lexists(os.path.join(run.path, run_config)):
                    return True
    return False


def _citation_version(folder: str, pipeline: Pipeline) -> str | None:
    """The version logs/CITATION.md names, where its content is here."""
    path = os.path.join(folder, "logs", "CITATION.md")
    if not os.path.exists(path):
        return None
    try:
        text = read_bytes(path, "report").decode("utf-8", "replace")
    except CleanupError:
        return None
    names = "|".join(re.escape(name) for name in {pipeline.name, *pipeline.generated_by})
    found = re.search(CITATION_VERSION.pattern.format(names=names), text, re.IGNORECASE)
    return found.group(2).rstrip(".") if found else None


def _require_known(description_path: str, notes: list[str] | None = None) -> tuple[Pipeline, str | None]:
    """The pipeline and version a dataset_description.json names, or a CleanupError saying what it names. An
    annexed description that is not here is recognised from what else the folder holds (noted in ``notes``)."""
    if notes is not None and unfetched(description_path):
        return recognise_unfetched(os.path.dirname(description_path), description_path, notes)
    name, version = read_generator(description_path)
    pipeline = pipeline_named(name) if name else None
    if pipeline is None:
        what = f"names {name!r}" if name else "names no pipeline (GeneratedBy/PipelineDescription), so it is not derivatives"
        raise NotFMRIPrepError(f"{description_path} {what}, not fMRIPrep or another pipeline this tool knows "
                               f"({known_names()})")
    return pipeline, version


def _list_dir(path: str) -> list[os.DirEntry]:
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
        entries = _list_dir(path)
    except CleanupError:
        return None
    for entry in entries:
        found = pipeline_of_workflow_dir(entry.name)
        if found is None or (pipeline is not None and found[0].key != pipeline) \
                or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            inner = _list_dir(entry.path)
        except CleanupError:
            continue
        per_subject = found[0].subject_workflows
        if any((SUBJECT_WORKFLOW_DIR.match(child.name) or not per_subject) and child.is_dir(follow_symlinks=False)
               for child in inner):
            return found[0].key, found[1]
    return None


def _find_workdirs(folder: str, entries: list[os.DirEntry], pipeline: str = "fmriprep",
                   known: frozenset[str] = frozenset()) -> list[str]:
    """Working directories kept inside the output directory (e.g. OUT/work), as fMRIPrepCleanup's example has;
    ``known``: folders earlier cleanups of the dataset acted on, still its working directory once emptied of
    the subjects' folders (by the shards of a job array, say)."""
    found = []
    for entry in entries:
        if entry.name.startswith("sub-") or entry.name in _KNOWN_OUTPUT_FOLDERS:
            continue
        path = os.path.join(folder, entry.name)
        if entry.is_dir(follow_symlinks=False) and (path in known or workdir_version(entry.path, pipeline)[0]):
            found.append(path)
    return found


def recorded_outputs(workdir: str) -> list[str]:
    """The output directories the run folders of a working directory ran for: ``execution.output_dir`` of
    each ``<run_uuid>/config.toml`` fMRIPrep (20.1 and later) writes there, as the run saw them."""
    outputs: list[str] = []
    for entry in _listing(workdir):
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


def other_dataset_of(workdir: str, output_dir: str, derivatives: str) -> str | None:
    """The other dataset a working directory ran for, if its run folders say so: a recorded output directory
    that exists here and is not this one. None when they name this dataset or cannot tell (no run folders,
    or only container paths such as /out that do not exist on this machine)."""
    ours = {os.path.realpath(output_dir), os.path.realpath(derivatives)}
    for recorded in recorded_outputs(workdir):
        if os.path.isdir(recorded) and os.path.realpath(recorded) not in ours:
            return recorded
    return None


def _only_ours(workdirs: list[str], output_dir: str, derivatives: str, warnings: list[str]) -> list[str]:
    """Working directories found without --work-dir, less those whose run folders belong to another dataset."""
    kept = []
    for workdir in workdirs:
        other = other_dataset_of(workdir, output_dir, derivatives)
        if other is None:
            kept.append(workdir)
        else:
            warnings.append(f"working directory {workdir} left out: its run folders record another output directory "
                         f"({other}); give --work-dir {workdir} to include it")
    return kept


def _listing(path: str) -> list[os.DirEntry]:
    """A folder's entries, or none where it cannot be read (for evidence that may simply be absent)."""
    return list_folder(path)[0]


def read_run_config(path: str) -> dict[str, Any]:
    """The parts of an fmriprep.toml (or a work dir's config.toml) we use; ValueError if it cannot be read or parsed."""
    try:
        config = load_toml(path, "run config")
    except CleanupError as exc:
        raise ValueError(str(exc)) from None
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
    for entry in _listing(derivatives):
        if entry.name.startswith("sub-") and entry.is_dir(follow_symlinks=False):
            for run in _listing(os.path.join(entry.path, "log")):
                candidate = os.path.join(run.path, config_name)
                if run.is_dir(follow_symlinks=False) and os.path.isfile(candidate) and (newest is None or run.name > newest[0]):
                    newest = (run.name, candidate)
    if newest is None:
        return None
    try:
        return newest[1], read_run_config(newest[1])
    except (OSError, ValueError):
        return None


def _recorded_or_beside(derivatives: str, output_dir: str, notes: list[str], warnings: list[str],
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


def _check_directory(path: str, what: str) -> str:
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


def repository_note(repository: GitRepo) -> str:
    """What discovery says of the repository the outputs live in: what is not scanned, and its subdatasets."""
    note = f"a {repository.kind} ({repository.top}): its .git/ and subdatasets are not scanned"
    if repository.subdatasets:
        installed = [path for path in repository.subdatasets if os.path.lexists(os.path.join(path, ".git"))]
        names = ", ".join(os.path.relpath(path, repository.top) + ("" if path in installed else " (not installed)")
                          for path in repository.subdatasets[:8])
        note += f" (subdatasets: {names}{', ...' if len(repository.subdatasets) > 8 else ''})"
    if repository.annexed:
        note += "; annexed files count their content's size"
    problem = datalad_problem(repository)
    return note + (f"; {problem}" if problem else "")


def _explicit_workdir(work_dir: str, identity: str | None, known_roots: KnownRoots | None, notes: list[str],
                      pipeline: str = "fmriprep") -> str:
    """The working directory the user named. One an earlier cleanup emptied is still one: an empty folder, or
    a folder the dataset's journal records as its working directory (nothing fMRIPrep wrote is left in it)."""
    path = _check_directory(os.path.abspath(os.path.expanduser(work_dir)), "an fMRIPrep working directory")
    if pipeline_by_key(pipeline).workflow_dir.match(os.path.basename(path)) or workdir_version(path, pipeline)[0]:
        return path
    if not [entry for entry in _listing(path) if entry.name != STATE_DIR_NAME]:
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


def discover(path: str, work_dir: str | None = None, find_work_dir: bool = True,
             known_roots: KnownRoots | None = None, path_map: PathMap = ()) -> Dataset:
    """Recognise fMRIPrep output (either layout) or a working directory at ``path``.

    ``known_roots(identity)``: the folders earlier cleanups of the dataset acted on (its journal), so that a
    working directory they emptied is still recognised when named again. Raises CleanupError with one line
    saying what was looked for and where. ``path_map``: container paths as this machine sees them, for the
    output directories a lone working directory's runs recorded.
    """
    given = os.path.abspath(os.path.expanduser(str(path)))
    expected = "fMRIPrep output or an fMRIPrep working directory"
    real = _check_directory(given, expected)
    entries = _list_dir(real)
    if not entries:
        raise CleanupError(f"{given} is empty (expected {expected})")
    names = {entry.name for entry in entries}
    notes: list[str] = []
    warnings: list[str] = []
    found: dict[str, str] = {}  # folder -> how it was found (the working directories' set as they are found)

    def how(derivatives: str | None, freesurfer: str | None, workdirs: list[str], legacy: bool) -> tuple:
        if derivatives:
            found[derivatives] = "the folder given" if derivatives == real else "the fmriprep/ of the folder given"
        if freesurfer:
            found[freesurfer] = ("freesurfer/ beside the output (legacy layout)" if legacy
                                 else "sourcedata/freesurfer in the output")
        for workdir in workdirs:
            if work_dir and workdir == workdirs[-1] and workdir not in found:
                found[workdir] = "given with --work-dir"
            elif workdir == real:
                found[workdir] = "the folder given"
            elif workdir not in found:
                found[workdir] = "inside the folder given"
        return tuple(found.items())

    def named_workdirs(identity: str | None, pipeline: str = "fmriprep") -> list[str]:
        return [_explicit_workdir(work_dir, identity, known_roots, notes, pipeline)] if work_dir else []

    if "dataset_description.json" in names:
        pipeline, version = _require_known(os.path.join(real, "dataset_description.json"), notes)
        key = pipeline.key
        parent = os.path.dirname(real)
        bids_freesurfer = os.path.join(real, "sourcedata", "freesurfer")
        legacy_freesurfer = os.path.join(parent, "freesurfer")
        freesurfer: str | None
        if os.path.isdir(bids_freesurfer) and not os.path.islink(bids_freesurfer):
            layout, freesurfer = "bids", bids_freesurfer
        elif os.path.basename(real) == pipeline.output_folder and (
            os.path.isdir(legacy_freesurfer) or (key == "fmriprep" and version and _version_tuple(version) < (21,))
        ):
            layout = "legacy"
            freesurfer = legacy_freesurfer if os.path.isdir(legacy_freesurfer) else None
            notes.append(f"legacy layout: only {real} and its sibling freesurfer/ are scanned, not the rest of {parent}")
        else:
            layout = "legacy" if key == "fmriprep" and version and _version_tuple(version) < (21,) else "bids"
            freesurfer = None
        output_dir = real if layout == "bids" else parent
        known = frozenset(known_roots(real)) if known_roots is not None and find_work_dir and not work_dir else frozenset()
        workdirs = named_workdirs(real, key) or (_only_ours(
            _find_workdirs(real, entries, key, known)
            or _recorded_or_beside(real, output_dir, notes, warnings, found, pipeline, known),
            output_dir, real, warnings) if find_work_dir else [])
        repository = find_repository(real)
        if repository is not None:
            notes.append(repository_note(repository))
        return Dataset(given, layout, version, real, freesurfer, tuple(workdirs), None, tuple(notes),
                       how(real, freesurfer, workdirs, layout == "legacy"), tuple(warnings), None, repository, key)

    container_of = next((pipeline for pipeline in pipelines() if pipeline.output_folder and pipeline.output_folder in names
                         and os.path.lexists(os.path.join(real, pipeline.output_folder, "dataset_description.json"))),
                        None)
    if container_of is not None:
        assert container_of.output_folder is not None
        derivatives = os.path.join(real, container_of.output_folder)
        pipeline, version = _require_known(os.path.join(derivatives, "dataset_description.json"), notes)
        key = pipeline.key
        freesurfer = os.path.join(real, "freesurfer")
        legacy_evidence = os.path.isdir(freesurfer) or (
            key == "fmriprep" and version is not None and _version_tuple(version) < (21,))
        if not legacy_evidence or os.path.isdir(os.path.join(derivatives, "sourcedata", "freesurfer")):
            raise NotFMRIPrepError(f"{derivatives} is {pipeline.name} output in the BIDS layout; give {derivatives} itself")
        workdirs = named_workdirs(derivatives, key) or (_only_ours(
            _find_workdirs(real, entries, key) or _recorded_or_beside(derivatives, real, notes, warnings, found, pipeline),
            real, derivatives, warnings) if find_work_dir else [])
        freesurfer_found = freesurfer if os.path.isdir(freesurfer) and not os.path.islink(freesurfer) else None
        repository = find_repository(derivatives)
        if repository is not None:
            notes.append(repository_note(repository))
        return Dataset(given, "legacy", version, derivatives, freesurfer_found, tuple(workdirs), real, tuple(notes),
                       how(derivatives, freesurfer_found, workdirs, True), tuple(warnings), None,
                       repository, key)

    found_workdir = workdir_pipeline(real) or pipeline_of_workdir_name(os.path.basename(real))
    key, version = found_workdir if found_workdir else ("fmriprep", None)
    is_workdir = found_workdir is not None
    emptied = not is_workdir and known_roots is not None and real in known_roots(real)
    if is_workdir or emptied:
        if emptied:
            notes.append(f"working directory {real} holds nothing of fMRIPrep's any more (an earlier cleanup emptied it)")
        explicit_workdirs = named_workdirs(None, key)
        workdirs = [real] + [w for w in explicit_workdirs if w != real]
        orphan_of = orphaned_output(real, path_map)
        if orphan_of:
            notes.append(f"orphaned: its runs wrote to {orphan_of}, which no longer exists")
        return Dataset(given, "workdir", version, None, None, tuple(workdirs), None, tuple(notes),
                       how(None, None, workdirs, False), tuple(warnings), orphan_of, None, key)

    if "fmriprep" in names:
        raise NotFMRIPrepError(f"{given}/fmriprep has no dataset_description.json naming fMRIPrep")
    derivatives_here = sorted(entry.name for entry in entries if entry.is_dir(follow_symlinks=False) and
                              os.path.isfile(os.path.join(real, entry.name, "dataset_description.json")))
    if derivatives_here and os.path.basename(real) == "derivatives":
        raise NotFMRIPrepError(f"{given} holds several pipelines' outputs ({', '.join(derivatives_here)}): give one "
                               f"of them, or audit {given} to see them all")
    raise NotFMRIPrepError(
        f"{given} does not look like {expected}: found no dataset_description.json naming fMRIPrep, "
        "no fmriprep/ folder (legacy layout) and no fmriprep_wf/ or fmriprep_<major>_<minor>_wf/ (working directory)"
    )
