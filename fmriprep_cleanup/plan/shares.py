"""A plan in shares of its subjects, merged into exactly what one walk gives: the one path every parallel scan
takes - local processes (``--jobs``), the shards of a job array (their partials, ops/shards.py).

Each share walks every folder of its subjects (their outputs, FreeSurfer and working-directory folders) and hands
back their run statuses, its scan warnings and its result: a summary, or its folders rendered, in blocks keyed
by their place in the plan. The merge then plans the shared folders (files of no subject, judged with every
subject's status known) and merges: summaries are absorbed, blocks interleaved by key.

Local shares are forked workers writing their blocks to anonymous temporary files the parent opened (unlinked: no
other user can reach them).
"""

from __future__ import annotations

import dataclasses
import heapq
import pickle
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from ..basics.archivetree import ArchiveTree
from ..basics.warnings import Warnings
from ..fmriprep.evidence import SubjectStatus
from .places import Place, place_of, walk_positions
from .plan import Learned, Plan, scan_problems
from .rows import Classified, FileRows, PlannedFile, planned_files
from .summary import Summary

PROGRESS_EVERY = 0.2  # seconds between a worker's progress messages
BLOCK_FOLDERS = 512  # folders in one block at most (a subject folder's span can be large)
_FORKED: dict[str, Any] = {}  # what a forked worker inherits (not pickled: rules hold compiled code)

Progress = Callable[[int, int], None]
Render = Callable[[Classified], Any]
Block = tuple[tuple[Place, int, str, str], list[Any]]  # (place, top number, walk key, first name), rendered folders


def shard_labels(plan: Plan, shard: int, shards: int) -> list[str]:
    """The subjects of shard ``shard`` (0-based) of ``shards``: every shards-th of the selected labels, sorted."""
    labels = sorted(label for label in plan.status_book().subjects() if plan.selection.wants(label))
    return labels[shard::shards]


def shard_plan(plan: Plan, shard: int, shards: int) -> tuple[list[str], Plan]:
    """The labels of a shard, and the plan of only their files, in one process (it shares the plan's status
    book, which knows every subject)."""
    labels = shard_labels(plan, shard, shards)
    return labels, dataclasses.replace(plan, processes=1, selection=plan.selection.only(frozenset(labels), False))


def shared_plan(plan: Plan, statuses: dict[str, SubjectStatus], now: float) -> Plan:
    """The plan of the files of no subject, every subject's status known (from the shares that walked them)."""
    selection = plan.selection.only(frozenset(), plan.selection.wants(None))
    shared = dataclasses.replace(plan, selection=selection, now=now, processes=1,
                                 learned=Learned(book=plan.learned.book))  # its book, read before the scan
    shared.status_book().know(statuses)
    return shared


@dataclass
class Share:
    """What one share of the subjects hands back: their run statuses, its scan warnings (the messages it kept and
    their count, see Warnings) and its result (a Summary, or where its blocks are)."""

    statuses: dict[str, SubjectStatus]
    messages: list[str]
    count: int
    result: Any = None


@dataclass
class Whole:
    """The shares merged: every subject's status (sorted), and the plan of the shared folders, judged with them."""

    plan: Plan
    shares: list[Share]
    now: float
    statuses: dict[str, SubjectStatus] = field(init=False)
    shared: Plan = field(init=False)

    def __post_init__(self) -> None:
        found = {label: status for share in self.shares for label, status in share.statuses.items()}
        self.statuses = {label: found[label] for label in sorted(found)}
        self.shared = shared_plan(self.plan, self.statuses, self.now)

    def summary(self, progress: Progress | None = None) -> Summary:
        """The summary of the whole: the shared folders' and every share's, hard links and annexed keys shared
        across them settled as one scan settles them."""
        summary = self.shared.summarize(progress, settle=False)
        for share in self.shares:
            if share.result is not None:  # a share without subjects has nothing to add
                summary.absorb(share.result)
        return summary.finish()

    def blocks(self, render: Render, streams: Iterable[Iterator[Block]], progress: Progress | None = None
               ) -> Iterator[Any]:
        """The rendered folders of the whole in the plan's order: the shared folders' blocks and the shares'
        (``streams``), interleaved by key."""
        for _, rendered in heapq.merge(blocks(self.shared, render, progress), *streams, key=_block_key):
            yield from rendered

    def warnings(self) -> Warnings:
        """The scan warnings of the whole, as one scan would have them (once the shared folders are walked)."""
        scanned = Warnings()
        for warnings in (self.plan.learned.warnings, self.shared.warnings):
            scanned.merge(warnings.messages, warnings.count)
        for share in self.shares:
            scanned.merge(share.messages, share.count)
        return scanned

    def problems(self) -> list[str]:
        """What one scan's ``all_warnings`` says: the dataset's, the scan's, then the subjects' evidence."""
        return self.shared.context_warnings() + scan_problems(self.warnings(), self.statuses)


