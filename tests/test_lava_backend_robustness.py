"""The Lava backend fails cleanly: a clear error within the timeout, and nothing left behind
(no process, no shared-memory segment), whether a Lava model raises, a run overruns its
deadline, or the worker itself never answers. Lava runs in a fresh interpreter without
PyTorch, and the lowered processes can be embedded in another Lava program."""

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
from random_graphs import dense_graph, spikes

import nmcompile
from backends.lava import api
from backends.lava import isolation as session
from backends.lava.isolation import LavaRunError

REPO = Path(__file__).resolve().parents[1]


def _running(marker: str) -> list[int]:
    """Pids whose command line names `marker` (the worker's scratch folder: Lava's forked
    children inherit the worker's command line)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def _mapped() -> set[str]:
    """Every /dev/shm entry some live process has mapped."""
    return {Path(p).name for p in session._mapped_shm(
        [int(e) for e in os.listdir("/proc") if e.isdigit()])}


@pytest.fixture
def clean_slate():
    """Snapshot children and /dev/shm; afterwards require the same children, no process of
    the last Lava worker alive, and no new /dev/shm entry that no live process maps (other
    programs on this machine, Lava test suites included, may be creating and using segments
    meanwhile: theirs are mapped, a leaked one is not)."""
    resource_tracker.ensure_running()  # Python's shared tracker is not the backend's to clean
    before, shm = children(), set(os.listdir("/dev/shm"))
    yield
    assert session.last_scratch is not None
    assert _running(session.last_scratch) == [], "a Lava worker process survived"
    assert children() == before, "a child process of the test process survived"
    leaked = {n.removesuffix(" (deleted)") for n in set(os.listdir("/dev/shm")) - shm} - _mapped()
    assert not leaked, f"shared memory survived: {sorted(leaked)}"
    assert not Path(session.last_scratch).exists(), "the scratch folder survived"


def test_a_lava_model_that_raises_gives_a_clear_error_and_leaves_nothing(clean_slate) -> None:
    # Lava's own DelayDense model refuses delays over 63 on its first step (Loihi 2 has 6
    # bits); the lowering never asks for one, so ask for it by hand.
    x = spikes(10, 2, 8)
    plan, inputs, T, _, _ = api._prepare(dense_graph(), x, None)
    spec = plan.proc("fc2")
    spec.kind, spec.params["delays"] = "DelayDense", 70
    job = api._job(plan, inputs, 0, 2, T)
    t0 = time.monotonic()
    with pytest.raises(LavaRunError) as info:
        session.run_jobs([job], timeout_s=60)
    elapsed = time.monotonic() - t0
    message = str(info.value)
    assert "process 'fc2' (DelayDense, model PyDelayDenseModelBitAcc) raised" in message
    who, text = info.value.failures[0]  # the traceback Lava's process sent back
    assert "DelayDense" in who and "Traceback" in text
    assert "ValueError: DelayDense Process 'delays' expects values between 0 and 63" in text
    assert elapsed < 20, f"the failure took {elapsed:.1f} s to surface"


def test_a_run_past_its_deadline_is_stopped_in_time_and_leaves_nothing(clean_slate) -> None:
    g = dense_graph(64, 256, 32)
    x = spikes(20000, 1, 64)  # minutes of Lava stepping
    timeout = 6.0
    t0 = time.monotonic()
    with pytest.raises(LavaRunError, match=r"did not finish within"):
        nmcompile.run(g, x, backend="lava", timeout_s=timeout)
    elapsed = time.monotonic() - t0
    assert timeout <= elapsed < timeout + 10, f"stopped after {elapsed:.1f} s"


def test_a_worker_that_never_answers_is_killed(clean_slate, monkeypatch) -> None:
    # A deadline too short for the worker even to start Lava: the parent's own backstop
    # (not the worker's guarded run) must kill it and its whole process group.
    monkeypatch.setattr(session, "GRACE_S", 0.5)
    x = spikes(10, 1, 8)
    plan, inputs, T, _, _ = api._prepare(dense_graph(), x, None)
    with pytest.raises(LavaRunError, match=r"worker did not finish within 0\.2 s"):
        session.run_jobs([api._job(plan, inputs, 0, 1, T)], timeout_s=0.2)


def test_the_worker_imports_no_torch_and_a_good_run_leaves_nothing(clean_slate) -> None:
    import torch  # the caller has PyTorch loaded and its threads started

    torch.ones(64, 64) @ torch.ones(64, 64)
    x = spikes(12, 3, 8)
    plan, inputs, T, _, chunks = api._prepare(dense_graph(), x, None)
    (result,) = session.run_jobs([api._job(plan, inputs, *chunks[0], T)], timeout_s=120)
    assert not bool(result["torch_imported"])
    lava = nmcompile.run(dense_graph(), x, backend="lava", record=True)
    emulator = nmcompile.run(dense_graph(), x, record=True)
    for layer in emulator.spikes:
        assert np.array_equal(lava.spikes[layer], emulator.spikes[layer])


def test_bad_inputs_are_refused_before_any_work() -> None:
    g = dense_graph()
    with pytest.raises(nmcompile.ShapeError, match=r"expected an array \(T, batch, 8\)"):
        nmcompile.run(g, np.zeros((5, 8)), backend="lava")
    with pytest.raises(nmcompile.NmcompileError, match="integer spikes"):
        nmcompile.run(g, np.full((5, 1, 8), 0.5), backend="lava")


def test_build_returns_live_processes_for_embedding(tmp_path: Path) -> None:
    # In a fresh interpreter: Lava forks, so it is built where PyTorch has started nothing.
    script = tmp_path / "embed.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
        import numpy as np
        import nmcompile
        from backends import lava as lava_backend
        from backends.lava.isolation import run_guarded
        from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel
        from lava.proc.io.source import PySendModelFixed, RingBuffer
        from random_graphs import dense_graph, spikes

        g, x = dense_graph(), spikes(12, 1, 8)
        net = lava_backend.build(g)
        layer = net.plan.layer("o")
        steps = 12 + layer.depth
        data = np.zeros((8, steps), int)
        data[:, :12] = x[:, 0].T  # the input is at depth 0 and in IR order
        ring = RingBuffer(data=data)
        net.connect_input("x", ring.s_out)
        probe = Extractor(shape=(layer.n,), buffer_size=steps + 1)
        net.output_ports["o"].connect(probe.in_port)
        net.model_map[ring] = PySendModelFixed
        net.model_map[probe] = PyLoihiExtractorModel
        got = run_guarded(net.top, steps, net.run_cfg(),
                          read=lambda: np.stack([probe.receive() for _ in range(steps)]))
        got = got[layer.depth:layer.depth + 12][:, np.argsort(layer.perm)]
        want = nmcompile.run(g, x, record=True).spikes["o"][:, 0]
        assert np.array_equal(got, want), (got.sum(), want.sum())
        print("ok", sorted(net.processes), int(want.sum()))
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         cwd=REPO, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("ok ['fc1', 'fc2', 'h', 'o']")
