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
    return (f"# fmriprep-cleanup storage hygiene, every night at 03:17 (crontab -e, then paste)\n"
            f"17 3 * * * {command_line(config, log)} >> {shlex.quote(log + '.out')} 2>&1\n")


def systemd(config: str, log: str) -> str:
    return f"""# ~/.config/systemd/user/fmriprep-cleanup.service
[Unit]
Description=fmriprep-cleanup storage hygiene

[Service]
Type=oneshot
ExecStart={command_line(config, log)}
Nice=10
IOSchedulingClass=idle

# ~/.config/systemd/user/fmriprep-cleanup.timer
[Unit]
Description=Run fmriprep-cleanup every night

[Timer]
OnCalendar=*-*-* 03:17:00
RandomizedDelaySec=30min
Persistent=true

[Install]
WantedBy=timers.target

# then: systemctl --user daemon-reload && systemctl --user enable --now fmriprep-cleanup.timer
"""


def slurm(config: str, log: str) -> str:
    return f"""# scrontab -e, then paste (Slurm runs it as a job on a compute node)
#SCRON --job-name=fmriprep-cleanup
#SCRON --time=04:00:00
#SCRON --cpus-per-task=2
#SCRON --mem=2G
17 3 * * * {command_line(config, log)}

# Or, where only batch jobs may touch project storage: save as fmriprep-cleanup.sbatch, submit with sbatch
#!/bin/bash
#SBATCH --job-name=fmriprep-cleanup
#SBATCH --time=04:00:00
#SBATCH --cpus-per-task=2
#SBATCH --mem=2G
#SBATCH --output={log}.%j.out
set -euo pipefail
{command_line(config, log)}
"""


SNIPPETS = {"cron": cron, "systemd": systemd, "slurm": slurm}


def recipe(kind: str, config: str, log: str | None = None) -> str:
    """The recipe for one scheduler ("cron", "systemd" or "slurm") running the policy ``config`` every night,
    with absolute paths (``log``: default beside the policy, .log.jsonl). The policy is checked first: a
    schedule for a broken policy would only fail every night."""
    from .policy import load_policy

    if kind not in SNIPPETS:
        raise CleanupError(f"unknown scheduler {kind!r}; one of {', '.join(SNIPPETS)}")
    load_policy(config)
    config_path = os.path.abspath(config)
    log_path = os.path.abspath(log) if log else os.path.splitext(config_path)[0] + ".log.jsonl"
    return SNIPPETS[kind](config_path, log_path)
