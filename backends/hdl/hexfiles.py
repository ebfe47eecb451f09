"""The program's memory images as `$readmemh` files, and the build's `nm_params.vh`.

Every file holds one memory, one word per line in hexadecimal (two's complement for signed
fields), padded with zeros to the depth the build was made with; the widths and depths are
the Verilog parameters in `nm_params.vh`, so the two always agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from .program import KIND, Program, synapse_words

#: The op list's kinds as the core decodes them (0: none, padding).
OP_KIND = {"proj": 1, "layer": 2, "send": 3}
#: Words formatted per piece of a memory image: a 4M-word synapse memory is written in bounded
#: pieces, never held as one string.
CHUNK = 1 << 16


def hex_chunks(values: np.ndarray | Iterable[np.ndarray], width: int, depth: int
               ) -> Iterator[str]:
    """`values` (an array, or arrays one after another: a memory made block by block) as
    `depth` lines of `width`-bit two's-complement hex, zero padded, in pieces of at most
    `CHUNK` lines."""
    blocks = [values] if isinstance(values, np.ndarray) else values
    lo, hi = -(1 << (width - 1)), (1 << width) - 1
    digits = max(1, (width + 3) // 4)
    mask = (1 << width) - 1
    count = 0
    for block in blocks:
        block = np.asarray(block).ravel()
        for start in range(0, len(block), CHUNK):  # Python ints: masks of any width, no wrap
            piece = block[start:start + CHUNK]
            count += len(piece)
            if count > depth:
                raise ValueError(f"more than {depth} words do not fit a memory of depth {depth}")
            if int(piece.min()) < lo or int(piece.max()) > hi:
                raise ValueError(f"values in [{piece.min()}, {piece.max()}] do not fit "
                                 f"{width} bits")
            yield "".join(f"{int(v) & mask:0{digits}x}\n" for v in piece.tolist())
    zero = f"{0:0{digits}x}\n"
    for start in range(count, depth, CHUNK):
        yield zero * (min(depth, start + CHUNK) - start)


def field_widths(p: dict[str, int]) -> dict[str, tuple[int, int]]:
    """File name (without .hex) -> (width, depth) for every memory of the core."""
    epw = p["EAW"] + 1
    layer = {"kind": 2, "sub": 1, "n": p["IW"] + 1, "sbase": p["SAW"], "pbase": p["PAW"],
             "pern": 1, "ring": 1, "rbase": epw, "rsize": epw, "rend": epw, "np": p["PW"] + 1,
             "pfirst": p["PW"]}
    proj = {"src": p["LW"], "delay": p["DLW"], "off": epw, "aoff": p["AAW"] + 1,
            "aend": p["AAW"] + 1, "an": p["IW"] + 1, "exp": p["EXPW"], "list": 1,
            "rowbase": p["ROWAW"], "accbase": p["AAW"], "count": 1}
    out = {f"l_{k}": (w, p["NL"]) for k, w in layer.items()}
    out |= {"o_kind": (2, p["NO"]), "o_idx": (max(p["LW"], p["PW"]), p["NO"])}
    out |= {f"p_{k}": (w, p["NP"]) for k, w in proj.items()}
    lanes = p.get("LANES", 1)
    if lanes == 1:
        out |= {"weights": (p["WW"], p["W_DEPTH"]), "targets": (p["IW"], p["T_DEPTH"])}
    else:  # a bank per lane; a target word carries a valid flag above the index
        out |= {f"weights{k}": (p["WW"], p["W_DEPTH"]) for k in range(lanes)}
        out |= {f"targets{k}": (p["IW"] + 1, p["T_DEPTH"]) for k in range(lanes)}
    out |= {"row_start": (p["WAW"], p["ROW_DEPTH"]), "row_len": (p["LENW"], p["ROW_DEPTH"]),
            "p_du": (12, p["P_DEPTH"]), "p_dv": (12, p["P_DEPTH"]), "p_vth": (17, p["P_DEPTH"]),
            "p_bias": (20, p["P_DEPTH"]), "p_vstep": (17, p["P_DEPTH"]),
            "p_da": (12, p["P_DEPTH"])}
    return out


def tables(program: Program) -> dict[str, np.ndarray]:
    """The layer and projection tables as one array per field."""
    ls, ps = program.layers, program.projections
    layer = {
        "kind": [KIND[x.kind] for x in ls], "sub": [int(x.subtract) for x in ls],
        "n": [x.n for x in ls], "sbase": [x.sbase for x in ls], "pbase": [x.pbase for x in ls],
        "pern": [int(x.per_neuron) for x in ls], "ring": [int(x.ring) for x in ls],
        "rbase": [x.rbase for x in ls], "rsize": [x.rsize for x in ls],
        "rend": [x.rend for x in ls], "np": [x.nproj for x in ls],
        "pfirst": [x.pfirst for x in ls]}
    proj = {
        "src": [x.src for x in ps], "delay": [x.delay for x in ps], "off": [x.off for x in ps],
        "aoff": [x.dendritic * x.n_dst for x in ps],
        "aend": [x.accbase + (x.dendritic + 1) * x.n_dst for x in ps],
        "an": [x.n_dst for x in ps],
        "exp": [x.exp for x in ps], "list": [int(x.is_list) for x in ps],
        "rowbase": [x.rowbase for x in ps], "accbase": [x.accbase for x in ps],
        "count": [int(x.count) for x in ps]}
    out = {f"l_{k}": np.asarray(v, np.int64) for k, v in layer.items()}
    out["o_kind"] = np.asarray([OP_KIND[kind] for kind, _ in program.ops], np.int64)
    out["o_idx"] = np.asarray([k for _, k in program.ops], np.int64)
    out |= {f"p_{k}": np.asarray(v, np.int64) for k, v in proj.items()}
    return out


def write_memories(program: Program, params: dict[str, int], mem_dir: Path) -> list[Path]:
    """Write every memory image for a build with `params` into `mem_dir`."""
    mem_dir.mkdir(parents=True, exist_ok=True)
    images = tables(program) | program.memories
    written = []
    for name, (width, depth) in field_widths(params).items():
        path = mem_dir / f"{name}.hex"
        # The synapse memories are made while written: a convolution's unrolled synapses
        # never exist as one list.
        words = (synapse_words(program, name) if name in ("weights", "targets")
                 and name not in images else images[name])
        if name.startswith("targets") and name != "targets":  # a lane's: a valid flag
            words = np.where(words < 0, 0, words | (1 << params["IW"]))
        with path.open("w") as f:
            f.writelines(hex_chunks(words, width, depth))
        written.append(path)
    return written


def params_header(params: dict[str, int], comment: str = "") -> str:
    """`nm_params.vh`: the parameter port list of nm_tb and nm_top."""
    lines = [f"// {line}" for line in comment.splitlines()] if comment else []
    names = sorted(params)
    body = ",\n".join(f"    parameter {k} = {int(params[k])}" for k in names)
    return "\n".join([*lines, "#(", body, ")", ""])
