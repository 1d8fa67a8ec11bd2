"""What keeping costs against rebuilding, in carbon: the compute to regenerate reclaimed outputs once (from the
runs' CodeCarbon records, or fMRIPrep's published benchmarks) and whether an unfinished run's cache costs less
to keep than a re-run. Numbers in, numbers and plain sentences out: the report lays them out (report/data.py)."""

from __future__ import annotations

from .model import Assumptions

# fMRIPrep's published benchmarks (docs/benchmarks.rst, nipreps/fmriprep; 23.2.0a2, 20-core desktop, i9-10900):
# dataset A fit 1h35m, fit + transform 1h47m, outputs 602 MB -> 6.37 GB; dataset B 1h29m, 2h7m, 543 MB -> 14.7 GB.
TRANSFORM_MINUTES_PER_GB = (12 + 38) / ((6.37 - 0.602) + (14.7 - 0.543))  # 2.5 minutes per GB rebuilt
TRANSFORM_SHARE = (12 + 38) / (107 + 127)  # the transform stage's share of a full run's time: 0.21
DESKTOP_KW = 0.15  # the benchmark machine's draw under load, assumed (a 65 W CPU in a desktop)
BENCHMARK_SOURCE = "an estimate from fMRIPrep's published benchmarks"
BENCHMARK_ASSUMPTIONS = {"transform_minutes_per_gb": TRANSFORM_MINUTES_PER_GB, "transform_share": TRANSFORM_SHARE,
                         "machine_kw": DESKTOP_KW, "source": "nipreps/fmriprep docs/benchmarks.rst (23.2.0a2)"}
SECONDS_PER_YEAR = 365.25 * 86400


def regeneration_cost(regenerable_bytes: int, recorded_kg: float, records: int, records_are_fmriprep: bool,
                      model: Assumptions) -> tuple[float, str]:
    """kgCO2e to regenerate ``regenerable_bytes`` once, and where the figure comes from: fMRIPrep's own
    CodeCarbon records (``records`` of them, ``recorded_kg`` in all) times the transform stage's share of a run;
    without them, the benchmarks' minutes per GB on a desktop, at the model's PUE and carbon intensity."""
    if records and records_are_fmriprep:
        return (recorded_kg * TRANSFORM_SHARE * (regenerable_bytes > 0),
                f"the CodeCarbon records ({records}) times the transform stage's share of a run, {TRANSFORM_SHARE:.2f}")
    kwh = regenerable_bytes / 1e9 * TRANSFORM_MINUTES_PER_GB / 60 * DESKTOP_KW * model.pue
    return kwh * model.carbon_intensity / 1000, BENCHMARK_SOURCE


def cache_verdict(status: str | None, rerun_kg: float | None, workdir_kg: float, stale_after: float) -> str | None:
    """For a subject whose run did not finish (``status``): is keeping its cache for ``stale_after`` seconds
    cheaper in carbon than re-running it?"""
    if status not in ("failed", "incomplete", "unknown") or workdir_kg <= 0 or rerun_kg is None:
        return None
    kept = workdir_kg * stale_after / SECONDS_PER_YEAR
    days = stale_after / 86400
    if kept < rerun_kg:
        return (f"keeping its cache for {days:g} days costs {kept:.3g} kgCO2e, less than one re-run "
                f"({rerun_kg:.3g} kgCO2e): keep it for the re-run")
    return (f"keeping its cache for {days:g} days costs {kept:.3g} kgCO2e, more than one re-run "
            f"({rerun_kg:.3g} kgCO2e)")
