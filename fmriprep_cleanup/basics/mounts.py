"""Where a scan runs: the file system a path is on (a network one wants threads listing folders at once) and
the processors this process may use (a local disk wants one process per core)."""

from __future__ import annotations

import os

from .paths import inside

NETWORK_FILESYSTEMS = ("nfs", "nfs4", "lustre", "gpfs", "cifs", "smb3", "smbfs", "beegfs", "ceph", "glusterfs",
                       "fuse.glusterfs", "fuse.sshfs", "fuse.ceph", "panfs", "wekafs", "9p", "afs", "fuse.rclone")
NETWORK_JOBS = 8  # folders listed at once on a network file system, by default
SUBJECTS_PER_PROCESS = 8  # fewer per process and forking and merging cost more than the process saves


def filesystem_type(path: str, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The type of the file system holding ``path`` (Linux), or None if it cannot be told."""
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as handle:
            mounts = handle.read().splitlines()
    except OSError:
        return None
    best, best_type = "", None
    for line in mounts:
        fields = line.split(" - ", 1)
        if len(fields) != 2:
            continue
        mount_point = fields[0].split()[4].replace("\\040", " ")
        fs_type = fields[1].split()[0]
        if inside(path, mount_point) and len(mount_point) >= len(best):
            best, best_type = mount_point, fs_type
    return best_type


def on_network(paths: list[str]) -> bool:
    """Whether any of ``paths`` is on a network file system (every lstat a round trip)."""
    types = {filesystem_type(path) for path in paths}
    return any(t in NETWORK_FILESYSTEMS for t in types if t)


def usable_cores() -> int:
    """The processors this process may run on (its affinity: a Slurm allocation, taskset), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_processes(subjects: int) -> int:
    """Processes a scan of a local disk uses by default: every usable core, as long as each gets at least
    SUBJECTS_PER_PROCESS subjects (a small dataset is scanned in one)."""
    return max(1, min(usable_cores(), subjects // SUBJECTS_PER_PROCESS))
