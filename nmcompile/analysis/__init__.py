"""Synaptic-operation counts and energy estimates (see docs/estimation.md).

    est = nmcompile.estimate(graph, spikes, device="loihi,truenorth")
    print(est.table()); est.to_json(); est.plot("estimate.png")

`counts` counts a run exactly, `analytic` expects the counts from firing rates alone,
`energy` reads the device models (TOML files in `devices/`, each number with its source).
"""

from .counts import Counts, LayerCounts, from_result, from_spikes, static_counts
from .energy import Device, available, load_device, load_devices
from .estimation import estimate
from .rates import analytic
from .report import Estimate

__all__ = [
    "Counts",
    "Device",
    "Estimate",
    "LayerCounts",
    "analytic",
    "available",
    "estimate",
    "from_result",
    "from_spikes",
    "load_device",
    "load_devices",
    "static_counts",
]
