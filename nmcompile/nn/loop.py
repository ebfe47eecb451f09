"""`TimeLoop`: run a per-step module over time-major input."""

from __future__ import annotations

from torch import Tensor, nn


def reset_states(module: nn.Module) -> None:
    """Reset every stateful layer inside `module` to step 0."""
    for m in module.modules():
        if hasattr(m, "reset_state"):
            m.reset_state()


class TimeLoop(nn.Module):
    """Maps inputs (T, batch, *features) to outputs (T, batch, *out) by calling the per-step
    module `step` once per step, after resetting its state. Several inputs or outputs are
    passed as tuples. `nmcompile.from_torch` traces `step`, one step of the network.
    """

    def __init__(self, step: nn.Module) -> None:
        super().__init__()
        self.step = step

    def forward(self, *inputs: Tensor) -> Tensor | tuple[Tensor, ...]:
        import torch

        reset_states(self.step)
        outs = [self.step(*(x[t] for x in inputs)) for t in range(inputs[0].shape[0])]
        if isinstance(outs[0], tuple):
            return tuple(torch.stack(o) for o in zip(*outs, strict=True))
        return torch.stack(outs)


def sequential(*layers: nn.Module) -> TimeLoop:
    """`TimeLoop(nn.Sequential(*layers))`: the common case in one call."""
    return TimeLoop(nn.Sequential(*layers))