def blocks(plan: Plan, render: Render, progress: Progress | None) -> Iterator[Block]:
    """The plan as (sort key, rendered folders): consecutive folders of one subject folder's span in one block
    (at most BLOCK_FOLDERS: nothing of another share can come between them), other folders one a block. A
    folder at the top of a scan root may hold files of several subjects, which other shares plan too: its
    files come one per block. The blocks of all shares merge by key into exactly the plan's order (files by
    place, then name); a block per folder made the parent's merge a pickle load per folder."""
    positions = walk_positions(plan.dataset.scan_roots)
    batch: list[Any] = []
    batch_key: tuple[Place, int, str, str] | None = None
    batch_span = None
    for place, classified, span in plan.placed_folders(progress):
        folder = classified.folder
        own = place_of(positions, folder)
        if batch and (span is None or span != batch_span or len(batch) >= BLOCK_FOLDERS):
            assert batch_key is not None
            yield batch_key, batch
            batch = []
        if not folder.relpath:
            for row in classified.positioned():
                yield (place, own.number, own.key, folder.names[row[0]]), [render(FileRows(folder, [row]))]
            continue
        if not batch:
            batch_key, batch_span = (place, own.number, own.key, classified.first_name()), span
        batch.append(render(classified))
    if batch:
        assert batch_key is not None
        yield batch_key, batch


def _block_key(block: Block) -> tuple:
    return block[0]


def summarize(plan: Plan, progress: Progress | None = None) -> tuple[Summary, dict[str, SubjectStatus], list[str]]:
    """The plan's summary, its subjects' statuses and its warnings, in ``plan.processes`` processes: exactly what
    one process gives (``plan.summarize``, ``run_statuses``, ``all_warnings``)."""
    if plan.processes <= 1:
        summary = plan.summarize(progress)
        return summary, plan.run_statuses(), plan.all_warnings()
    whole = Whole(plan, run_shares(plan, _summarized, progress), plan.now)
    summary = whole.summary(progress)
    return summary, whole.statuses, whole.problems()


def _summarized(share: Plan, progress: Progress | None, _: Any) -> Summary:
    """In a worker: one share of the subjects summarised, the contents several paths share left unsettled."""
    return share.summarize(progress, settle=False)


def rendered(plan: Plan, render: Render, progress: Progress | None = None) -> Iterator[Any]:
    """The plan's folders, each rendered (``render(classified)``: plan lines, rows...), in the plan's order, walked
    in ``plan.processes`` processes (each rendering its own subjects' folders). Once it has been iterated,
    ``plan.warnings`` and ``plan.run_statuses()`` are those of the whole scan, as after one process's."""
    if plan.processes <= 1:
        yield from map(render, plan.folders(progress))
        return
    files = [tempfile.TemporaryFile() for _ in range(plan.processes)]
    try:
        whole = Whole(plan, run_shares(plan, _written, progress, {"render": render, "files": files}), plan.now)
        yield from whole.blocks(render, [_read_blocks(handle) for handle in files], progress)
        plan.learned.warnings = whole.warnings()
        plan.status_book().know(whole.statuses)
    finally:
        for handle in files:
            handle.close()


def files(plan: Plan, progress: Progress | None = None) -> Iterator[PlannedFile]:
    """Every file of the plan with its decision, in the plan's order, walked in ``plan.processes`` processes."""
    for rows in rendered(plan, _rows_of, progress):
        yield from rows


