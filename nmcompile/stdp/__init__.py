"""STDP learning: adaptive-threshold LIF neurons, E/I lateral inhibition, event-based and
pair-based STDP, patches; trained networks become ordinary IR graphs with
`nmcompile.from_stdp`. See docs/stdp.md.

    net = STDPNetwork((8, 8), 100, rule=EventSTDP(), inhibition=Inhibition())
    train(net, x_train, epochs=3)
    assign_labels(net, responses(net, encode_data(net, x_train)), y_train)
    graph = nmcompile.from_stdp(net)          # Input -> Dense -> LIF <-> IF, readout
"""

from .inhibition import Inhibition, e_to_i, i_to_e
from .layers import AdaptiveLIF
from .network import MODES, STDPNetwork
from .patches import Patches, expand, patch_indices
from .rules import EventSTDP, PairSTDP
from .training import (
    assign_labels,
    class_scores,
    encode_data,
    predict,
    reconstruct,
    responses,
    train,
)

__all__ = [
    "MODES",
    "AdaptiveLIF",
    "EventSTDP",
    "Inhibition",
    "PairSTDP",
    "Patches",
    "STDPNetwork",
    "assign_labels",
    "class_scores",
    "e_to_i",
    "encode_data",
    "expand",
    "i_to_e",
    "patch_indices",
    "predict",
    "reconstruct",
    "responses",
    "train",
]
