"""What the computation cost: the CodeCarbon records fMRIPrep writes with --track-carbon (22.1.0 and later).

Up to 25.2.4 every run appends to ``<output>/logs/emissions.csv``; from 25.2.5 each run writes
``<output>/logs/codecarbon/<run_uuid>/emissions.csv``. When CodeCarbon's columns change it renames the old file
``emissions.csv.bak`` or ``emissions.csv_<n>.bak``: those are read too. Columns differ across CodeCarbon
versions (about 12 in old files, 32 in 2.8, 38 in 3.3), so they are read by name: ``timestamp``,
``duration`` (s), ``emissions`` (kg CO2e), ``energy_consumed`` (kWh), ``country_iso_code`` where present.

A record is attributed to a run of fMRIPrep: by its folder (the run_uuid) in the newer layout, else by time -
the newest run that started before the record's timestamp. A run's subjects are the ``participant_label`` of
its ``fmriprep.toml``; a run covering several subjects is shared equally among them.
"""

from __future__ import annotations

import csv
import io
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..basics.errors import CleanupError
from ..basics.guarded import read_text
from .workdirs import read_run_config

BACKUP = re.compile(r"^emissions\.csv(?:_\d+)?\.bak$")
RUN_FOLDER = re.compile(r"^(\d{8}-\d{6})_([0-9a-f-]{36})$")


@dataclass
class ComputeRecord:
    """One CodeCarbon row: what one fMRIPrep run (or part of it) consumed and emitted."""

    source: str  # file:line
    timestamp: float | None
    duration_s: float
    kwh: float
    kg: float
    country: str | None
    run_uuid: str | None  # the fMRIPrep run it belongs to, once attributed
    subjects: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "timestamp": self.timestamp, "duration_s": self.duration_s,
                "energy_kwh": self.kwh, "emissions_kg": self.kg, "country": self.country, "run_uuid": self.run_uuid,
                "subjects": self.subjects}


def emission_files(derivatives: str) -> list[tuple[str, str | None]]:
    """Every emissions file of the dataset, with the run_uuid its folder names (None for the shared file)."""
    logs = os.path.join(derivatives, "logs")
    found: list[tuple[str, str | None]] = []
    try:
        names = sorted(os.listdir(logs))
    except OSError:
        return []
    for name in names:
        if name == "emissions.csv" or BACKUP.match(name):
            found.append((os.path.join(logs, name), None))
    per_run = os.path.join(logs, "codecarbon")
    if os.path.isdir(per_run):
        for run in sorted(os.listdir(per_run)):
            path = os.path.join(per_run, run, "emissions.csv")
            if os.path.isfile(path):
                found.append((path, run))
    return found


def _number(row: dict[str, str], name: str) -> float:
    try:
        return float(row.get(name) or 0)
    except ValueError:
        return 0.0


def _when(text: str | None) -> float | None:
    if not text:
        return None
    try:
        stamp = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp.timestamp() if stamp.tzinfo else time.mktime(stamp.timetuple())


def read_records(path: str, run_uuid: str | None) -> list[ComputeRecord]:
    """The rows of one emissions file, read by column name; CleanupError for a file that is not CSV."""
    text = read_text(path, "emissions file")
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "emissions" not in reader.fieldnames:
        raise CleanupError(f"{path}: not a CodeCarbon emissions file (no 'emissions' column)")
    records = []
    for number, row in enumerate(reader, start=2):
        records.append(ComputeRecord(f"{path}:{number}", _when(row.get("timestamp")), _number(row, "duration"),
                                     _number(row, "energy_consumed"), _number(row, "emissions"),
                                     row.get("country_iso_code") or None, run_uuid))
    return records


def fmriprep_runs(derivatives: str) -> dict[str, tuple[float | None, list[str]]]:
    """Every fMRIPrep run of the dataset: run_uuid -> (start time, its subjects), from the run folders
    ``sub-*/log/<time>_<uuid>/`` and their fmriprep.toml."""
    runs: dict[str, tuple[float | None, list[str]]] = {}
    try:
        subjects = sorted(name for name in os.listdir(derivatives) if name.startswith("sub-"))
    except OSError:
        return runs
    for subject in subjects:
        log = os.path.join(derivatives, subject, "log")
        if not os.path.isdir(log):
            continue
        for folder in sorted(os.listdir(log)):
            found = RUN_FOLDER.match(folder)
            if not found:
                continue
            started = time.mktime(time.strptime(found.group(1), "%Y%m%d-%H%M%S"))
            labels = [subject[4:]]
            try:
                recorded = read_run_config(os.path.join(log, folder, "fmriprep.toml")).get("participant_label")
                if isinstance(recorded, list) and recorded:
                    labels = [str(label).removeprefix("sub-") for label in recorded]
            except (OSError, ValueError):
                pass
            known = runs.get(found.group(2), (started, []))[1]
            runs[found.group(2)] = (started, sorted(set(known) | set(labels)))
    return runs


def compute_records(derivatives: str) -> tuple[list[ComputeRecord], list[str]]:
    """Every CodeCarbon record of the dataset, attributed to its run and subjects; and the problems met."""
    files = emission_files(derivatives)
    if not files:  # most datasets: no run config to read (0.2 s of a 960-subject report)
        return [], []
    runs = fmriprep_runs(derivatives)
    starts = sorted((start, uuid) for uuid, (start, _) in runs.items() if start is not None)
    records: list[ComputeRecord] = []
    problems: list[str] = []
    for path, run_uuid in files:
        try:
            records += read_records(path, run_uuid)
        except CleanupError as exc:
            problems.append(str(exc))
    for record in records:
        if record.run_uuid is None and record.timestamp is not None:
            begun = [uuid for start, uuid in starts if start <= record.timestamp]
            record.run_uuid = begun[-1] if begun else None
        if record.run_uuid in runs:
            record.subjects = runs[record.run_uuid][1]
        elif record.run_uuid is not None or record.timestamp is not None:
            problems.append(f"{record.source}: no fMRIPrep run folder matches it; not attributed to a subject")
    return records, problems
