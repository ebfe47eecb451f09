"""Depths in Lava steps: when each layer runs, and how much delay each link must add.

Each Lava `Dense`/`Sparse`/`Conv` sends on step k+1 what it computed on step k, so a layer
that is h projections away from the inputs emits IR step t on Lava step t + h. A link from
source S (depth d_S) through its projection (one hop) into layer N (depth d_N) with IR delay e
must deliver S's IR step t - e at N's IR step t, that is S's Lava step t - e + d_S on Lava step
t + d_N: the link adds `extra = d_N - d_S + e - hops` steps beyond its own hop, which must be
>= 0. So the depths are the least solution of `d_N >= d_S + hops - e` over all links, a
longest-path problem; a cycle whose hops exceed its IR delay has no solution.

      x ──Dense──► A ──Dense──► B        depth: x 0, A 1, B 2
      └────────Dense(+1)───────┘         the skip link gets one extra step (DelayDense)
"""

from __future__ import annotations

from collections.abc import Sequence

from nmcompile.errors import UnsupportedError

from .links import Link


class CycleTooShortError(UnsupportedError):
    """A cycle's IR delay is smaller than the number of Lava hops around it."""


def depths(nodes: Sequence[str], links: Sequence[Link]) -> dict[str, int]:
    """The least depths >= 0 with `d[target] >= d[source] + hops - delay` for every link.

    Bellman-Ford for longest paths; a cycle with positive weight (hops > IR delay) is refused
    with an error naming it.
    """
    d = {n: 0 for n in nodes}
    pred: dict[str, Link] = {}
    changed: list[str] = []
    for _ in range(len(nodes) + 1):
        changed = []
        for link in links:
            want = d[link.source] + link.hops - link.delay
            if want > d[link.target]:
                d[link.target] = want
                pred[link.target] = link
                changed.append(link.target)
        if not changed:
            return d
    raise _cycle_error(changed[0], pred)


def _cycle_error(start: str, pred: dict[str, Link]) -> CycleTooShortError:
    # Follow the last relaxations backwards until a node repeats: that loop is a cycle whose
    # hops exceed its delay (standard Bellman-Ford argument).
    seen: list[str] = []
    node = start
    while node not in seen and node in pred:
        seen.append(node)
        node = pred[node].source
    if node not in seen:  # defensive: name the layers still relaxing
        return CycleTooShortError(
            f"a cycle through {start!r} has more Lava hops than IR delay (each "
            f"Dense/Sparse/Conv adds one step); give its edges more delay")
    cycle: list[Link] = []
    at = node
    while True:
        link = pred[at]
        cycle.append(link)
        at = link.source
        if at == node:
            break
    cycle.reverse()
    names = [cycle[0].source]
    for link in cycle:
        if link.proj is not None:
            names.append(link.proj)
        names.append(link.target)
    hops = sum(link.hops for link in cycle)
    delay = sum(link.delay for link in cycle)
    return CycleTooShortError(
        f"cycle {' -> '.join(names)} has IR delay {delay} but {hops} Lava hop(s) (each "
        f"Dense/Sparse/Conv adds one step{_mapped_hops(cycle)}); Lava can run a cycle only "
        f"when its delay is at least its hops: give the cycle's edges {hops - delay} more "
        f"step(s) of delay")


def _mapped_hops(cycle: Sequence[Link]) -> str:
    """What the mapping onto cores adds to a cycle's hops (`Link.via`), for its error."""
    parts = []
    for link in cycle:
        if link.via == "gather":
            parts.append(f"{link.proj!r} gathers the pieces of {link.source!r} first (its "
                         f"flooring shift must see the whole sum): one more")
        elif link.via == "select":
            parts.append(f"the direct link {link.source!r} -> {link.target!r} joins layers "
                         f"split over cores differently through a selection Sparse: one")
    if not parts:
        return ""
    return "; the mapping onto cores adds hops: " + "; ".join(parts) + \
        " (place these layers on one core each to avoid them)"


def extra_delay(link: Link, d: dict[str, int]) -> int:
    """Steps the link must add beyond its own hop (>= 0 once `depths` succeeded)."""
    return d[link.target] - d[link.source] + link.delay - link.hops
