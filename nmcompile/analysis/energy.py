"""Device energy models as data: one TOML file per device, every number with its source.

A device is a list of terms, each an energy per operation times one of the counts of
`Counts.per_inference`:

    E_device = sum over terms of count_per_inference[term.count] * term.joules   (J / inference)

plus the terms it leaves out (`omitted`: static power needs a clock, say), which the report
lists. Some counts exist only for some runs (`NEEDS`: the routing counts need a mapping onto
cores): a term on such a count is reported as left out, with the reason, when the run lacks
it, or priced on its `fallback` count instead when the term names one (an approximation the
result lists under "approximated"). Built-in devices live in `nmcompile/analysis/devices/`;
a user adds one by writing a TOML file in a folder named by `paths=`, `--devices-dir` or the
`NMCOMPILE_DEVICES` environment variable (folders separated by the OS path separator), or by
naming the file itself. The format:

    name = "mychip"                 # letters, digits, '-', '_', '.'
    title = "My chip (Someone et al. 2024)"
    kind = "neuromorphic"           # or "conventional", "ann" (baselines)
    [[terms]]
    name = "synaptic_op"
    count = "synaptic_ops"          # one of COUNTS
    joules = 1e-11
    source = "Someone et al., Journal 2024, Table 2"
    fallback = "spikes"             # optional: priced on this count when `count` is absent
    [[omitted]]                     # optional
    name = "routing"
    why = "needs a placement"
    source = "-"
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import catalog
from ..errors import FormatError

BUILTIN = Path(__file__).resolve().parent / "devices"
ENV = "NMCOMPILE_DEVICES"
KINDS = ("neuromorphic", "conventional", "ann")

#: Counts a term may multiply (per inference; see `Counts.per_inference`).
COUNTS = {
    "synaptic_ops": "(delivered spike, stored synapse) pairs",
    "synaptic_ops_nonzero": "(delivered spike, non-zero synapse) pairs",
    "synaptic_ops_dense": "synaptic_ops of dense matrices (Dense, QDense, folded chains)",
    "synaptic_ops_sparse": "synaptic_ops of sparse matrices (Sparse, QSparse)",
    "synaptic_ops_conv": "synaptic_ops of convolutions (Conv2d, QConv2d)",
    "dense_synaptic_ops": "every synapse on every step (a clocked, not event-driven, machine)",
    "macs": "one multiply-accumulate per synapse: one pass of an ANN of the same topology",
    "weight_reads": "stored weight values (a kernel once, a sparse matrix's entries), each "
                    "read once by one ANN pass",
    "activation_reads": "input values one ANN pass reads: the elements of every source of "
                        "every projection",
    "neuron_updates": "every neuron on every step",
    "active_updates": "neuron updates with an event arriving or a spike",
    "idle_updates": "neuron updates with neither",
    "spikes": "spikes emitted by neuron layers",
    "input_spikes": "non-zero input values",
    "core_messages": "messages sent, one per (spiking neuron or input, destination core); "
                     "needs a mapping",
    "hops_east_west": "east-west mesh hops of those messages (XY routing); needs a mapping",
    "hops_north_south": "north-south mesh hops of those messages; needs a mapping",
    "tile_hops": "hops_east_west + hops_north_south; needs a mapping",
    "within_tile_messages": "messages whose source and destination core share a tile; needs "
                            "a mapping",
}
MAPPING = "needs a mapping onto cores: nmcompile map (issue 15)"
#: Counts that only some runs have, and why a run lacks them: a term on one of them is
#: reported as left out (or priced on its fallback) rather than priced at zero.
NEEDS = {count: MAPPING for count in ("core_messages", "hops_east_west", "hops_north_south",
                                      "tile_hops", "within_tile_messages")}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


@dataclass(frozen=True)
class Term:
    """`joules` per unit of `count`; `fallback` names the count priced instead when a run
    lacks `count` (an approximation), "" for none."""

    name: str
    count: str
    joules: float
    source: str
    fallback: str = ""


@dataclass(frozen=True)
class Device:
    """E = sum of `count * joules` over `terms`, per inference; `omitted` lists what it
    leaves out (name, why, source, and the figure when the source gives one)."""

    name: str
    title: str
    kind: str
    terms: tuple[Term, ...]
    omitted: tuple[dict[str, str], ...] = ()
    notes: str = ""
    path: str = ""

    def energy(self, per_inference: Mapping[str, float]) -> dict[str, Any]:
        """{"joules": total, "terms": {term: J}, "omitted": [...], "approximated": [...]} for
        one inference. A term whose count `per_inference` lacks is priced on its fallback
        (listed under "approximated") or left out (listed under "omitted"), never zero."""
        terms, omitted, approximated = {}, list(self.omitted), []
        for term in self.terms:
            count = term.count if term.count in per_inference else term.fallback
            why = NEEDS.get(term.count, f"this run has no {term.count!r} count")
            if count not in per_inference:
                omitted.append({"name": term.name, "joules": str(term.joules), "why": why,
                                "source": term.source})
                continue
            if count != term.count:
                approximated.append({"name": term.name, "count": count,
                                     "instead_of": term.count, "why": why})
            terms[term.name] = terms.get(term.name, 0.0) + per_inference[count] * term.joules
        return {"joules": sum(terms.values()), "terms": terms, "omitted": omitted,
                "approximated": approximated}

    def sources(self) -> dict[str, str]:
        out = {t.name: t.source for t in self.terms}
        for o in self.omitted:
            out.setdefault(o["name"], o.get("source", "-"))
        return out


def approximations(devices: Iterable[Device], per_inference: Mapping[str, float]) -> list[str]:
    """One sentence per term priced on its fallback count, for the report's assumptions."""
    out = []
    for device in devices:
        for a in device.energy(per_inference)["approximated"]:
            out.append(f"{device.name}: term {a['name']!r} priced on {a['count']} instead of "
                       f"{a['instead_of']} ({a['why']})")
    return out


