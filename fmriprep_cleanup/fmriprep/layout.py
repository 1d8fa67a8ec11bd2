"""Where a pipeline's outputs are, as plain data: the dataset (its folders, layout, version, repository), each
root to scan with its scope, and the names fMRIPrep gives its folders.

fMRIPrep has two output layouts:

* BIDS layout (fMRIPrep >= 21, the default): the output directory *is* the derivatives dataset, FreeSurfer
  lives in ``sourcedata/freesurfer/``;
* legacy layout (fMRIPrep 1.x-20.x, or ``--output-layout legacy``): the derivatives are in ``OUT/fmriprep/``
  and FreeSurfer in ``OUT/freesurfer/``.

The nipype working directory (``-w``) holds ``fmriprep_wf/`` (<= 21.x) or ``fmriprep_<major>_<minor>_wf/``
(>= 22) with one folder per subject. discover.py finds all of this; workdirs.py the working directories.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache

from ..basics.repository import GitRepo, find_repository
from .nipoppy import NipoppyStudy
from .pipelines import pipeline_by_key

STATE_DIR_NAME = ".fmriprep-cleanup"
SUBJECT_WORKFLOW_DIR = re.compile(  # NiBabies: single_subject_<label>_<session>_wf
    r"^(?:single_subject_([a-zA-Z0-9]+)(?:_[a-zA-Z0-9]+)?_wf|sub_([a-zA-Z0-9]+)(?:_ses_[a-zA-Z0-9]+)?_wf)$"
)
# fMRIPrep's run identifier (config.execution.run_uuid): a time stamp and a uuid4. Each run writes
# WORK/<run_uuid>/config.toml (and bids_db/) and OUTPUT/sub-<label>/log/<run_uuid>/.
RUN_UUID = re.compile(r"^\d{8}-\d{6}_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@lru_cache(maxsize=4096)
def workdir_entry(name: str, pipeline: str = "fmriprep") -> bool:
    """True for what the pipeline creates at the top of a working directory (-w): its workflow folder
    (fmriprep_wf/, fmriprep_<major>_<minor>_wf/), reportlets/, run folders <run_uuid>/ and .fmriprep.toml
    (for fMRIPrep; the same shapes for the others). ``-w`` is often a shared scratch folder: everything else
    there belongs to someone else - another pipeline's workflow folder too."""
    return (name in ("reportlets", f".{pipeline}.toml") or pipeline_by_key(pipeline).workflow_dir.match(name) is not None
            or RUN_UUID.match(name) is not None)


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
    nipoppy: NipoppyStudy | None = None  # the Nipoppy study it is an output of: what its trackers count
    left_out: tuple[tuple[str, str], ...] = ()  # (folder, why): another run's working directory, never ours
    state_base: str | None = None  # where its state folder is made, when not in it (an archive: beside it)

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
        return state_dir_for(self.identity, self.state_base)


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


