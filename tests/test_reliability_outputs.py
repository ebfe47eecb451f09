"""Issue 12, defect 1: nmcompile replaces only what it wrote (docs/reliability.md).

Every case is a real folder or file made here, written through the CLI (in process) or the
API; each checks that the user's bytes are still there afterwards, not only the exit code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from targets import compile_only

import nmcompile
from nmcompile.cli import main
from nmcompile.demo import run_stages
from nmcompile.ir import Graph, Input, Output
from nmcompile.ir.quantized import QLIF, QDense
from nmcompile.outputs import MARKER, OutputError
from nmcompile.registry import registered


def _qgraph() -> Graph:
    g = Graph(dt=1e-3)
    g.add_node("x", Input((3,)))
    g.add_node("fc", QDense(np.array([[40, -20, 10], [5, 60, -30]])))
    g.add_node("h", QLIF(vth=50, du=4095, dv=200))
    g.add_node("o", Output())
    for a, b in (("x", "fc"), ("fc", "h"), ("h", "o")):
        g.add_edge(a, b)
    return g


def _float_graph(n: int) -> Graph:
    g = Graph(dt=1e-3)
    g.add_node("x", Input((n,)))
    g.add_node("h", nmcompile.ir.LIF(beta=0.9))
    g.add_node("o", Output())
    g.add_edge("x", "h")
    g.add_edge("h", "o")
    return g


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return nmcompile.save(_qgraph(), tmp_path / "q.nmc")


def _user_folder(path: Path) -> Path:
    path.mkdir()
    (path / "thesis.tex").write_text("years of work")
    return path


def _compile(model: Path, out: Path, *extra: str) -> int:
    return main(["compile", str(model), "--target", "verilog", "-o", str(out), *extra])


def test_compile_refuses_a_folder_it_did_not_write(model, tmp_path, capsys) -> None:
    out = _user_folder(tmp_path / "mine")
    assert _compile(model, out) == 1
    err = capsys.readouterr().err
    assert "did not write" in err and "--force" in err
    assert (out / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "q.nmc"]  # no .mine.old
    assert _compile(model, out, "--force") == 0
    assert (out / MARKER).exists() and not (out / "thesis.tex").exists()


def test_compile_replaces_its_own_artefact_and_an_empty_folder(model, tmp_path) -> None:
    out = tmp_path / "proj"
    out.mkdir()
    assert _compile(model, out) == 0  # empty: fine
    assert (out / MARKER).exists() and (out / "README.md").exists()
    (out / "README.md").write_text("stale")
    assert _compile(model, out) == 0  # ours: replaced
    assert (out / "README.md").read_text() != "stale"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj", "q.nmc"]
    assert oct(out.stat().st_mode & 0o777) == oct(0o777 & ~_umask())  # not mkdtemp's 0700


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_compile_never_replaces_the_folder_holding_its_input(tmp_path, capsys) -> None:
    demo = tmp_path / "demo"
    run_stages(SimpleNamespace(out_dir=demo, summary={}), [])  # a demo folder, marked
    model = nmcompile.save(_qgraph(), demo / "digits_q.nmc")
    for target in (demo, tmp_path):
        for extra in ((), ("--force",)):
            assert _compile(model, target, *extra) == 1
            assert "contains the input" in capsys.readouterr().err
    assert nmcompile.load(model) == _qgraph()
    assert _compile(model, model, "--force") == 1  # DIR is the input itself
    assert nmcompile.load(model) == _qgraph()


def test_compile_refuses_a_file_and_a_symlink(model, tmp_path, capsys) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    assert _compile(model, target, "--force") == 1
    assert "not a folder" in capsys.readouterr().err
    assert target.read_text() == "keep me"
    real = tmp_path / "real"
    assert _compile(model, real) == 0
    link = tmp_path / "link"
    link.symlink_to(real)
    for extra in ((), ("--force",)):
        assert _compile(model, link, *extra) == 1
        assert "symbolic link" in capsys.readouterr().err
    assert link.is_symlink() and (real / MARKER).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "notes.txt", "q.nmc", "real"]


def test_a_stale_old_folder_does_not_block_compiles(model, tmp_path) -> None:
    """Earlier versions renamed DIR to .DIR.old between two renames: an interrupt there made
    every later compile fail with Errno 39. That folder may be the user's: it is left alone."""
    out = tmp_path / "proj"
    assert _compile(model, out) == 0
    stale = _user_folder(tmp_path / ".proj.old")
    assert _compile(model, out) == 0
    assert (stale / "thesis.tex").read_text() == "years of work"


