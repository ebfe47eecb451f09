"""Chips as data: one TOML file per chip, every number with its source.

A chip is a mesh of identical cores. Per core: neurons, synaptic memory in bits and the bits
one synapse takes as the core stores it (dense, sparse, convolution; a convolution stores its
kernel once or every synapse unrolled), input axons (fan-in lists) and output axons (fan-out
targets). The mesh: tiles as (columns, rows), cores per tile, chips per board, and the host
port where network inputs enter. Energies and latencies per hop east-west, north-south and
within a tile. Built-in chips live in `nmcompile/mapping/chips/`; a user adds one as a TOML
file in a folder named by `paths=` or `NMCOMPILE_CHIPS`, or names the file itself. Every
value is a table `{ value = ..., source = "...", derived = true }` (`derived` marks a figure
computed or assumed, not published; energies give `joules` and `seconds` instead of
`value`), so that no number is without its origin.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .. import catalog
from ..errors import FormatError

BUILTIN = Path(__file__).with_name("chips")
ENV = "NMCOMPILE_CHIPS"
KINDS = ("dense", "sparse", "conv")
SIDES = ("west", "east", "north", "south")
HOPS = ("hop_east_west", "hop_north_south", "within_tile")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


@dataclass(frozen=True)
class Link:
    """Energy (J) and latency (s) of one spike message over one kind of link."""

    joules: float
    seconds: float


@dataclass(frozen=True)
class Chip:
    """One chip's cores and mesh. Core (x, y) coordinates run over `columns * cores_per_tile`
    by `rows`: the cores of a tile sit side by side along x."""

    name: str
    title: str
    neurons: int
    synapse_memory_bits: int
    synapse_bits: dict[str, int]
    conv_stored: str                  # "kernel" or "unrolled"
    input_axons: int
    output_axons: int
    tiles: tuple[int, int]            # (columns, rows)
    cores_per_tile: int
    chips_per_board: int
    host: tuple[int, int]
    host_side: str
    links: dict[str, Link]            # HOPS -> Link; empty when not known
    synaptic_op: Link | None
    sources: dict[str, str]           # "core.neurons" -> its source
    derived: frozenset[str]           # the keys whose value is derived, not published
    notes: str = ""
    path: str = ""
    doc: dict = field(default_factory=dict, compare=False, repr=False)  # the TOML, parsed

    @property
    def cores(self) -> int:
        """Cores per chip."""
        return self.tiles[0] * self.tiles[1] * self.cores_per_tile

    def synapses_per_core(self, kind: str) -> int:
        """Synapses of one kind that fill a core's synaptic memory."""
        return self.synapse_memory_bits // self.synapse_bits[kind]


def _entry(doc: dict, section: str, key: str, where: str, kind: type | tuple[type, ...]
           ) -> tuple[object, str, bool]:
    at = f"{where}: [{section}] {key}"
    table = doc.get(key)
    if not isinstance(table, dict) or "source" not in table:
        raise FormatError(f"{at} must be a table with a value and its source, e.g. "
                          f"{{ value = ..., source = \"...\" }}")
    if not isinstance(table["source"], str) or not table["source"].strip():
        raise FormatError(f"{at}: source must be a non-empty string")
    value = table.get("value")
    if kind is int and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise FormatError(f"{at}: value must be a positive integer, not {value!r}")
    if kind is not int and not isinstance(value, kind):
        raise FormatError(f"{at}: value {value!r} has the wrong type")
    return value, table["source"], bool(table.get("derived", False))


def _section(doc: dict, key: str, where: str, required: bool = True) -> dict:
    section = doc.get(key, None if required else {})
    if not isinstance(section, dict):
        raise FormatError(f"{where}: [{key}] must be a table" if section is not None else
                          f"{where}: the chip has no [{key}] table")
    return section


