"""Real Lava on Python 3.11: the import shim, bit-exact LIF traces, and guarded runs.

No mocks: every test here runs lava-nc 0.10.0's own fixed-point process models in forked
processes. The expected traces are computed by a few lines of plain integer Python written from
the rules in LAVA_NOTES.md, independent of Lava and of numpy.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from multiprocessing import resource_tracker
from pathlib import Path

import numpy as np
import pytest
from hygiene import children

from backends.lava import compat  # installs the shim before anything imports Lava's core

compat.import_lava()

from lava.magma.core.decorator import implements, requires, tag  # noqa: E402
from lava.magma.core.model.py.model import PyLoihiProcessModel  # noqa: E402
from lava.magma.core.model.py.ports import PyInPort, PyOutPort  # noqa: E402
from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.magma.core.process.ports.ports import InPort, OutPort  # noqa: E402
from lava.magma.core.process.process import AbstractProcess  # noqa: E402
from lava.magma.core.process.variable import Var  # noqa: E402
from lava.magma.core.resources import CPU  # noqa: E402
from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: E402
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: E402
from lava.proc.dense.process import Dense  # noqa: E402
from lava.proc.io.source import RingBuffer  # noqa: E402
from lava.proc.lif.process import LIF  # noqa: E402
from lava.proc.monitor.process import Monitor  # noqa: E402

from backends.lava.isolation import LavaRunError, run_guarded  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FIXED_PT = "fixed_pt"


# --------------------------------------------------------------------------------------------
# The reference: Loihi's LIF fixed-point rules, as plain integers (LAVA_NOTES.md, "LIF").
# Values in these tests stay far inside 24 bits, so u's wrap and v's clip never act.
# --------------------------------------------------------------------------------------------


def decay(x: int, d: int) -> int:
    """x * (4096 - d) >> 12, rounded toward zero (not floor) for negative x."""
    p = x * (4096 - d)
    return p >> 12 if p >= 0 else -((-p) >> 12)


def floor_decay(x: int, d: int) -> int:
    """The wrong rounding (floor), to show the traces can tell the two apart."""
    return x * (4096 - d) >> 12


def lif_reference(
    steps: int,
    a_in: list[int],
    bias: int,
    du: int,
    dv: int,
    vth: int,
    dec=decay,
    u_offset: int = 1,
) -> tuple[list[int], list[int], list[int]]:
    """One neuron's u, v (after reset) and spikes on steps 1..steps."""
    u = v = 0
    us, vs, ss = [], [], []
    for t in range(steps):
        u = dec(u, du + u_offset) + (a_in[t] << 6)  # current decay has a built-in +1
        v = dec(v, dv) + u + bias  # no offset on the voltage decay
        spike = v > (vth << 6)  # strictly greater
        if spike:
            v = 0  # reset to zero; u is not reset
        us.append(u)
        vs.append(v)
        ss.append(int(spike))
        assert abs(u) < 2**22 and abs(v) < 2**22, "keep the test inside the wrap/clip range"
    return us, vs, ss


def monitored(target_proc: AbstractProcess, names: list[str], steps: int) -> list[Monitor]:
    monitors = []
    for name in names:
        mon = Monitor()
        mon.probe(getattr(target_proc, name), steps)
        monitors.append(mon)
    return monitors


def read_monitors(proc: AbstractProcess, names: list[str], monitors: list[Monitor]):
    """Per-step traces, shape (steps, n), as Python ints."""
    out = {}
    for name, mon in zip(names, monitors, strict=True):
        data = np.asarray(mon.get_data()[proc.name][name])
        out[name] = data.reshape(data.shape[0], -1).astype(np.int64).tolist()
    return out


# --------------------------------------------------------------------------------------------
# (a) Lava's bit-accurate LIF equals the hand-derived trace, every step, every neuron.
# --------------------------------------------------------------------------------------------