def _rows_of(classified: Classified) -> list[PlannedFile]:
    return list(planned_files(classified))


def _written(share: Plan, progress: Progress | None, forked: dict[str, Any]) -> None:
    """In a worker: plan one share of the subjects into its block file."""
    out = forked["files"][forked["shard"]]
    for block in blocks(share, forked["render"], progress):
        pickle.dump(block, out, pickle.HIGHEST_PROTOCOL)
    out.flush()


def _read_blocks(handle: IO[bytes]) -> Iterator[Block]:
    handle.seek(0)
    while True:
        try:
            yield pickle.load(handle)  # written by our own forked worker to a file only this process can reach
        except EOFError:
            return


def run_shares(plan: Plan, work: Callable[[Plan, Progress | None, dict[str, Any]], Any],
               progress: Progress | None, forked: dict[str, Any] | None = None) -> list[Share]:
    """``work(share, progress, forked)`` on each share of the subjects in ``plan.processes`` forked processes,
    one share each (``forked``: what the workers inherit besides the plan, with ``shard`` set to theirs); the
    shares in order. ``progress`` hears of their files as they go."""
    return run_workers(_share, plan.processes, {"plan": plan, "work": work, **(forked or {})}, progress)


def _share(forked: dict[str, Any], shard: int, shards: int, progress: Progress | None) -> Share:
    labels, share = shard_plan(forked["plan"], shard, shards)
    result = forked["work"](share, progress, {**forked, "shard": shard}) if labels else None
    return Share(share.run_statuses() if labels else {}, share.warnings.messages, share.warnings.count, result)


class WorkerProgress:
    """A worker's progress, sent to the parent in batches (one message per PROGRESS_EVERY, not per folder)."""

    def __init__(self, queue: Any) -> None:
        self.queue, self.files, self.bytes, self.sent = queue, 0, 0, time.monotonic()

    def __call__(self, files: int, nbytes: int) -> None:
        self.files += files
        self.bytes += nbytes
        if time.monotonic() - self.sent >= PROGRESS_EVERY:
            self.flush()

    def flush(self) -> None:
        if self.files:
            self.queue.put((self.files, self.bytes))
            self.files = self.bytes = 0
        self.sent = time.monotonic()


def run_workers(work: Callable[[dict[str, Any], int, int, Any], Any], processes: int, forked: dict[str, Any],
                progress: Progress | None) -> list[Any]:
    """``work(forked, shard, shards, progress)`` in ``processes`` forked processes, one shard each; their results
    in shard order. ``forked``: what the workers inherit; ``progress`` hears of their files as they go."""
    import multiprocessing  # only a scan in processes pays for it

    context = multiprocessing.get_context("fork")
    queue = context.SimpleQueue() if progress is not None else None

    def drain() -> None:
        while queue is not None and progress is not None and not queue.empty():
            progress(*queue.get())

    _FORKED.update(forked=forked, work=work, queue=queue)
    try:
        with context.Pool(processes) as pool:
            result = pool.map_async(_worker, [(shard, processes) for shard in range(processes)], chunksize=1)
            while not result.ready():
                result.wait(PROGRESS_EVERY)
                drain()
            drain()
            return result.get()
    finally:
        _FORKED.clear()


def _worker(job: tuple[int, int]) -> Any:
    shard, shards = job
    queue = _FORKED["queue"]
    progress = WorkerProgress(queue) if queue is not None else None
    try:
        return _FORKED["work"](_FORKED["forked"], shard, shards, progress)
    finally:
        if progress is not None:
            progress.flush()


def archive_figures(plan: Plan, tree: ArchiveTree) -> dict[str, Any]:
    """What the archive a plan reads takes on disk, and how much of it its junk members take (headers and
    compressed data): what rewriting it without them frees, where the plan's other figures are the members'
    unpacked sizes."""
    junk = [tree.by_path[planned.path] for planned in plan.files() if planned.action == "junk"]
    archive = tree.archive
    return {"path": archive.path, "kind": archive.kind, "members": len(archive.members), "bytes": archive.size,
            "junk_members": len(junk), "junk_stored_bytes": sum(member.stored for member in junk)}
