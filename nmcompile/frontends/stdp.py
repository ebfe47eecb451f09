"""STDP frontend: a trained `nmcompile.stdp.STDPNetwork` as an ordinary float IR graph.

    input (n_inputs,) -> w_in (Dense, learned W) -> exc (LIF or ALIF, per-neuron thresholds)
    exc -[delay_ei]-> w_ei (Dense, w_ei * identity) -> inh (IF)
    inh -[delay_ie]-> w_ie (Dense, -w_ie * hollow) -> exc
    exc -> w_out (Dense, 1/n_c per class) -> classes (LI, beta = 1) -> output    (labelled)
    exc -> output                                                               (unlabelled)

`frozen_thresholds=True` (the default, as Diehl and Cook test): the excitatory layer is a `LIF`
whose per-neuron threshold is the base threshold plus the learned theta; the adaptation stops
at the end of training. `False`: an `ALIF` with that threshold, `rho` and `adapt_step`, so the
threshold keeps rising with each spike within a sample (and relaxing back), as it did during
training. Either way the float interpreter on the graph reproduces `network.run(spikes,
"frozen" | "adaptive")` spike for spike: the network simulates the very same equations, in
float64, in the IR's order.

The readout (when the network's neurons have been assigned classes) integrates each class's
mean spike count: its voltage at the last step, argmax over classes, is the prediction of
`nmcompile.stdp.predict`; `nmcompile verify --samples N` then reports accuracies.
"""

from __future__ import annotations

from typing import Any

from ..errors import NmcompileError
from ..ir import ALIF, IF, LI, LIF, Dense, Graph, Input, Output

__all__ = ["from_stdp"]


def from_stdp(network: Any, frozen_thresholds: bool = True, *, readout: bool | None = None,
              dt: float | None = 1e-3, metadata: dict[str, Any] | None = None) -> Graph:
    """The float IR of a trained STDP network (see the module docstring).

    `readout`: add the class readout (default: when the network has assignments; the graph's
    one output is then the class scores, the excitatory spikes stay a recorded layer).
    `metadata` is merged into the graph's (name the data set and encoding there, so tools can
    regenerate test inputs)."""
    from ..stdp.network import STDPNetwork  # PyTorch: imported only when called

    if not isinstance(network, STDPNetwork):
        raise NmcompileError(f"from_stdp expects an nmcompile.stdp.STDPNetwork, got "
                             f"{type(network).__name__}")
    if readout is None:
        readout = network.assignments is not None
    cell = network.neuron
    meta = {"source": "nmcompile.stdp", "stdp": network.to_dict(),
            "thresholds": "frozen" if frozen_thresholds else "adaptive",
            "readout": "class scores (LI voltage, argmax)" if readout else "excitatory spikes"}
    g = Graph(dt=dt, metadata=meta | dict(metadata or {}))
    g.add_node("input", Input((network.n_inputs,)))
    g.add_node("w_in", Dense(network.input_weights().numpy()))
    threshold = network.thresholds()
    if frozen_thresholds:
        exc = LIF(beta=float(cell.beta), threshold=threshold, reset=cell.reset)
    else:
        exc = ALIF(beta=float(cell.beta), threshold=threshold, rho=float(cell.rho),
                   adapt_step=float(cell.adapt_step), reset=cell.reset)
    g.add_node("exc", exc)
    g.add_edge("input", "w_in")
    g.add_edge("w_in", "exc")
    inh = network.inhibition
    if inh is not None:
        w_ei, w_ie = network.inhibition_weights()
        g.add_node("w_ei", Dense(w_ei))
        g.add_node("inh", IF(threshold=float(inh.threshold)))
        g.add_node("w_ie", Dense(w_ie))
        g.add_edge("exc", "w_ei", inh.delay_ei)
        g.add_edge("w_ei", "inh")
        g.add_edge("inh", "w_ie", inh.delay_ie)
        g.add_edge("w_ie", "exc")
    g.add_node("output", Output())
    if readout:
        g.add_node("w_out", Dense(network.readout_weights()))
        g.add_node("classes", LI(beta=1.0))
        g.add_edge("exc", "w_out")
        g.add_edge("w_out", "classes")
        g.add_edge("classes", "output")
    else:
        g.add_edge("exc", "output")
    g.validate()
    return g