def test_bias_driven_lif_matches_reference_exactly():
    steps = 20
    bias_mant = [100, 37, -50, 11]
    bias_exp = [0, 1, 0, 2]
    du, dv, vth = 0, 300, 3
    lif = LIF(
        shape=(4,),
        bias_mant=np.array(bias_mant),
        bias_exp=np.array(bias_exp),
        du=du,
        dv=dv,
        vth=vth,
    )
    names = ["u", "v", "s_out"]
    monitors = monitored(lif, names, steps)

    got = run_guarded(
        lif,
        steps,
        Loihi2SimCfg(select_tag=FIXED_PT),
        read=lambda: read_monitors(lif, names, monitors),
        timeout_s=30,
    )

    for i in range(4):
        bias = bias_mant[i] << bias_exp[i]
        us, vs, ss = lif_reference(steps, [0] * steps, bias, du, dv, vth)
        assert [row[i] for row in got["u"]] == us, f"u of neuron {i}"
        assert [row[i] for row in got["v"]] == vs, f"v of neuron {i}"
        assert [row[i] for row in got["s_out"]] == ss, f"spikes of neuron {i}"
    spikes = [sum(row[i] for row in got["s_out"]) for i in range(4)]
    # The case is interesting only if it spikes a few times and has a silent neuron.
    assert spikes[0] >= 3 and spikes[1] >= 3 and spikes[3] >= 3 and spikes[2] == 0
    # Neuron 0 sits exactly at threshold (v = 192 = 3 << 6) on step 2 and must not spike.
    assert got["v"][1][0] == 192 and got["s_out"][1][0] == 0


def test_input_driven_lif_with_current_and_voltage_decay_matches_reference():
    steps = 20
    rng = np.random.default_rng(7)
    spikes_in = (rng.random((3, steps)) < 0.4).astype(int)  # (inputs, time)
    # Mixed signs, so at 8 bits Dense drops the lowest bit: even weights survive unchanged.
    weights = [[120, -60, 80], [50, 100, -128]]
    du, dv, vth = 1000, 200, 300
    bias_mant = [3, -2]

    source = RingBuffer(data=spikes_in)
    dense = Dense(weights=np.array(weights))
    lif = LIF(shape=(2,), bias_mant=np.array(bias_mant), du=du, dv=dv, vth=vth)
    source.s_out.connect(dense.s_in)
    dense.a_out.connect(lif.a_in)
    names = ["u", "v", "s_out"]
    monitors = monitored(lif, names, steps)

    got = run_guarded(
        lif,
        steps,
        Loihi2SimCfg(select_tag=FIXED_PT),
        read=lambda: read_monitors(lif, names, monitors),
        timeout_s=30,
    )

    # RingBuffer sends column t-1 on step t (1-based); Dense delivers it one step later.
    for i in range(2):
        a_in = [0] + [
            sum(weights[i][j] * int(spikes_in[j][t]) for j in range(3)) for t in range(steps - 1)
        ]
        us, vs, ss = lif_reference(steps, a_in, bias_mant[i], du, dv, vth)
        assert [row[i] for row in got["u"]] == us, f"u of neuron {i}"
        assert [row[i] for row in got["v"]] == vs, f"v of neuron {i}"
        assert [row[i] for row in got["s_out"]] == ss, f"spikes of neuron {i}"
        assert 2 <= sum(ss) < steps // 2, f"neuron {i} should spike a few times"
        # u and v go negative, and the trace tells the rules from near misses: floor
        # rounding, or a current decay without its +1.
        assert min(us) < 0 and min(vs) < 0
        floor = lif_reference(steps, a_in, bias_mant[i], du, dv, vth, dec=floor_decay)
        assert floor != (us, vs, ss)
        no_offset = lif_reference(steps, a_in, bias_mant[i], du, dv, vth, u_offset=0)
        assert no_offset != (us, vs, ss)


# --------------------------------------------------------------------------------------------
# (b) The shim: needed on 3.11, gated by version, patches the source not the .pyc.
# --------------------------------------------------------------------------------------------


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_lava_fails_to_import_without_the_shim_and_works_with_it():
    plain = _python("import lava.magma.compiler.var_model")
    assert plain.returncode != 0
    assert "mutable default" in plain.stderr and "ByteEncoder" in plain.stderr

    shimmed = _python(
        """
        import multiprocessing
        import backends.lava  # installs the shim
        import lava.magma.compiler.var_model as vm
        from lava.magma.core.process.process import AbstractProcess
        from backends.lava.compat import _PatchedSourceLoader
        assert isinstance(vm.__spec__.loader, _PatchedSourceLoader)
        assert vm.ByteEncoder.__dataclass_params__.frozen
        hash(vm.CoreEncoder().x)
        # Lava forces the 'fork' start method, so its workers inherit the patched module.
        assert multiprocessing.get_start_method() == "fork"
        print("ok")
        """
    )
    assert shimmed.returncode == 0, shimmed.stderr
    assert shimmed.stdout.strip() == "ok"


