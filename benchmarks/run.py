"""Benchmark fmriprep-cleanup against du, find, pybids and bids2table on the same generated trees.

    python benchmarks/run.py                      # 250k and 1M files, 5 runs each, writes benchmarks/RESULTS.md
    python benchmarks/run.py --sizes 250000 --runs 3

Whole processes, warm cache (every command runs once unmeasured first), median wall time of the runs, CPU
time (user + system) and peak RSS of the child, read with wait4(). pybids and bids2table index the BIDS
output only (TREE/fmriprep, not the working directory), and fmriprep-cleanup is timed on that same part for
the comparison. The plan of each tree is digested (lines sorted, paths relative to the tree) and checked against
benchmarks/plan-digests.json, so an optimisation that changes any decision shows up here.
Delete and archive throughput are measured on small trees of real (non-sparse) files (the same layout, file
sizes capped at 64 KiB and at 1 MiB) against rm -rf and
tar -cf + sha256sum of the same junk, and, since archiving also removes the originals, against
tar -cf + sha256sum + rm -rf. Each of those runs on a fresh copy of the tree that has been written to disk
(sync): junk has been on disk for a while when anyone cleans it, and deleting a file whose blocks are
allocated costs far more than deleting one still in the page cache.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from generate import generate  # noqa: E402

TOOL = [sys.executable, "-c", "from fmriprep_cleanup.cli import main; main()"]
DIGESTS = HERE / "plan-digests.json"


GNU_TIME = "/usr/bin/time" if os.path.exists("/usr/bin/time") else None


def run_once(command: list[str], cwd: str | None = None) -> dict[str, float]:
    """Wall and CPU seconds from wait4; peak RSS from GNU time, which forks the command from a tiny process
    (wait4's maxrss would include the child's pre-exec copy of this runner)."""
    with tempfile.NamedTemporaryFile("r") as rss_file:
        wrapped = [GNU_TIME, "-f", "%M", "-o", rss_file.name, *command] if GNU_TIME else command
        started = time.perf_counter()
        process = subprocess.Popen(wrapped, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"failed: {' '.join(command)}")
        rss = float(rss_file.read().strip() or 0) / 1024 if GNU_TIME else usage.ru_maxrss / 1024
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss": rss}


def measure(command: list[str], runs: int, cwd: str | None = None) -> dict[str, float]:
    """Median wall seconds, median CPU seconds and the largest peak RSS (MiB) over ``runs`` runs."""
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)  # warm the cache
    rows = [run_once(command, cwd) for _ in range(runs)]
    return {"wall": statistics.median(r["wall"] for r in rows), "cpu": statistics.median(r["cpu"] for r in rows),
            "rss": max(r["rss"] for r in rows)}


def plan_digest(tree: Path) -> str:
    """sha256 of the plan's lines in byte order, with the tree's location taken out: every file's decision,
    whatever the order the plan lists them in (that order is deterministic and checked by the tests)."""
    digest = hashlib.sha256()
    prefix = str(tree.resolve()).encode() + b"/"  # the tool reports real paths (trees/ may be a link)
    plan = subprocess.Popen(TOOL + ["plan", str(tree / "fmriprep"), "--work-dir", str(tree / "work")], stdout=subprocess.PIPE)
    ordered = subprocess.Popen(["sort"], stdin=plan.stdout, stdout=subprocess.PIPE, env={**os.environ, "LC_ALL": "C"})
    plan.stdout.close()
    for line in ordered.stdout:
        digest.update(line.replace(prefix, b""))
    if plan.wait() != 0 or ordered.wait() != 0:
        raise SystemExit("plan failed")
    return digest.hexdigest()


def ensure_tree(trees: Path, files: int, shape: str = "standard") -> Path:
    tree = trees / (f"tree-{files}" if shape == "standard" else f"tree-{shape}-{files}")
    if not (tree / "fmriprep" / "dataset_description.json").exists():
        shutil.rmtree(tree, ignore_errors=True)
        print(f"generating {tree} ...", flush=True)
        generate(str(tree), files, shape=shape)
    return tree.resolve()  # du and find do not follow a symlink given as the tree


def scan_benchmarks(tree: Path, runs: int, heavy_runs: int, skip: tuple[str, ...] = ()) -> dict[str, dict[str, float]]:
    output, work = str(tree / "fmriprep"), str(tree / "work")
    results = {
        "du -s --apparent-size": measure(["du", "-s", "--apparent-size", str(tree)], runs),
        "find -printf '%s\\n'": measure(["find", str(tree), "-printf", "%s\n"], runs),
        **({"gdu -n -a (Go, parallel)": measure(["gdu", "-n", "-a", str(tree)], runs)} if shutil.which("gdu") else {}),
        "fmriprep-cleanup report --format json": measure(TOOL + ["report", output, "--work-dir", work, "--format", "json", "-q"], runs),
        "fmriprep-cleanup report --jobs 2 (2 processes)": measure(
            TOOL + ["report", output, "--work-dir", work, "--format", "json", "-q", "--jobs", "2"], runs),
        "fmriprep-cleanup plan --format tsv": measure(TOOL + ["plan", output, "--work-dir", work], runs),
        "du (BIDS output only)": measure(["du", "-s", "--apparent-size", output], runs),
        "fmriprep-cleanup report (BIDS output only)": measure(TOOL + ["report", output, "--no-work-dir", "--format", "json", "-q"], runs),
    }
    if "pybids" not in skip:
        pybids = [sys.executable, "-c", f"from bids import BIDSLayout; BIDSLayout({output!r}, validate=False)"]
        results["pybids BIDSLayout(validate=False) (BIDS output only)"] = measure(pybids, heavy_runs)
    try:
        import bids2table  # noqa: F401
    except ImportError:
        print("bids2table is not installed (pip install bids2table): skipped", flush=True)
    else:
        index = [sys.executable, "-c", f"from bids2table import index_dataset; index_dataset({output!r})"]
        with tempfile.TemporaryDirectory() as scratch:
            results["bids2table index (BIDS output only)"] = measure(index, heavy_runs, cwd=scratch)
    return results


def real_tree(root: Path, files: int, cap: int) -> Path:
    """A small tree of real bytes (sizes capped at ``cap``) for delete and archive throughput."""
    from fmriprep_cleanup import fmriprep

    tree = root / "pristine"
    generate(str(tree), files)
    for dirpath, _, names in os.walk(tree):
        for name in names:
            path = os.path.join(dirpath, name)
            if name == "dataset_description.json":
                continue
            size = min(os.path.getsize(path), cap)
            with open(path, "wb") as handle:
                handle.write(os.urandom(size))
            os.utime(path, (fmriprep.DEMO_MTIME, fmriprep.DEMO_MTIME))
    return tree


JUNK = ["work", "fmriprep/sourcedata/freesurfer/fsaverage"]  # what the shipped rules call junk, as folders


def act_benchmarks(runs: int, files: int, cap: int) -> tuple[dict[str, dict[str, float]], int]:
    """clean --mode delete vs rm -rf, clean --mode archive vs tar -cf + sha256sum, on the same junk;
    and the junk's size in bytes."""
    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as scratch:
        root = Path(scratch)
        pristine = real_tree(root, files, cap)
        junk_bytes = sum(os.lstat(os.path.join(dirpath, name)).st_size for folder in JUNK
                         for dirpath, _, names in os.walk(pristine / folder) for name in names)
        commands = {
            "rm -rf (junk)": lambda t: ["rm", "-rf", *[str(t / j) for j in JUNK]],
            "fmriprep-cleanup clean --mode delete": lambda t: TOOL + ["clean", str(t / "fmriprep"), "--work-dir", str(t / "work"),
                                                                     "--mode", "delete", "--yes", "--min-age", "0s"],
            "tar -cf + sha256sum (junk)": lambda t: ["sh", "-c", f"cd {t} && tar -cf {root}/junk.tar {' '.join(JUNK)} && "
                                                            f"find {' '.join(JUNK)} -type f -print0 | xargs -0 sha256sum > /dev/null"],
            "tar -cf + sha256sum + rm -rf (junk)": lambda t: ["sh", "-c", f"cd {t} && tar -cf {root}/junk.tar {' '.join(JUNK)} && "
                                                                     f"find {' '.join(JUNK)} -type f -print0 | xargs -0 sha256sum > /dev/null && "
                                                                     f"rm -rf {' '.join(JUNK)}"],
            "fmriprep-cleanup clean --mode archive": lambda t: TOOL + ["clean", str(t / "fmriprep"), "--work-dir", str(t / "work"),
                                                                      "--mode", "archive", "--archive-dir", str(root / "archives"),
                                                                      "--yes", "--min-age", "0s"],
        }
        for _ in range(runs):
            for name, command in commands.items():
                tree = root / "tree"
                shutil.rmtree(tree, ignore_errors=True)
                shutil.rmtree(root / "archives", ignore_errors=True)
                subprocess.run(["cp", "-a", str(pristine), str(tree)], check=True)
                subprocess.run(["du", "-s", str(tree)], stdout=subprocess.DEVNULL)  # warm
                subprocess.run(["sync"])  # the copy's blocks on disk, as old junk's are
                results.setdefault(name, []).append(run_once(command(tree)))
                (root / "junk.tar").unlink(missing_ok=True)
    return {name: {"wall": statistics.median(r["wall"] for r in rows), "cpu": statistics.median(r["cpu"] for r in rows),
                   "rss": max(r["rss"] for r in rows)} for name, rows in results.items()}, junk_bytes


