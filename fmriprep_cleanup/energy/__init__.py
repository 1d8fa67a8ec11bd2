"""What storing data costs each year in energy and carbon, every assumption with its source."""

from __future__ import annotations

from ..basics.lazy import lazy_face

__getattr__, __dir__ = lazy_face(__name__, {
    "Assumptions": "model", "Footprint": "model", "assumptions": "model", "model_for": "model", "footprint": "model",
    "energy_report": "model", "equivalences": "model", "storage_profiles": "model", "carbon_intensities": "model",
    "energy_section": "model",
})