def test_lava_imports_after_the_default_start_method_was_fixed():
    # numba fixes the start method (to the default 'fork') when the emulator's parallel kernels
    # start their threads; Lava then sets 'fork' again, which multiprocessing refuses unless
    # the backend un-fixes it first. A different method chosen by the user is refused by name.
    result = _python(
        """
        import multiprocessing
        assert multiprocessing.get_start_method() == "fork"  # fixes the start method
        from backends.lava import compat
        compat.import_lava()
        assert multiprocessing.get_start_method() == "fork"
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    spawn = _python(
        """
        import multiprocessing
        multiprocessing.set_start_method("spawn")
        from backends.lava import compat
        try:
            compat.import_lava()
        except compat.LavaUnavailable as exc:
            print("LavaUnavailable:", exc)
        """
    )
    assert spawn.returncode == 0, spawn.stderr
    assert "LavaUnavailable:" in spawn.stdout and "'spawn'" in spawn.stdout


def test_shim_gate_and_loud_failure():
    assert compat.is_needed((3, 11), "0.10.0")
    assert compat.is_needed((3, 12), "0.10.1")
    assert not compat.is_needed((3, 10), "0.10.0")
    assert not compat.is_needed((3, 11), "0.9.1")
    assert not compat.is_needed((3, 11), "0.11.0")

    source = "@dataclass\nclass ByteEncoder:\n    base: int = 0\n"
    assert compat.patch_source(source).startswith("@dataclass(frozen=True)\nclass ByteEncoder")
    frozen = "@dataclass(frozen=True)\nclass ByteEncoder:\n"
    assert compat.patch_source(frozen) == frozen
    with pytest.raises(compat.LavaUnavailable, match="ByteEncoder"):
        compat.patch_source("class SomethingElse:\n    pass\n")

    before = list(sys.meta_path)
    compat.install()
    compat.install()
    assert sys.meta_path == before  # idempotent (and var_model is already imported here)


# --------------------------------------------------------------------------------------------
# (c) A process model that raises or hangs: a clear error, in time, and nothing left behind.
# --------------------------------------------------------------------------------------------


class Faulty(AbstractProcess):
    """Receives, then sends one spike per step; raises (mode 1) or hangs (mode 2) from step
    `at` on. Either port may be left unconnected."""

    def __init__(self, shape: tuple[int, ...] = (1,), at: int = 3, mode: int = 1) -> None:
        super().__init__()
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.at = Var(shape=(1,), init=at)
        self.mode = Var(shape=(1,), init=mode)


@implements(proc=Faulty, protocol=LoihiProtocol)
@requires(CPU)
@tag(FIXED_PT)
class PyFaulty(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    at: np.ndarray = LavaPyType(np.ndarray, np.int32)
    mode: np.ndarray = LavaPyType(np.ndarray, np.int32)

    def run_spk(self) -> None:
        self.a_in.recv()
        if self.time_step >= self.at[0]:
            if self.mode[0] == 1:
                raise ValueError(f"deliberate failure at step {self.time_step}")
            time.sleep(3600)
        self.s_out.send(np.ones(self.s_out.shape, dtype=np.int32))


def _shm() -> set[str]:
    return set(os.listdir("/dev/shm"))


def _faulty_network(mode: int) -> tuple[LIF, Loihi2SimCfg]:
    faulty = Faulty(at=3, mode=mode)
    dense = Dense(weights=np.array([[2], [2]]))
    lif = LIF(shape=(2,), vth=10)
    faulty.s_out.connect(dense.s_in)
    dense.a_out.connect(lif.a_in)
    # Keyed by the instance, so Lava does not import every module next to this test file
    # while searching for PyFaulty.
    return lif, Loihi2SimCfg(select_tag=FIXED_PT, exception_proc_model_map={faulty: PyFaulty})


@pytest.fixture
def clean_slate():
    """Snapshot children and /dev/shm; afterwards require both to be exactly as before."""
    resource_tracker.ensure_running()  # Python's shared tracker is not Lava's to clean up
    before, shm = children(with_state=True), _shm()
    yield
    assert children(with_state=True) == before, "a child process of the test process survived"
    assert _shm() == shm, "a shared-memory segment survived"


@pytest.mark.parametrize("downstream", [True, False], ids=["feeding-dense", "at-the-end"])
def test_model_that_raises_gives_clear_error_and_leaves_nothing(clean_slate, downstream):
    if downstream:
        # The failing model never sends step 3's spikes: Dense and LIF wait for them forever,
        # and an unguarded blocking run() never returns.
        top, cfg = _faulty_network(mode=1)
    else:
        # The failing model is a sink, so nothing waits on it: an unguarded blocking run()
        # raises only "1 Exception(s) occurred", its runtime service has exited, and a later
        # stop() blocks forever, leaving the shared-memory server and its segments behind.
        source = RingBuffer(data=np.ones((1, 5), dtype=int))
        dense = Dense(weights=np.array([[2]]))
        faulty = Faulty(at=3, mode=1)
        source.s_out.connect(dense.s_in)
        dense.a_out.connect(faulty.a_in)
        top = faulty
        cfg = Loihi2SimCfg(select_tag=FIXED_PT, exception_proc_model_map={faulty: PyFaulty})
    timeout_s = 20.0
    t0 = time.monotonic()
    with pytest.raises(LavaRunError) as info:
        run_guarded(
            top, 10, cfg, read=lambda: pytest.fail("read after a failure"), timeout_s=timeout_s
        )
    elapsed = time.monotonic() - t0
    message = str(info.value)
    assert "Faulty" in message and "PyFaulty" in message
    assert "ValueError: deliberate failure at step 3" in message
    assert info.value.failures and "Traceback" in info.value.failures[0][1]
    assert elapsed < 5.0, f"failure noticed after {elapsed:.1f} s, not at once"


def test_model_that_hangs_times_out_and_leaves_nothing(clean_slate):
    top, cfg = _faulty_network(mode=2)
    t0 = time.monotonic()
    with pytest.raises(LavaRunError, match=r"did not finish within 1\.5 s"):
        run_guarded(top, 10, cfg, timeout_s=1.5)
    elapsed = time.monotonic() - t0
    assert 1.5 <= elapsed < 10.0


class ShimProbe(AbstractProcess):
    """Reports, from inside its Lava worker, its pid and whether it sees the patched module."""

    def __init__(self) -> None:
        super().__init__()
        self.pid = Var(shape=(1,), init=0)
        self.patched = Var(shape=(1,), init=0)


@implements(proc=ShimProbe, protocol=LoihiProtocol)
@requires(CPU)
@tag(FIXED_PT)
class PyShimProbe(PyLoihiProcessModel):
    pid: np.ndarray = LavaPyType(np.ndarray, np.int32)
    patched: np.ndarray = LavaPyType(np.ndarray, np.int32)

    def run_spk(self) -> None:
        vm = sys.modules.get(compat.PATCHED_MODULE)
        loader = type(getattr(getattr(vm, "__spec__", None), "loader", None)).__name__
        frozen = vm is not None and vm.ByteEncoder.__dataclass_params__.frozen
        self.pid[0] = os.getpid()
        self.patched[0] = int(loader == "_PatchedSourceLoader" and frozen)


def test_workers_inherit_the_shim_and_a_good_run_leaves_nothing(clean_slate):
    probe = ShimProbe()
    cfg = Loihi2SimCfg(select_tag=FIXED_PT, exception_proc_model_map={probe: PyShimProbe})
    pid, patched = run_guarded(
        probe, 2, cfg, read=lambda: (int(probe.pid.get()[0]), int(probe.patched.get()[0]))
    )
    assert pid not in (0, os.getpid()), "the model should run in a forked worker"
    assert patched == 1, "the worker should see the shim's patched var_model"
