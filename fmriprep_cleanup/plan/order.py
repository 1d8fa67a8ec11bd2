"""Where each folder's files come in a plan, so the shards of a plan merge into exactly the unsharded order:
the walk's order, except for files whose junk must wait for a subject's run status - they come once the walk has
left every folder of that subject, or at the end when they wait for every subject's."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, NamedTuple

from ..basics.folders import Directory
from ..rules.classify import subject_of_folder
from .classifier import FolderClassifier
from .holds import Holds, owned
from .places import IN_WALK, LAST, UNFINISHED, Place, PlacedFolder, place_after, place_of
from .rows import Classified
from .selection import Selection

if TYPE_CHECKING:
    from ..fmriprep.status import StatusBook

class Pending(NamedTuple):
    """A folder waiting for subjects' statuses: classified already, or (None) once they are known."""

    folder: Directory
    subject: str | None
    classified: Classified | None


class SubjectSpans:
    """The subject folder (output, FreeSurfer or working directory) the walk is in: every folder below it is
    its subject's. The walk leaving it tells the status book, which may then judge the subject."""

    def __init__(self, book: StatusBook, positions: dict[str, tuple[int, str]]) -> None:
        self.book, self.positions = book, positions
        self.folder: str | None = None  # the subject folder the walk is in
        self.subject: str | None = None
        self.inside = ""  # its path and a slash
        self.place = Place(IN_WALK)  # its place in the walk

    def left_by(self, folder: Directory) -> str | None:
        """The subject whose folder the walk has left on reaching ``folder``, if it has left one."""
        if self.folder is None or folder.path.startswith(self.inside):
            return None
        return self.leave()

    def leave(self) -> str | None:
        """The walk is out of the subject folder it was in (if any): its subject."""
        if self.folder is None:
            return None
        label = self.book.walked(self.folder)
        self.folder = None
        return label

    def enter(self, folder: Directory) -> str | None:
        """The subject ``folder`` belongs to (None: none), entering a subject folder where it is one; what the
        scan saw of it is told to the status book."""
        if self.folder is None:
            subject = subject_of_folder(folder.root.scope, folder.relpath) if owned(folder) else None
            if subject is not None and self.book.subject_folder(folder.path) == subject:
                self.folder, self.subject, self.inside = folder.path, subject, folder.path + "/"
                self.place = place_of(self.positions, folder)
        else:
            subject = self.subject
        if self.folder is not None:
            if folder.problem is not None:
                self.book.unreadable(self.folder, folder.problem)
            if folder.names:
                self.book.saw(self.folder, folder.newest())
        return subject

    def span(self) -> Place | None:
        return self.place if self.folder is not None else None


class FolderOrder:
    """Classified folders in the plan's order. A folder's files whose decision needs a subject's run status (a
    rule reads it, or some of them are junk and the subject may be running) wait until the walk has left every
    folder of that subject; files of no subject wait for the end when a rule asks about every subject, or when
    they are shared junk. So the working directory's shared folders come last; every other folder comes in walk
    order or soon after (a folder holding several subjects' files, the dataset's top, may come in parts)."""

    def __init__(self, classifier: FolderClassifier, holds: Holds, positions: dict[str, tuple[int, str]],
                 selection: Selection) -> None:
        self.classifier, self.holds, self.positions, self.selection = classifier, holds, positions, selection
        self.book = holds.book
        self.spans = SubjectSpans(self.book, positions)
        self.waiting: dict[str, list[Pending]] = {}  # for a subject's status
        self.last: list[Pending] = []  # for every subject's status

    def placed(self, folders: Iterable[Directory]) -> Iterator[PlacedFolder]:
        for folder in folders:
            left = self.spans.left_by(folder)
            if left is not None:
                yield from self._released(left)
            subject = self.spans.enter(folder)
            if folder.names:  # a folder of folders only (many in a working directory) has nothing to place
                yield from self._placed(folder, subject)
        left = self.spans.leave()
        if left is not None:
            yield from self._released(left)
        for label in sorted(self.waiting):  # subjects the scan never finished walking (a folder could not be read)
            yield from self._settled(Place(UNFINISHED, label), self.waiting[label])
        yield from self._settled(Place(LAST), self.last)

    def _placed(self, folder: Directory, subject: str | None) -> Iterator[PlacedFolder]:
        """A folder in the walk: placed where it stands, or set to wait for statuses."""
        scope_rules = self.classifier.rules.scope_rules(folder.root.scope)
        if subject is not None and scope_rules.uses_status and not self.book.ready(subject):
            self.waiting.setdefault(subject, []).append(Pending(folder, subject, None))
            return
        if subject is None and scope_rules.uses_any_status and owned(folder):
            if self.selection.wants(None) or not folder.relpath:  # the top holds subjects' files too
                self.last.append(Pending(folder, subject, None))
            return
        classified = self.classifier.classify(folder, subject)
        if classified is None:
            return
        for wait_for, part in self.holds.waits_for(classified):
            if wait_for is None:
                yield PlacedFolder(place_of(self.positions, folder), self.holds.held_back(part), self.spans.span())
            elif wait_for:
                self.waiting.setdefault(wait_for, []).append(Pending(folder, subject, part))
            else:
                self.last.append(Pending(folder, subject, part))

    def _released(self, label: str) -> Iterator[PlacedFolder]:
        """The walk left a folder of subject ``label``: once all are walked its waiting files come."""
        if self.book.ready(label):
            span = self.spans.place
            yield from self._settled(place_after(span), self.waiting.pop(label, ()), span)

    def _settled(self, place: Place, items: Iterable[Pending], span: Place | None = None) -> Iterator[PlacedFolder]:
        for folder, subject, classified in items:
            if classified is None:
                classified = self.classifier.classify(folder, subject)
            if classified is not None:
                yield PlacedFolder(place, self.holds.held_back(classified), span)