def test_a_killed_compile_leaves_nothing_the_next_one_keeps(model, tmp_path) -> None:
    """SIGKILL gives no chance to clean up: the next compile to the same DIR removes the
    killed writer's temporary folder (its pid is in the name), never a live writer's."""
    out = tmp_path / "proj"
    child = textwrap.dedent(f"""
        import time, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import nmcompile
        from nmcompile.registry import register_backend
        from targets import compile_only

        def slow(graph, out_dir):
            (out_dir / "half.txt").write_text("half")
            print("started", flush=True)
            time.sleep(60)

        register_backend("slow", compile_only("slow", slow))
        nmcompile.compile(nmcompile.load({str(model)!r}), {str(out)!r}, "slow")
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "started"
        leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".proj.")]
        assert len(leftovers) == 1 and (leftovers[0] / "half.txt").exists()
        live = tmp_path / f".proj.nmcompile-tmp-{os.getpid()}-live"  # a live writer's
        live.mkdir()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.stdout.close()
    assert leftovers[0].exists()  # SIGKILL: nothing ran
    assert _compile(model, out) == 0
    assert not leftovers[0].exists() and live.exists()
    live.rmdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj", "q.nmc"]


def test_api_compile_follows_the_same_rules(tmp_path) -> None:
    with registered("test-noop", compile_only("test-noop", lambda graph, out: None)):
        out = _user_folder(tmp_path / "mine")
        with pytest.raises(OutputError, match="did not write"):
            nmcompile.compile(_qgraph(), out, "test-noop")
        assert (out / "thesis.tex").exists()
        nmcompile.compile(_qgraph(), out, "test-noop", force=True)
        assert sorted(p.name for p in out.iterdir()) == [MARKER]


# ------------------------------------------------------------------------ file outputs ----


def test_quantize_replaces_only_an_nmc_file(tmp_path, capsys) -> None:
    g = _float_graph(3)
    model = nmcompile.save(g, tmp_path / "f.nmc")
    out = tmp_path / "q.nmc"
    out.write_text("my data")
    assert main(["quantize", str(model), "-o", str(out)]) == 1
    assert "not a file that nmcompile wrote" in capsys.readouterr().err
    assert out.read_text() == "my data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.nmc", "q.nmc"]
    assert main(["quantize", str(model), "-o", str(out), "--force"]) == 0
    assert nmcompile.is_quantized(nmcompile.load(out))
    assert main(["quantize", str(model), "-o", str(out)]) == 0  # an .nmc: replaced
    link = tmp_path / "link.nmc"
    link.symlink_to(out)
    assert main(["quantize", str(model), "-o", str(link), "--force"]) == 1
    assert link.is_symlink()


def test_save_api_refuses_a_foreign_file(tmp_path) -> None:
    path = tmp_path / "net.nmc"
    path.write_bytes(b"PK\x03\x04 not ours")
    with pytest.raises(OutputError):
        nmcompile.save(_qgraph(), path)
    assert path.read_bytes() == b"PK\x03\x04 not ours"
    nmcompile.save(_qgraph(), path, force=True)
    nmcompile.save(_qgraph(), path)  # now ours
    assert nmcompile.load(path) == _qgraph()
    folder = tmp_path / "folder.nmc"
    folder.mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        nmcompile.save(_qgraph(), folder, force=True)


def test_run_output_replaces_only_its_own_npz(model, tmp_path, capsys) -> None:
    spikes = tmp_path / "x.npy"
    np.save(spikes, np.ones((4, 1, 3), np.uint8))
    out = tmp_path / "out.npz"
    np.savez(out, results=np.arange(3))  # somebody's npz
    argv = ["run", str(model), "--input", str(spikes), "-o", str(out)]
    assert main(argv) == 1
    assert "not a file that nmcompile wrote" in capsys.readouterr().err
    with np.load(out) as data:
        assert list(data.files) == ["results"]
    assert main([*argv, "--force"]) == 0
    assert main(argv) == 0  # ours now
    with np.load(out) as data:
        assert "output/o" in data.files and "nmcompile_run" in data.files
    named = tmp_path / "plain"  # written as given: numpy would have appended .npz
    assert main(["run", str(model), "--input", str(spikes), "-o", str(named)]) == 0
    assert named.exists() and not (tmp_path / "plain.npz").exists()


# ------------------------------------------------------------------------- the demo -------


def test_demo_refuses_a_foreign_folder_before_training(tmp_path, capsys) -> None:
    out = _user_folder(tmp_path / "mine")
    start = time.perf_counter()
    assert main(["demo", "--out", str(out)]) == 1
    assert main(["demo", "--stdp", "--out", str(out)]) == 1
    assert time.perf_counter() - start < 5  # refused before any training
    assert "did not write" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]


def test_demo_folder_before_the_marker_is_recognised_and_replaced(tmp_path) -> None:
    old = tmp_path / "nmcompile-demo"
    old.mkdir()
    for name in ("digits.nmc", "digits_q.nmc", "summary.json", "digits.png"):
        (old / name).write_text("from an older nmcompile")
    (old / "verilog").mkdir()  # an older compile: no marker inside either
    run_stages(SimpleNamespace(out_dir=old, summary={}), [])
    assert sorted(p.name for p in old.iterdir()) == [MARKER]
    (old / "summary.json").write_text("{}")
    run_stages(SimpleNamespace(out_dir=old, summary={}), [])  # marked: written into
    assert (old / "summary.json").exists()
    partial = _user_folder(tmp_path / "partial")
    (partial / "summary.json").write_text("{}")  # one of the files is not enough
    with pytest.raises(OutputError):
        run_stages(SimpleNamespace(out_dir=partial, summary={}), [])


def test_figures_and_nir_files_replace_only_their_own(model, tmp_path, capsys) -> None:
    png = tmp_path / "ops.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n a photo")
    argv = ["estimate", str(model), "--rates", "0.1", "--steps", "5", "--plot", str(png)]
    assert main(argv) == 1
    assert "not a file that nmcompile wrote" in capsys.readouterr().err
    assert png.read_bytes() == b"\x89PNG\r\n\x1a\n a photo"
    assert main([*argv, "--force"]) == 0
    assert main(argv) == 0  # our figure now: replaced
    g = _float_graph(2)
    nir_file = tmp_path / "net.nir"
    nir_file.write_text("not a NIR file")
    with pytest.raises(OutputError):
        nmcompile.to_nir(g, nir_file)
    assert nir_file.read_text() == "not a NIR file"
    nmcompile.to_nir(g, nir_file, force=True)
    nmcompile.to_nir(g, nir_file)  # ours: replaced
    assert nmcompile.from_nir(nir_file, dt=1e-3) == g
