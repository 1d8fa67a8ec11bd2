"""Scheduling recipes with the absolute paths filled in: cron, systemd, Slurm (scrontab and sbatch)."""

from __future__ import annotations

import os
import shlex
import shutil
import sys

from ..basics.errors import CleanupError


def command_line(config: str, log: str) -> str:
    """The run command as a scheduler must spell it: absolute paths, no reliance on $PATH."""
    executable = shutil.which("fmriprep-cleanup")
    program = [os.path.abspath(executable)] if executable else [sys.executable, "-m", "fmriprep_cleanup"]
    return " ".join(shlex.quote(part) for part in program + ["run", "--config", config, "--log", log])


def cron(config: str, log: str) -> str:
    return (f"# fmriprep-cleanup storage hygiene, every night at 03:17: crontab -e, then paste this line\n"
            f"17 3 * * * {command_line(config, log)} >> {shlex.quote(log + '.out')} 2>&1\n")


def systemd_service(config: str, log: str) -> str:
    return f"""# Save as ~/.config/systemd/user/fmriprep-cleanup.service (its timer: schedule print --systemd-timer)
[Unit]
Description=fmriprep-cleanup storage hygiene

[Service]
Type=oneshot
ExecStart={command_line(config, log)}
Nice=10
IOSchedulingClass=idle
"""


def systemd_timer(config: str, log: str) -> str:
    return """# Save as ~/.config/systemd/user/fmriprep-cleanup.timer (its service: schedule print --systemd-service),
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
    return f"""# scrontab -e, then paste: Slurm runs it every night at 03:17 as a job on a compute node
#SCRON --job-name=fmriprep-cleanup
#SCRON --time=04:00:00
#SCRON --cpus-per-task=2
#SCRON --mem=2G
#SCRON --output={log}.%j.out
17 3 * * * {command_line(config, log)}
"""


def sbatch(config: str, log: str) -> str:
    return f"""#!/bin/bash
# Save as fmriprep-cleanup.sbatch and submit with: sbatch fmriprep-cleanup.sbatch
#SBATCH --job-name=fmriprep-cleanup
#SBATCH --time=04:00:00
#SBATCH --cpus-per-task=2
#SBATCH --mem=2G
#SBATCH --output={log}.%j.out
set -euo pipefail
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
    load_policy(config)
    config_path = os.path.abspath(config)
    log_path = os.path.abspath(log) if log else os.path.splitext(config_path)[0] + ".log.jsonl"
    return SNIPPETS[kind](config_path, log_path)


def program() -> list[str]:
    executable = shutil.which("fmriprep-cleanup")
    return [os.path.abspath(executable)] if executable else [sys.executable, "-m", "fmriprep_cleanup"]


def slurm_array(dataset: str, shards: int, run_dir: str, options: list[str] | None = None,
                clean: list[str] | None = None) -> str:
    """A bash script that submits the report of ``dataset`` as a Slurm job array of ``shards`` tasks (each
    scans a share of the subjects into a partial result) and a merge job that runs once they all succeeded
    and writes report.txt, report.json and report.html into ``run_dir``. ``options``: report options passed
    on (--work-dir, --rules...).

    ``clean`` (clean's options: --mode delete, --archive-dir DIR...): the array cleans instead, each task its
    share of the subjects (`clean --shard K/N`, its summary in clean-K.json), and the job after it cleans the
    files of no subject (`clean --shared-only`) and then reports what the dataset holds. Exit 3 (done, with
    files skipped - a running subject's) counts as success, so the last step still runs."""
    if shards < 1:
        raise CleanupError(f"--shards {shards}: at least 1")
    run = shlex.quote(os.path.abspath(run_dir))
    tool = " ".join(shlex.quote(part) for part in program())
    target = " ".join(shlex.quote(part) for part in [os.path.abspath(dataset), *(options or [])])
    reports = "\n".join(f"{tool} report {target} --quiet --format {fmt} --output {run}/report.{suffix}"
                         for fmt, suffix in (("text", "txt"), ("json", "json"), ("html", "html")))
    if clean is None:
        what = "report"
        task = (f"exec {tool} report {target} --quiet --shard \"$SLURM_ARRAY_TASK_ID/{shards}\" --partial-out "
                f"{run}/partial-\"$SLURM_ARRAY_TASK_ID\".json")
        partials = f"{run}/partial-*.json"
        last = "\n".join(f"{tool} merge {partials} --quiet --format {fmt} --output {run}/report.{suffix}"
                          for fmt, suffix in (("text", "txt"), ("json", "json"), ("html", "html")))
        steps = ("(task K scans a share of the subjects into partial-K.json) and a merge job that runs after every "
                 "task\n# succeeded and writes report.txt, report.json and report.html there")
        resubmit = "then the merge\n# (sbatch last.sbatch); `fmriprep-cleanup merge` names any shard still missing."
    else:
        what = "cleanup"
        acting = " ".join(shlex.quote(part) for part in clean)
        task = (f"status=0\n{tool} clean {target} {acting} --yes --quiet --format json --shard "
                f"\"$SLURM_ARRAY_TASK_ID/{shards}\" > {run}/clean-\"$SLURM_ARRAY_TASK_ID\".json || status=$?\n"
                "exit $(( status == 3 ? 0 : status ))  # 3: done, some files skipped (see the JSON)")
        last = (f"status=0\n{tool} clean {target} {acting} --yes --quiet --format json --shared-only > "
                f"{run}/clean-shared.json || status=$?\n{reports}\nexit $(( status == 3 ? 0 : status ))")
        steps = ("(task K cleans a share of the subjects, its summary in clean-K.json) and a last job that runs\n"
                 "# after every task succeeded: it cleans the files of no subject (clean-shared.json) and writes "
                 "report.txt,\n# report.json and report.html there")
        resubmit = ("then the last job\n# (sbatch last.sbatch). A shard's lock covers its subjects: a second "
                    "array on the same dataset is refused.")
    return f"""#!/bin/bash
# The fmriprep-cleanup {what} of {os.path.abspath(dataset)}, by a Slurm job array of {shards} shards.
# Run this script once: it writes two batch scripts into {os.path.abspath(run_dir)} and submits them - the array
# {steps}. A failed task can be resubmitted
# alone (sbatch --array=K --output={os.path.abspath(run_dir)}/shard-%a.out shard.sbatch), {resubmit}
set -euo pipefail
RUN={run}
mkdir -p "$RUN"
cat > "$RUN/shard.sbatch" <<'SHARD'
#!/bin/bash
#SBATCH --job-name=fmriprep-cleanup-shard
#SBATCH --time=04:00:00
#SBATCH --cpus-per-task=1
#SBATCH --mem=1G
set -euo pipefail
{task}
SHARD
cat > "$RUN/last.sbatch" <<'LAST'
#!/bin/bash
#SBATCH --job-name=fmriprep-cleanup-{"merge" if clean is None else "shared"}
#SBATCH --time=01:00:00
#SBATCH --cpus-per-task=1
#SBATCH --mem=2G
set -euo pipefail
{last}
LAST
array=$(sbatch --parsable --array=1-{shards} --output="$RUN/shard-%a.out" "$RUN/shard.sbatch")
array=${{array%%;*}}
last=$(sbatch --parsable --dependency=afterok:"$array" --output="$RUN/last.out" "$RUN/last.sbatch")
echo "submitted the shards (job $array) and the last step (job ${{last%%;*}}): the report will be in $RUN"
"""