def _text(doc: dict, key: str, where: str, default: str | None = None) -> str:
    value = doc.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise FormatError(f"{where}: field {key!r} must be a non-empty string")
    return value.strip()


def _count(doc: dict, key: str, where: str) -> str:
    count = _text(doc, key, where)
    if count not in COUNTS:
        raise FormatError(f"{where}: unknown {key} {count!r}; known: {', '.join(COUNTS)}")
    return count


def parse(doc: dict[str, Any], where: str) -> Device:
    """A `Device` from a parsed TOML document; `where` names it in errors."""
    name = _text(doc, "name", where)
    if not _NAME.match(name):
        raise FormatError(f"{where}: device name {name!r} must be letters, digits, '-', '_', '.'")
    kind = _text(doc, "kind", where, "neuromorphic")
    if kind not in KINDS:
        raise FormatError(f"{where}: kind {kind!r} must be one of {', '.join(KINDS)}")
    raw_terms = doc.get("terms")
    if not isinstance(raw_terms, list) or not raw_terms:
        raise FormatError(f"{where}: a device needs at least one [[terms]] entry")
    terms = []
    for k, t in enumerate(raw_terms):
        at = f"{where}, terms[{k}]"
        if not isinstance(t, dict):
            raise FormatError(f"{at}: must be a table")
        count = _count(t, "count", at)
        fallback = _count(t, "fallback", at) if "fallback" in t else ""
        joules = t.get("joules")
        if isinstance(joules, bool) or not isinstance(joules, (int, float)) or joules < 0:
            raise FormatError(f"{at}: 'joules' must be a number >= 0 (energy per {count})")
        terms.append(Term(_text(t, "name", at), count, float(joules),
                          _text(t, "source", at), fallback))  # every number names its source
    omitted = []
    for k, o in enumerate(doc.get("omitted", [])):
        at = f"{where}, omitted[{k}]"
        if not isinstance(o, dict):
            raise FormatError(f"{at}: must be a table")
        entry = {"name": _text(o, "name", at), "why": _text(o, "why", at),
                 "source": _text(o, "source", at, "-")}
        if "joules" in o:
            entry["joules"] = str(o["joules"])
        omitted.append(entry)
    return Device(name, _text(doc, "title", where, name), kind, tuple(terms), tuple(omitted),
                  str(doc.get("notes", "")).strip(), where)


def read_device(path: str | Path) -> Device:
    return parse(catalog.read_toml(path, "device"), str(path))


def search_paths(paths: Iterable[str | Path] = ()) -> list[Path]:
    """Folders searched for device files, first match wins: `paths`, then those in
    $NMCOMPILE_DEVICES, then the built-in folder."""
    return catalog.search_paths(ENV, BUILTIN, paths)


def available(paths: Iterable[str | Path] = ()) -> dict[str, Path]:
    """Device name -> its file, over the search paths."""
    return catalog.available(read_device, ENV, BUILTIN, paths)


def load_device(device: str | Path | Device, paths: Iterable[str | Path] = ()) -> Device:
    """A device by name (searched as `search_paths` says) or by the path of its file."""
    if isinstance(device, Device):
        return device
    return catalog.find(str(device), read_device, ENV, BUILTIN, paths, "device",
                        "docs/estimation.md")


def load_devices(devices: str | Sequence[str | Path | Device],
                 paths: Iterable[str | Path] = ()) -> list[Device]:
    """Several devices; a string may list them separated by commas."""
    if isinstance(devices, (str, Path, Device)):
        devices = [d for d in str(devices).split(",") if d] if isinstance(devices, str) \
            else [devices]
    paths = list(paths)
    return [load_device(d, paths) for d in devices]


def baselines(paths: Iterable[str | Path] = ()) -> list[Device]:
    """Every device of kind "ann" on the search paths: the conventional-ANN baselines."""
    out = []
    for path in available(paths).values():
        device = read_device(path)
        if device.kind == "ann":
            out.append(device)
    return out
