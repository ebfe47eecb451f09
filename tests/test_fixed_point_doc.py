"""docs/fixed_point.md's hand-written example runs, prints what the page says it prints, keeps
weights that Lava's weight preparation leaves unchanged, and equals Lava's own LIF."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np

import nmcompile
from nmcompile.ir.quantized import QLIF, QDense

DOC = Path(__file__).resolve().parents[1] / "docs" / "fixed_point.md"
SECTION = "## 11. Writing a quantised graph by hand"


def example_blocks() -> tuple[str, str]:
    """The section's first ```python block and the ```text block after it."""
    text = DOC.read_text(encoding="utf-8")
    assert SECTION in text, f"{DOC.name} lost its section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    output = re.search(r"```python\n.*?```.*?```text\n(.*?)```", section, re.S)
    assert code and output, "the section needs a ```python block followed by a ```text block"
    return code.group(1), output.group(1)


def run_example() -> tuple[dict, str]:
    code, _ = example_blocks()
    namespace: dict = {"__name__": "fixed_point_doc_example"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"{DOC}:example", "exec"), namespace)
    return namespace, out.getvalue()


def test_example_prints_what_the_doc_shows() -> None:
    namespace, printed = run_example()
    _, shown = example_blocks()
    assert printed == shown
    r = namespace["r"]
    assert r.backend == "emulator"
    assert r.counters["unsafe_updates"]["lif"] == 0
    assert r.output().sum() >= 1, "the example should spike"


def test_example_uses_loihi_integers_that_survive_lavas_weight_preparation() -> None:
    from backends.lava import compat

    compat.import_lava()
    from lava.utils import weightutils

    namespace, _ = run_example()
    g = namespace["g"]
    dense = [g[n] for n in g.schedule() if isinstance(g[n], QDense)]
    assert dense and any(isinstance(g[n], QLIF) for n in g.schedule())
    for node in dense:
        w = node.weight
        mode = weightutils.determine_sign_mode(w)
        prepared = weightutils.truncate_weights(weightutils.clip_weights(w, mode, 8), mode, 8)
        assert np.array_equal(prepared, w), "Lava would change these weight mantissas"


def test_example_equals_lava() -> None:
    """The same integers as Lava processes: RingBuffer -> Dense -> LIF.

    Dense delays the input by one step, and Lava's LIF adds its bias on that first step too,
    so Lava's rows 0..T equal the emulator run on the input with one silent step in front
    (docs/fixed_point.md, section 7).
    """
    from backends.lava import compat

    compat.import_lava()
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.models import PyDenseModelBitAcc
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import PySendModelFixed, RingBuffer
    from lava.proc.lif.models import PyLifModelBitAcc
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.models import PyMonitorModel
    from lava.proc.monitor.process import Monitor

    from backends.lava.isolation import run_guarded

    namespace, _ = run_example()
    g, spikes, r = namespace["g"], namespace["spikes"], namespace["r"]
    fc, lif = g["fc"], g["lif"]
    T, n = spikes.shape[0], fc.weight.shape[0]
    data = np.zeros((spikes.shape[2], T + 1), dtype=int)  # one more step: Dense's latency
    data[:, :T] = spikes[:, 0, :].T
    source = RingBuffer(data=data)
    dense = Dense(weights=fc.weight, weight_exp=fc.weight_exp)
    neurons = LIF(shape=(n,), du=int(lif.du), dv=int(lif.dv), vth=int(lif.vth),
                  bias_mant=np.full(n, lif.bias_mant), bias_exp=np.full(n, lif.bias_exp))
    source.s_out.connect(dense.s_in)
    dense.a_out.connect(neurons.a_in)
    names = ("u", "v", "s_out")
    monitors = {}
    for name in names:
        monitors[name] = Monitor()
        monitors[name].probe(getattr(neurons, name), T + 1)
    cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map={
        RingBuffer: PySendModelFixed, Dense: PyDenseModelBitAcc, LIF: PyLifModelBitAcc,
        Monitor: PyMonitorModel})

    def read() -> dict[str, np.ndarray]:
        return {k: np.asarray(m.get_data()[neurons.name][k]).reshape(T + 1, n).astype(np.int64)
                for k, m in monitors.items()}

    got = run_guarded(neurons, T + 1, cfg, read=read, timeout_s=60)
    padded = np.concatenate([np.zeros_like(spikes[:1]), spikes])
    em = nmcompile.run(g, padded, record=True)
    assert np.array_equal(got["u"], em.states["lif"]["u"][:, 0])
    assert np.array_equal(got["v"], em.states["lif"]["v"][:, 0])
    assert np.array_equal(got["s_out"], em.output()[:, 0])
    # u never sees the bias, so Lava's row t + 1 is the page's step t; here the spikes too.
    assert np.array_equal(got["u"][1:], r.states["lif"]["u"][:, 0])
    assert np.array_equal(got["s_out"][1:], r.output()[:, 0])
