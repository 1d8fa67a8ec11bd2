"""A plan walked in several local processes, each a share of the subjects, merged into exactly the order and the
warnings one process gives.

Each forked worker walks every folder of its subjects (their outputs, FreeSurfer and working-directory folders)
and writes its plan a folder at a time, as blocks, to an anonymous temporary file the parent opened (unlinked:
no other user can reach it). The caller's ``render`` turns a classified folder into what it needs (plan lines, the
rows themselves), so formatting happens in the workers too. The parent then plans the shared folders (files of
no subject, judged with every subject's status known) and merges the blocks by their place in the plan.
"""

from __future__ import annotations

import dataclasses
import heapq
import pickle
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any

from ..basics.warnings import Warnings
from .files import (
    Classified,
    PlannedFile,
    Selection,
    SubjectRows,
    decided_rows,
    place_of,
    planned_files,
    walk_positions,
)

if TYPE_CHECKING:
    from ..fmriprep.evidence import SubjectStatus
    from .plan import Plan

PROGRESS_EVERY = 0.2  # seconds between a worker's progress messages
BLOCK_FOLDERS = 512  # folders in one block at most (a subject folder's span can be large)
_FORKED: dict[str, Any] = {}  # what a forked worker inherits (not pickled: rules hold compiled code)

Render = Callable[[Classified], Any]


def shard_labels(plan: Plan, shard: int, shards: int) -> list[str]:
    """The subjects of shard ``shard`` (0-based) of ``shards``: every shards-th of the selected labels, sorted."""
    labels = sorted(label for label in plan.status_book().subjects() if plan.selection.wants(label))
    return labels[shard::shards]


def shard_plan(plan: Plan, shard: int, shards: int) -> tuple[list[str], Plan]:
    """The labels of a shard, and the plan of only their files, in one process (it shares the plan's status
    book, which knows every subject)."""
    labels = shard_labels(plan, shard, shards)
    return labels, dataclasses.replace(plan, processes=1, selection=Selection(
        frozenset(labels), plan.selection.excluded_labels, False))


def shared_plan(plan: Plan, statuses: dict[str, SubjectStatus], now: float) -> Plan:
    """The plan of the files of no subject, every subject's status known (from the shards that walked them)."""
    from .plan import Learned

    selection = Selection(frozenset(), plan.selection.excluded_labels, plan.selection.wants(None))
    shared = dataclasses.replace(plan, selection=selection, now=now, processes=1,
                                 learned=Learned(book=plan.learned.book))  # its book, read before the scan
    shared.status_book().know(statuses)
    return shared


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
                progress: Callable[[int, int], None] | None) -> list[Any]:
    """``work(forked, shard, shards, progress)`` in ``processes`` forked processes, one shard each; their results
    in shard order. ``forked``: what the workers inherit (the plan...); ``progress`` hears of their files as
    they go."""
    import multiprocessing

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


def blocks(plan: Plan, render: Render, progress: Callable[[int, int], None] | None
           ) -> Iterator[tuple[tuple, list[Any]]]:
    """The plan as (sort key, rendered folders): consecutive folders of one subject folder's span in one block
    (at most BLOCK_FOLDERS: nothing of another process can come between them), other folders one a block. A
    folder at the top of a scan root may hold files of several subjects, which other processes plan too: its
    files come one per block. The blocks of all processes merge by key into exactly the plan's order (files by
    place, then name); a block per folder made the parent's merge a pickle load per folder."""
    positions = walk_positions(plan.dataset.scan_roots)
    batch: list[Any] = []
    batch_key: tuple = ()
    batch_span = None
    for place, classified, span in plan.placed_folders(progress):
        folder = classified[0]
        _, _, number, walk_key = place_of(positions, folder)
        if batch and (span is None or span != batch_span or len(batch) >= BLOCK_FOLDERS):
            yield batch_key, batch
            batch = []
        if not folder.relpath:
            for row in decided_rows(classified):
                yield (place, number, walk_key, row[0].name), [render((folder, None, None, [row]))]
            continue
        if not batch:
            batch_key, batch_span = (place, number, walk_key, _first_name(classified)), span
        batch.append(render(classified))
    if batch:
        yield batch_key, batch


def _first_name(classified: Classified) -> str:
    folder, _, _, decided = classified
    return folder.names[0] if decided is None or isinstance(decided, SubjectRows) else decided[0][0].name


def _plan_share(forked: dict[str, Any], shard: int, shards: int,
                progress: Callable[[int, int], None] | None) -> dict[str, Any]:
    """In a worker: plan one share of the subjects into its block file; returns what the parent merges."""
    plan, render, out = forked["plan"], forked["render"], forked["files"][shard]
    labels, share = shard_plan(plan, shard, shards)
    if labels:
        for block in blocks(share, render, progress):
            pickle.dump(block, out, pickle.HIGHEST_PROTOCOL)
    out.flush()
    statuses = share.run_statuses() if labels else {}
    return {"statuses": statuses, "messages": share.warnings.messages, "count": share.warnings.count}


def _read_blocks(handle: IO[bytes]) -> Iterator[tuple[tuple, Any]]:
    handle.seek(0)
    while True:
        try:
            yield pickle.load(handle)  # written by our own forked worker to a file only this process can reach
        except EOFError:
            return


def plan_in_processes(plan: Plan, render: Render, progress: Callable[[int, int], None] | None = None
                      ) -> Iterator[Any]:
    """The plan's blocks, rendered (see ``blocks``), in the plan's order, walked in ``plan.processes``
    processes. Once it has been iterated, ``plan.warnings`` and ``plan.run_statuses()`` are those of the whole
    scan, as after one process's."""
    processes = plan.processes
    files = [tempfile.TemporaryFile() for _ in range(processes)]
    try:
        ends = run_workers(_plan_share, processes, {"plan": plan, "render": render, "files": files}, progress)
        statuses = {label: status for end in ends for label, status in end["statuses"].items()}
        shared = shared_plan(plan, statuses, plan.now)
        streams = [blocks(shared, render, progress)] + [_read_blocks(handle) for handle in files]
        for _, rendered in heapq.merge(*streams, key=_block_key):
            yield from rendered
        plan.learned.warnings = scan_warnings(plan, shared, ends)
        plan.status_book().know(statuses)
    finally:
        for handle in files:
            handle.close()


def scan_warnings(plan: Plan, shared: Plan, shares: list[dict[str, Any]]) -> Warnings:
    """The scan warnings of a run in processes, as one process would have them: the plan's own, the shared
    folders' and each share's (its ``messages`` and ``count``)."""
    scanned = Warnings()
    for warnings in (plan.learned.warnings, shared.warnings):
        scanned.merge(warnings.messages, warnings.count)
    for share in shares:
        scanned.merge(share["messages"], share["count"])
    return scanned


def _block_key(block: tuple[tuple, Any]) -> tuple:
    return block[0]


def rows_of(classified: Classified) -> list[PlannedFile]:
    """The render that makes a block's plan rows (for clean's worklist)."""
    return list(planned_files(classified))
