"""report on a network file system: an sshfs mount of a generated tree, against du and gdu (issue 47).

    python benchmarks/network.py                 # 100k files, 3 paired rounds, prints a RESULTS.md section
    python benchmarks/network.py --files 20000 --runs 2

Builds (or reuses) the generator's standard tree of about 100k files (about 100 subjects, times settled in the
past), starts a loopback sshd on a free port with a key of its own, mounts the tree with sshfs (-o cache=no: file
data not cached; the kernel caches attributes for 1 s, as NFS's attribute cache does), and times `du`,
`gdu` and `fmriprep-cleanup report` (then `plan`) in rounds, each round every command once in turn, so a drift
of the machine touches them alike. The page cache is dropped before each command where this process may
(/proc/sys/vm/drop_caches; in a container it may not: then said). The report's totals over the mount are checked
against the local tree's. The mount and the sshd are taken down by their ids, whatever happens. Skips with a
clear message where sshfs, sshd or gdu are missing (Debian: sshfs, openssh-server, gdu).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import TOOL, ensure_tree, run_once  # noqa: E402

SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"


def missing() -> list[str]:
    needed = {"sshfs": shutil.which("sshfs"), "sshd (openssh-server)": os.path.exists(SSHD) and SSHD,
              "sftp-server (openssh-server)": os.path.exists(SFTP_SERVER) and SFTP_SERVER, "gdu": shutil.which("gdu"),
              "/dev/fuse": os.path.exists("/dev/fuse") and "/dev/fuse", "fusermount": shutil.which("fusermount")}
    return [name for name, found in needed.items() if not found]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Mount:
    """A loopback sshd and an sshfs mount of ``tree``; both taken down on exit by their ids."""

    def __init__(self, tree: Path, work: Path) -> None:
        self.tree, self.work, self.sshd_pid, self.point = tree, work, None, work / "mnt"

    def __enter__(self) -> Path:
        work, port = self.work, free_port()
        for key in ("client", "host"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / key)], check=True)
        (work / "sshd_config").write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {work / 'host'}\nPidFile {work / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {work / 'client.pub'}\nPermitRootLogin yes\nPasswordAuthentication no\n"
            f"StrictModes no\nUsePAM no\nSubsystem sftp {SFTP_SERVER}\n")
        os.makedirs("/run/sshd", exist_ok=True)
        subprocess.run([SSHD, "-f", str(work / "sshd_config"), "-E", str(work / "sshd.log")], check=True)
        for _ in range(50):
            if (work / "sshd.pid").exists():
                break
            time.sleep(0.1)
        self.sshd_pid = int((work / "sshd.pid").read_text())
        self.point.mkdir()
        subprocess.run(["sshfs", "-o", f"cache=no,IdentityFile={work / 'client'},StrictHostKeyChecking=no,"
                        f"UserKnownHostsFile=/dev/null,port={port}", f"root@127.0.0.1:{self.tree}", str(self.point)],
                       check=True)
        return self.point

    def __exit__(self, *_: object) -> None:
        subprocess.run(["fusermount", "-u", str(self.point)], check=False, capture_output=True)
        if self.sshd_pid is not None:
            try:
                os.kill(self.sshd_pid, 15)
            except ProcessLookupError:
                pass


def drop_caches() -> bool:
    """Drop the page cache (and dentries and inodes) if this process may; whether it could."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as handle:
            handle.write("3\n")
        return True
    except OSError:
        return False


def totals(folder: Path) -> dict[str, int]:
    """The report's totals; allocated bytes left out: sftp does not carry a file's blocks (sshfs makes them up
    from its size)."""
    done = subprocess.run(TOOL + ["report", str(folder / "fmriprep"), "--work-dir", str(folder / "work"), "--format",
                                  "json", "-q"], capture_output=True, text=True, check=True)
    return {key: value for key, value in json.loads(done.stdout)["totals"].items() if key != "allocated_bytes"}


def rounds(commands: dict[str, list[str]], runs: int) -> tuple[dict[str, list[float]], bool]:
    """Wall seconds of each command in ``runs`` rounds (every command once a round, the cache dropped first)."""
    walls: dict[str, list[float]] = {name: [] for name in commands}
    dropped = True
    for _ in range(runs):
        for name, command in commands.items():
            dropped = drop_caches() and dropped
            walls[name].append(run_once(command)["wall"])
            print(f"  {name}: {walls[name][-1]:.1f} s", flush=True)
    return walls, dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--trees", type=Path, default=HERE / "trees", help="where generated trees are kept")
    args = parser.parse_args()
    lacking = missing()
    if lacking:
        print(f"skipped: the network benchmark needs {', '.join(lacking)}")
        return
    tree = ensure_tree(args.trees, args.files)
    local = totals(tree)
    with tempfile.TemporaryDirectory(prefix="fc-network-") as work, Mount(tree, Path(work)) as mounted:
        over = totals(mounted)
        assert over == local, f"the report over the mount must equal the local tree's: {over} != {local}"
        report = TOOL + ["report", str(mounted / "fmriprep"), "--work-dir", str(mounted / "work"), "--format",
                         "json", "-q"]
        walls, dropped = rounds({"du -s --apparent-size": ["du", "-s", "--apparent-size", str(mounted)],
                                 "gdu -n -a": ["gdu", "-n", "-a", str(mounted)], "report": report,
                                 "plan": TOOL + ["plan", str(mounted / "fmriprep"), "--work-dir",
                                                 str(mounted / "work")]}, args.runs)
    du = statistics.median(walls["du -s --apparent-size"])
    print(f"\n{local['files']:,} files over sshfs (cache=no), {args.runs} rounds, page cache "
          f"{'dropped before each' if dropped else 'not dropped (not permitted here)'}; totals equal the local tree's\n")
    print("| command | median | spread | vs du | vs gdu |\n| --- | --- | --- | --- | --- |")
    gdu = statistics.median(walls["gdu -n -a"])
    for name, found in walls.items():
        median = statistics.median(found)
        print(f"| `{name}` | {median:.1f} s | {min(found):.1f}-{max(found):.1f} s | {median / du:.2f}x | "
              f"{median / gdu:.2f}x |")


if __name__ == "__main__":
    main()
