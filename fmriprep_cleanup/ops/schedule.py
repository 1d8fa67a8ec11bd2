"""Scheduling recipes with the absolute paths filled in: cron, systemd, Slurm (scrontab and sbatch).

A recipe is run later by a scheduler, often as a service account, so a path must stay data whatever it holds:
every path is quoted for the language that reads it - the shell (shlex.quote); systemd's own command-line
syntax, which is not a shell's (each word in double quotes with backslash, double quote, ``%`` and ``$``
escaped: systemd processes C escapes inside quotes, specifiers and variables); cron and scrontab, which read
``%`` as a line break before the shell sees the line, are given no path holding one. A path holding a newline or
another control character is refused (it would end a comment or a directive line), and no path is written
into a Slurm ``#SBATCH``/``#SCRON`` directive, whose lines are not parsed by a shell: output goes where a
shell redirection in the job says.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from collections.abc import Iterable

from ..basics.errors import CleanupError


def checked(what: str, value: str) -> str:
    """``value`` (a path or an option given to a recipe) if it holds no control character; CleanupError else."""
    bad = next((char for char in value if ord(char) < 32 or ord(char) == 127), None)
    if bad is not None:
        name = "a newline" if bad in "\n\r" else f"a control character (U+{ord(bad):04X})"
        raise CleanupError(f"{what} {value!r} holds {name}: a scheduled script cannot carry it safely; "
                           "rename or link the folder first")
    return value


def program() -> list[str]:
    executable = shutil.which("fmriprep-cleanup")
    return [os.path.abspath(executable)] if executable else [sys.executable, "-m", "fmriprep_cleanup"]


def shell(words: Iterable[str]) -> str:
    return " ".join(shlex.quote(word) for word in words)


def command_line(config: str, log: str) -> str:
    """The run command as a scheduler must spell it: absolute paths, no reliance on $PATH, quoted for a shell."""
    return shell(program() + ["run", config, "--log", log])


def without_percent(kind: str, words: Iterable[str]) -> None:
    """cron and scrontab turn an unescaped ``%`` into a line break, and cron implementations disagree on what a
    backslash before it means: a path holding one is refused for them (CleanupError)."""
    for word in words:
        if "%" in word:
            raise CleanupError(f"{word!r} holds a %, which {kind} reads as a line break: a {kind} line cannot carry "
                               "it safely; rename or link the folder first (or use schedule sbatch or systemd)")


def cron(config: str, log: str) -> str:
    without_percent("cron", [*program(), config, log])
    line = f"{command_line(config, log)} >> {shlex.quote(log + '.out')} 2>&1"
    return f"# fmriprep-cleanup storage hygiene, every night at 03:17: crontab -e, then paste this line\n17 3 * * * {line}\n"


SYSTEMD_BARE = re.compile(r"[A-Za-z0-9_./:+,=@-]+")


def systemd_word(word: str, executable: bool = False) -> str:
    """One word of an ExecStart= line as systemd splits it (systemd.service(5), "Command lines"): in double
    quotes, with backslash and double quote escaped (systemd reads C escapes inside quotes), ``%`` doubled (a
    specifier) and, in an argument, ``$`` doubled (a variable; the executable's name is not expanded)."""
    if SYSTEMD_BARE.fullmatch(word):
        return word  # nothing systemd reads specially: as it is, for people to read
    text = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{text}"' if executable else f'"{text.replace("$", "$$")}"'


def systemd_service(config: str, log: str) -> str:
    executable, *rest = program()
    if any(char in executable for char in "\\\"'"):
        raise CleanupError(f"the program {executable!r} holds a quote or a backslash, which systemd refuses in an "
                           "executable's name; install fmriprep-cleanup where its path has none")
    words = [systemd_word(executable, executable=True)] + [systemd_word(word) for word in [*rest, "run", config,
                                                                                            "--log", log]]
    return f"""# Save as ~/.config/systemd/user/fmriprep-cleanup.service (its timer: schedule systemd-timer)
[Unit]
Description=fmriprep-cleanup storage hygiene

[Service]
Type=oneshot
ExecStart={" ".join(words)}
Nice=10
IOSchedulingClass=idle
"""


def systemd_timer(config: str, log: str) -> str:
    return """# Save as ~/.config/systemd/user/fmriprep-cleanup.timer (its service: schedule systemd-service),
# then: systemctl --user daemon-reload && systemctl --user enable --now fmriprep-cleanup.timer
[Unit]
Description=Run fmriprep-cleanup every night

[Timer]
OnCalendar=*-*-* 03:17:00
RandomizedDelaySec=30min
Persistent=true

[Install]
WantedBy=timers.target
"""


def scrontab(config: str, log: str) -> str:
    without_percent("scrontab", [*program(), config, log])
    return f"""# scrontab -e, then paste: Slurm runs it every night at 03:17 as a job on a compute node
#SCRON --job-name=fmriprep-cleanup
#SCRON --time=04:00:00
#SCRON --cpus-per-task=2
#SCRON --mem=2G
#SCRON --output=/dev/null
17 3 * * * {command_line(config, log)} >> {shlex.quote(log + '.out')} 2>&1
"""


def sbatch(config: str, log: str) -> str:
    return f"""#!/bin/bash
# Save as fmriprep-cleanup.sbatch and submit with: sbatch fmriprep-cleanup.sbatch
#SBATCH --job-name=fmriprep-cleanup
#SBATCH --time=04:00:00
#SBATCH --cpus-per-task=2
#SBATCH --mem=2G
#SBATCH --output=/dev/null
set -euo pipefail
exec >> {shlex.quote(log)}."${{SLURM_JOB_ID:-local}}".out 2>&1
{command_line(config, log)}
"""


SNIPPETS = {"cron": cron, "systemd-service": systemd_service, "systemd-timer": systemd_timer,
            "scrontab": scrontab, "sbatch": sbatch}
TWO_RECIPES = {"systemd": "systemd-service and systemd-timer", "slurm": "scrontab or sbatch"}


def recipe(kind: str, config: str, log: str | None = None) -> str:
    """The recipe for one scheduler (one of SNIPPETS: cron, systemd-service, systemd-timer, scrontab, sbatch)
    running the policy ``config`` every night, exactly one file's content, ready to save or submit,
    with absolute paths (``log``: default beside the policy, .log.jsonl). The policy is checked first: a
    schedule for a broken policy would only fail every night."""
    from .policy import load_policy

    if kind in TWO_RECIPES:
        raise CleanupError(f"{kind!r} has two recipes, one per file: ask for {TWO_RECIPES[kind]}")
    if kind not in SNIPPETS:
        raise CleanupError(f"unknown scheduler {kind!r}; one of {', '.join(SNIPPETS)}")
    config_path = checked("--config", os.path.abspath(config))
    log_path = checked("--log", os.path.abspath(log) if log else os.path.splitext(config_path)[0] + ".log.jsonl")
    load_policy(config)
    return SNIPPETS[kind](config_path, log_path)


def _write_file(path: str, script: str) -> str:
    """A shell command writing ``script`` to ``path``: the content is one quoted word, so nothing in it (a path
    included) can end it early, as a line could end a heredoc."""
    return f"printf '%s' {shlex.quote(script)} > {path}"


def slurm_array(dataset: str, shards: int, run_dir: str, options: list[str] | None = None,
                clean: list[str] | None = None) -> str:
    """A bash script that submits the report of ``dataset`` as a Slurm job array of ``shards`` tasks (each
    scans a share of the subjects into a partial result) and a merge job that runs once they all succeeded
    and writes report.txt, report.json and report.html into ``run_dir``. ``options``: report options passed
    on (--work-dir, --rules...).

    ``clean`` (clean's options: --mode delete, --archive-dir DIR...): the array cleans instead, each task its
    share of the subjects (`clean --array-task K/N`, its summary in clean-K.json), and the job after it cleans the
    files of no subject (`clean --shared-only`) and then reports what the dataset holds. Exit 3 (done, with
    files skipped - a running subject's) counts as success, so the last step still runs."""
    if shards < 1:
        raise CleanupError(f"--shards {shards}: at least 1")
    dataset = checked("the dataset", os.path.abspath(dataset))
    run_dir = checked("--run-dir", os.path.abspath(run_dir))
    for option in [*(options or []), *(clean or [])]:
        checked("an option", option)
    what, task, last, steps, resubmit = _array_steps(dataset, shards, options or [], clean)
    shard_script = f"""#!/bin/bash
#SBATCH --job-name=fmriprep-cleanup-shard
#SBATCH --time=04:00:00
#SBATCH --cpus-per-task=1
#SBATCH --mem=1G
set -euo pipefail
RUN={shlex.quote(run_dir)}
{task}
"""
    last_script = f"""#!/bin/bash
#SBATCH --job-name=fmriprep-cleanup-{"merge" if clean is None else "shared"}
#SBATCH --time=01:00:00
#SBATCH --cpus-per-task=1
#SBATCH --mem=2G
set -euo pipefail
RUN={shlex.quote(run_dir)}
{last}
"""
    logs = shlex.quote(run_dir.replace("%", "%%"))  # Slurm's --output reads % as a pattern; %% is a literal %
    return f"""#!/bin/bash
# The fmriprep-cleanup {what} of the dataset below, by a Slurm job array of {shards} shards.
# Run this script once: it writes two batch scripts into the run folder below and submits them - the array
# {steps}. A failed task can be resubmitted
# alone (sbatch --array=K --output=RUN/shard-%a.out RUN/shard.sbatch), {resubmit}
set -euo pipefail
DATASET={shlex.quote(dataset)}
RUN={shlex.quote(run_dir)}
mkdir -p "$RUN"
{_write_file('"$RUN"/shard.sbatch', shard_script)}
{_write_file('"$RUN"/last.sbatch', last_script)}
array=$(sbatch --parsable --array=1-{shards} --output={logs}/shard-%a.out "$RUN"/shard.sbatch)
array=${{array%%;*}}
last=$(sbatch --parsable --dependency=afterok:"$array" --output={logs}/last.out "$RUN"/last.sbatch)
echo "submitted the shards (job $array) and the last step (job ${{last%%;*}}) for $DATASET: the report will be in $RUN"
"""

def _array_steps(dataset: str, shards: int, options: list[str], clean: list[str] | None) -> tuple[str, ...]:
    """What the array does (a report or a cleanup): each task's command, the last job's, and how the script says
    them (the steps, how to resubmit)."""
    run = '"$RUN"'  # inside the batch scripts, the run folder comes from the environment the script sets
    tool = shell(program())
    target = shell([dataset, *options])
    reports = "\n".join(f"{tool} report {target} --quiet --format {fmt} --output {run}/report.{suffix}"
                        for fmt, suffix in (("text", "txt"), ("json", "json"), ("html", "html")))
    if clean is None:
        what = "report"
        task = (f"exec {tool} report {target} --quiet --shard \"$SLURM_ARRAY_TASK_ID/{shards}\" --partial-out "
                f"{run}/partial-\"$SLURM_ARRAY_TASK_ID\".json")
        last = "\n".join(f"{tool} merge {run}/partial-*.json --quiet --format {fmt} --output {run}/report.{suffix}"
                         for fmt, suffix in (("text", "txt"), ("json", "json"), ("html", "html")))
        steps = ("(task K scans a share of the subjects into partial-K.json) and a merge job that runs after every "
                 "task\n# succeeded and writes report.txt, report.json and report.html there")
        resubmit = "then the merge\n# (sbatch last.sbatch); `fmriprep-cleanup merge` names any shard still missing."
    else:
        what = "cleanup"
        acting = shell(clean)
        task = (f"status=0\n{tool} clean {target} {acting} --yes --quiet --format json --array-task "
                f"\"$SLURM_ARRAY_TASK_ID/{shards}\" > {run}/clean-\"$SLURM_ARRAY_TASK_ID\".json || status=$?\n"
                "exit $(( status == 3 ? 0 : status ))  # 3: done, some files skipped (see the JSON)")
        last = (f"status=0\n{tool} clean {target} {acting} --yes --quiet --format json --shared-only > "
                f"{run}/clean-shared.json || status=$?\n{reports}\nexit $(( status == 3 ? 0 : status ))")
        steps = ("(task K cleans a share of the subjects, its summary in clean-K.json) and a last job that runs\n"
                 "# after every task succeeded: it cleans the files of no subject (clean-shared.json) and writes "
                 "report.txt,\n# report.json and report.html there")
        resubmit = ("then the last job\n# (sbatch last.sbatch). A shard's lock covers its subjects: a second "
                    "array on the same dataset is refused.")
    return what, task, last, steps, resubmit