def parse(doc: dict, where: str) -> Chip:
    """A `Chip` from a parsed TOML document; `where` names it in errors."""
    name = doc.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise FormatError(f"{where}: chip name {name!r} must be letters, digits, '-', '_', '.'")
    sources: dict[str, str] = {}
    derived: set[str] = set()

    def get(section: dict, sname: str, key: str, kind):
        value, source, is_derived = _entry(section, sname, key, where, kind)
        sources[f"{sname}.{key}"] = source
        if is_derived:
            derived.add(f"{sname}.{key}")
        return value

    core = _section(doc, "core", where)
    bits_doc = _section(core, "synapse_bits", where)
    bits = {k: get(bits_doc, "core.synapse_bits", k, int) for k in KINDS}
    conv_stored = get(core, "core", "conv_stored", str)
    if conv_stored not in ("kernel", "unrolled"):
        raise FormatError(f"{where}: [core] conv_stored must be 'kernel' or 'unrolled', not "
                          f"{conv_stored!r}")
    mesh = _section(doc, "mesh", where)
    tiles = get(mesh, "mesh", "tiles", list)
    host = get(mesh, "mesh", "host", list)
    for key, pair in (("tiles", tiles), ("host", host)):
        if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                     for v in pair):
            raise FormatError(f"{where}: [mesh] {key} must be two non-negative integers")
    if min(tiles) < 1 or not (host[0] < tiles[0] and host[1] < tiles[1]):
        raise FormatError(f"{where}: [mesh] tiles must be at least 1 x 1 and host a tile in it")
    side = mesh["host"].get("side", "west")
    if side not in SIDES:
        raise FormatError(f"{where}: [mesh] host side {side!r} must be one of {SIDES}")
    energy = _section(doc, "energy", where, required=False)
    links: dict[str, Link] = {}
    synaptic_op = None
    for key, table in energy.items():
        at = f"{where}: [energy] {key}"
        if key not in (*HOPS, "synaptic_op"):
            raise FormatError(f"{at}: unknown entry; known: {', '.join((*HOPS, 'synaptic_op'))}")
        if not isinstance(table, dict) or not isinstance(table.get("source"), str):
            raise FormatError(f"{at} must be {{ joules = ..., seconds = ..., source = \"...\" }}")
        try:
            link = Link(float(table["joules"]), float(table["seconds"]))
        except (KeyError, TypeError, ValueError):
            raise FormatError(f"{at} needs numeric joules and seconds") from None
        if not (link.joules >= 0 and link.seconds >= 0):  # also refuses NaN
            raise FormatError(f"{at}: joules and seconds must be >= 0")
        sources[f"energy.{key}"] = table["source"]
        if table.get("derived", False):
            derived.add(f"energy.{key}")
        if key == "synaptic_op":
            synaptic_op = link
        else:
            links[key] = link
    if links and set(links) != set(HOPS):
        raise FormatError(f"{where}: [energy] gives some hop kinds but not "
                          f"{', '.join(sorted(set(HOPS) - set(links)))}; give all or none")
    return Chip(name, str(doc.get("title", name)), get(core, "core", "neurons", int),
                get(core, "core", "synapse_memory_bits", int), bits, conv_stored,
                get(core, "core", "input_axons", int), get(core, "core", "output_axons", int),
                (tiles[0], tiles[1]), get(mesh, "mesh", "cores_per_tile", int),
                get(mesh, "mesh", "chips_per_board", int), (host[0], host[1]), side, links,
                synaptic_op, sources, frozenset(derived), str(doc.get("notes", "")).strip(),
                where, doc)


def read_chip(path: str | Path) -> Chip:
    return parse(catalog.read_toml(path, "chip"), str(path))


def available(paths: Iterable[str | Path] = ()) -> dict[str, Path]:
    """Chip name -> its file, over `paths`, then $NMCOMPILE_CHIPS, then the built-in folder."""
    return catalog.available(read_chip, ENV, BUILTIN, paths)


def load_chip(chip: str | Path | Chip, paths: Iterable[str | Path] = ()) -> Chip:
    """A chip by name (searched as `available` says) or by the path of its file."""
    if isinstance(chip, Chip):
        return chip
    return catalog.find(str(chip), read_chip, ENV, BUILTIN, paths, "chip",
                        "nmcompile/mapping/chips.py")