def hash_speeds() -> str:
    """sha256 throughput of sha256sum and of Python's hashlib (which archive mode uses) on this machine."""
    with tempfile.NamedTemporaryFile(dir=os.environ.get("BENCH_TMP")) as sample:
        sample.write(os.urandom(256 * 2**20))
        sample.flush()
        started = time.perf_counter()
        subprocess.run(["sha256sum", sample.name], stdout=subprocess.DEVNULL, check=True)
        tool = time.perf_counter() - started
        started = time.perf_counter()
        digest = hashlib.sha256()
        with open(sample.name, "rb") as handle:
            for chunk in iter(lambda: handle.read(2**20), b""):
                digest.update(chunk)
        ours = time.perf_counter() - started
    return f"sha256 here: `sha256sum` {256 / tool:.0f} MiB/s, Python's hashlib {256 / ours:.0f} MiB/s"


PATHOLOGICAL_GLOBS = ["*?" * 16 + "X", "**/" * 12 + "x", "a*b*c*d*e*f*g*h", "*a*a*a*a*a*a*a*a*b", "[!a]*[!b]*[!c]*z",
                      "crash-*", "sub-*/figures/**", "*emissions*"]


def shard_benchmarks(trees: Path, sizes: list[int], runs: int) -> list[str]:
    """report in one process and in two (--jobs 2: shards in forked processes) against du, same run."""
    lines = ["| files | `du -s --apparent-size` | `report --jobs 1` | `report --jobs 2` | CPU `--jobs 2` "
             "| peak RSS `--jobs 1` / `--jobs 2` |", "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for size in sizes:
        tree = ensure_tree(trees, size)
        output, work = str(tree / "fmriprep"), str(tree / "work")
        measure(["du", "-s", "--apparent-size", str(tree)], 1)  # warm the cache
        du = measure(["du", "-s", "--apparent-size", str(tree)], runs)
        report = [TOOL + ["report", output, "--work-dir", work, "--format", "json", "-q", "--jobs", str(jobs)]
                  for jobs in (1, 2)]
        one, two = measure(report[0], runs), measure(report[1], runs)
        lines.append(f"| {size:,} | {du['wall']:.2f} s | {one['wall']:.2f} s ({one['wall'] / du['wall']:.2f}×) "
                     f"| {two['wall']:.2f} s ({two['wall'] / du['wall']:.2f}×) | {two['cpu']:.2f} s "
                     f"| {one['rss']:.0f} / {two['rss']:.0f} MiB |")
    return lines


def interleaved(commands: dict[str, list[str]], runs: int) -> dict[str, dict[str, float]]:
    """Each command once unmeasured (warm cache), then ``runs`` rounds of every command in turn: a drift in the
    machine's speed touches all of them alike, so the ratios of one round stay meaningful. Medians as measure()."""
    for command in commands.values():
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            rows[name].append(run_once(command))
    return {name: {"wall": statistics.median(r["wall"] for r in found), "cpu": statistics.median(r["cpu"] for r in found),
                   "rss": max(r["rss"] for r in found)} for name, found in rows.items()}


def same_output(first: list[str], second: list[str]) -> bool:
    """Whether two commands print the same bytes (cmp), e.g. the default run and --jobs 1."""
    with tempfile.TemporaryDirectory() as scratch:
        paths = [os.path.join(scratch, name) for name in ("a", "b")]
        for command, path in zip((first, second), paths, strict=True):
            with open(path, "wb") as handle:
                subprocess.run(command, stdout=handle, stderr=subprocess.DEVNULL, check=True)
        return subprocess.run(["cmp", "-s", *paths]).returncode == 0


SPEED_COMMANDS = ("report (default)", "report --jobs 1", "plan (default)")


def speed_benchmarks(trees: Path, sizes: list[int], shapes: list[str], runs: int, compare: bool) -> list[str]:
    """The issue-29 table: report and plan with default options, report in one process, against du on the
    same tree, every shape and size; peak RSS; with ``compare``, cmp of the default output with --jobs 1's."""
    lines = ["| shape | files | `du -s --apparent-size` | `report` (default) | `report --jobs 1` | `plan` (default) "
             "| CPU: report / --jobs 1 / plan | peak RSS (largest process) | default = `--jobs 1` (cmp) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for shape in shapes:
        for size in sizes:
            tree = ensure_tree(trees, size, shape)
            output, work = str(tree / "fmriprep"), str(tree / "work")
            base = TOOL + ["report", output, "--work-dir", work, "--format", "json", "-q"]
            plan = TOOL + ["plan", output, "--work-dir", work, "-q"]
            found = interleaved({"du": ["du", "-s", "--apparent-size", str(tree)], "report (default)": base,
                                 "report --jobs 1": base + ["--jobs", "1"], "plan (default)": plan}, runs)
            du = found["du"]["wall"]
            cells = [f"{found[name]['wall']:.2f} s ({found[name]['wall'] / du:.2f}×)" for name in SPEED_COMMANDS]
            same = "not checked"
            if compare:
                same = "yes" if same_output(base, base + ["--jobs", "1"]) and same_output(plan, plan + ["--jobs", "1"]) \
                    else "**no**"
            cpu = " / ".join(f"{found[name]['cpu']:.1f}" for name in SPEED_COMMANDS)
            rss = max(found[name]["rss"] for name in SPEED_COMMANDS)
            lines.append(f"| {shape} | {size:,} | {du:.2f} s | {' | '.join(cells)} | {cpu} s | {rss:.0f} MiB | {same} |")
            print(lines[-1], flush=True)
    started = startup(max(runs, 10))["fmriprep-cleanup --help"]["wall"]
    return lines + ["", f"Start-up (`{' '.join(installed_script())} --help`, median of {max(runs, 10)}): {started:.3f} s."]


def glob_benchmarks(paths: int = 10_000) -> list[str]:
    """Seconds to match each glob (the pathological ones from the hostile-input issue, and everyday ones)
    against ``paths`` real fMRIPrep paths: they must all finish in well under a second."""
    from fmriprep_cleanup import fmriprep
    from fmriprep_cleanup.rules import compiled_form, glob_to_regex

    listing = [path for path, _ in fmriprep.load_listing()] + [path for path, _ in fmriprep.synthetic_workdir(fmriprep.load_listing())]
    sample = [listing[i % len(listing)] for i in range(paths)]
    lines = [f"## Globs on {paths:,} paths", "", "| glob | matched as | seconds | matches |", "| --- | --- | ---: | ---: |"]
    for glob in PATHOLOGICAL_GLOBS:
        matcher = glob_to_regex(glob)
        started = time.perf_counter()
        matches = sum(1 for path in sample if matcher.match(path))
        seconds = time.perf_counter() - started
        form = "automaton" if compiled_form(glob).startswith("components") else "regex"
        lines.append(f"| `{glob}` | {form} | {seconds:.3f} | {matches:,} |")
    return lines + [""]


def compiled_as_installed() -> None:
    """Write the package's bytecode, as pip does when it installs: an editable install run with
    PYTHONDONTWRITEBYTECODE (as here) would otherwise compile every module again in every timed run."""
    import compileall

    import fmriprep_cleanup

    compileall.compile_dir(os.path.dirname(fmriprep_cleanup.__file__), quiet=1)


def installed_script() -> list[str]:
    """The fmriprep-cleanup script of this Python (beside it, as a user's environment has it), not a wrapper
    found first on PATH (a pyenv shim adds 60 ms of shell scripts to every start)."""
    beside = Path(sys.executable).with_name("fmriprep-cleanup")
    if beside.is_file():
        return [str(beside)]
    script = shutil.which("fmriprep-cleanup")
    return [script] if script else TOOL


def startup(runs: int) -> dict[str, dict[str, float]]:
    base = installed_script()
    return {"fmriprep-cleanup --help": measure(base + ["--help"], runs),
            "fmriprep-cleanup rules list": measure(base + ["rules", "list"], runs)}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    from fmriprep_cleanup import __version__
    from fmriprep_cleanup.basics import filesystem_type

    return (f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB memory, {platform.system()} {platform.release()}, "
            f"file system {filesystem_type(str(HERE)) or 'unknown'}, Python {platform.python_version()}, "
            f"fmriprep-cleanup {__version__}")


def table(results: dict[str, dict[str, float]], baseline: str) -> list[str]:
    base = results[baseline]["wall"]
    bids_base = results.get("du (BIDS output only)", {}).get("wall", base)
    lines = ["| command | wall (s, median) | × du of the same part | CPU (s) | peak RSS (MiB) |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name, r in results.items():
        ratio = r["wall"] / (bids_base if "BIDS output only" in name else base)
        lines.append(f"| `{name}` | {r['wall']:.2f} | {ratio:.2f} | {r['cpu']:.2f} | {r['rss']:.0f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[250_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--heavy-runs", type=int, default=1, help="runs of pybids and bids2table (slow)")
    parser.add_argument("--act-files", type=int, default=10_000, help="files in the real trees for delete/archive")
    parser.add_argument("--act-caps", type=int, nargs="+", default=[64 * 1024, 2**20],
                        help="size caps (bytes) of the real trees' files: one tree per cap")
    parser.add_argument("--trees", type=Path, default=HERE / "trees")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--skip", nargs="*", default=[], choices=["pybids"], help="leave out slow comparisons")
    parser.add_argument("--shapes", nargs="+", default=["standard", "freesurfer-heavy"],
                        help="tree shapes for --only speed (see generate.py)")
    parser.add_argument("--no-compare", action="store_true", help="--only speed: skip the cmp of outputs")
    parser.add_argument("--only", choices=["globs", "shards", "speed"],
                        help="run only this section and print it (RESULTS.md is left as it is)")
    args = parser.parse_args()
    compiled_as_installed()
    if args.only == "globs":
        print("\n".join(glob_benchmarks()))
        return
    if args.only == "speed":
        print("\n".join(speed_benchmarks(args.trees, args.sizes, args.shapes, args.runs, not args.no_compare)))
        return
    if args.only == "shards":
        print("\n".join(shard_benchmarks(args.trees, args.sizes, args.runs)))
        return
    args.trees.mkdir(parents=True, exist_ok=True)
    digests = json.loads(DIGESTS.read_text()) if DIGESTS.exists() else {}
    skipped = f" --skip {' '.join(args.skip)}" if args.skip else ""
    lines = ["# Benchmark results", "", f"Machine: {machine()}.", "",
             f"Command: `python benchmarks/run.py --sizes {' '.join(map(str, args.sizes))} --runs {args.runs}{skipped}`, "
             f"{time.strftime('%Y-%m-%d')}. Warm cache; wall time is the median of {args.runs} runs "
             f"(pybids and bids2table: {args.heavy_runs}); ratios are to `du -s --apparent-size` of the same tree "
             "in the same run.", ""]
    walls = {}
    for files in args.sizes:
        tree = ensure_tree(args.trees, files)
        count = sum(len(names) for _, _, names in os.walk(tree))
        digest = plan_digest(tree)
        expected = digests.get(str(files))
        status = "matches the recorded digest" if expected == digest else (
            "NEW (recorded now)" if expected is None else f"DIFFERS from the recorded {expected[:12]}…")
        digests.setdefault(str(files), digest)
        print(f"{count:,} files: plan digest {digest[:12]}… {status}", flush=True)
        results = scan_benchmarks(tree, args.runs, args.heavy_runs, tuple(args.skip))
        walls[files] = results
        lines += [f"## {count:,} files", "", f"Plan digest `{digest[:16]}…`: {status}.", ""]
        lines += table(results, "du -s --apparent-size") + [""]
        ours = results["fmriprep-cleanup report (BIDS output only)"]["wall"]
        for other in ("pybids BIDSLayout(validate=False) (BIDS output only)", "bids2table index (BIDS output only)"):
            if other in results:
                lines.append(f"- `report` is {results[other]['wall'] / ours:.0f}× faster than {other.split(' (')[0]} on the BIDS output.")
        lines.append("")
        print("\n".join(table(results, "du -s --apparent-size")), flush=True)
    if len(args.sizes) >= 2:
        small, large = min(args.sizes), max(args.sizes)
        key = "fmriprep-cleanup report --format json"
        time_ratio = walls[large][key]["wall"] / walls[small][key]["wall"]
        rss_growth = walls[large][key]["rss"] / walls[small][key]["rss"]
        lines += ["## Growth", "", f"From {small:,} to {large:,} files ({large / small:.1f}× the files): `report` takes "
                  f"{time_ratio:.2f}× the time and {rss_growth:.2f}× the peak memory "
                  f"({walls[small][key]['rss']:.0f} → {walls[large][key]['rss']:.0f} MiB).", ""]
    for cap in args.act_caps:
        act, junk_bytes = act_benchmarks(args.runs, args.act_files, cap)
        section = len(lines)
        lines += [f"## Acting on a {args.act_files:,}-file tree of real bytes, sizes capped at {cap // 1024:,} KiB "
                  f"(junk only: {junk_bytes / 2**20:,.0f} MiB)", "",
                  "| command | wall (s, median) | throughput vs the Unix tools |", "| --- | ---: | ---: |"]
        for ours, theirs in (("fmriprep-cleanup clean --mode delete", ["rm -rf (junk)"]),
                             ("fmriprep-cleanup clean --mode archive",
                              ["tar -cf + sha256sum (junk)", "tar -cf + sha256sum + rm -rf (junk)"])):
            lines += [f"| `{other}` | {act[other]['wall']:.2f} | |" for other in theirs]
            ratios = ", ".join(f"{act[other]['wall'] / act[ours]['wall']:.2f}× ({'+'.join(n.split()[0] for n in other.split(' + '))})"
                               for other in theirs)
            lines.append(f"| `{ours}` | {act[ours]['wall']:.2f} | {ratios} |")
        lines.append("")
        print("\n".join(lines[section:]), flush=True)
    lines += ["`clean` here includes its own scan, classification, journal and verification, and archive mode "
              "removes the originals once their archive is verified; the Unix tools are given the junk folders "
              "directly. Every run starts from a fresh copy of the tree, synced to disk. Real fMRIPrep junk is "
              "mostly bytes in large files (a working directory's median file is a few KiB, its mean several MiB): "
              "the small cap shows what each file costs, the larger one what each byte costs. "
              f"{hash_speeds()}.", ""]
    lines += glob_benchmarks()
    start = startup(args.runs)
    lines += ["## Start-up", ""] + [f"- `{name}`: {r['wall']:.2f} s" for name, r in start.items()] + [""]
    args.results.write_text("\n".join(lines))
    DIGESTS.write_text(json.dumps(digests, indent=2) + "\n")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
