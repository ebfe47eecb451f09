"""A chip's mesh: where a global core sits and how far a message travels between two.

Global core `g` is core `g % chip.cores` of chip `g // chip.cores`. Within a chip, cores fill
tiles in order (`cores_per_tile` per tile) and tiles run row-major over `tiles = (columns,
rows)`. Chips of a board sit side by side east-west, so that one mesh of tiles spans them:
global tile x = chip * columns + the tile's column. Messages follow dimension-order (XY)
routing, as Loihi's mesh does: east-west first, then north-south, one hop per tile boundary;
cores of one tile share its router (no hop). Network inputs enter at the chip's host port:
one hop from the host side into the host tile, then XY.
"""

from __future__ import annotations

import numpy as np

from .chips import Chip

HOST = -1  # the source "core" of network inputs

#: A directed link between neighbouring tiles: (x0, y0, x1, y1) in global tile coordinates;
#: the host port's link is (-1, -1, x, y).
Link = tuple[int, int, int, int]


def tiles_of(chip: Chip, cores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Global tile (x, y) of each global core in `cores` (int arrays)."""
    cores = np.asarray(cores, dtype=np.int64)
    columns = chip.tiles[0]
    local = cores % chip.cores
    tile = local // chip.cores_per_tile
    return (cores // chip.cores) * columns + tile % columns, tile // columns


def hops(chip: Chip, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(east-west, north-south) hops from each core in `src` (HOST for an input) to the
    matching core in `dst`."""
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    sx, sy = tiles_of(chip, np.where(src == HOST, 0, src))
    hx, hy = chip.host
    host = src == HOST
    sx, sy = np.where(host, hx, sx), np.where(host, hy, sy)
    dx, dy = tiles_of(chip, dst)
    ew, ns = np.abs(dx - sx), np.abs(dy - sy)
    entry = host.astype(np.int64)  # the host port's own link into the mesh
    if chip.host_side in ("west", "east"):
        ew = ew + entry
    else:
        ns = ns + entry
    return ew, ns


def same_tile(chip: Chip, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Whether each message stays within its tile (inputs never do)."""
    src = np.asarray(src, dtype=np.int64)
    sx, sy = tiles_of(chip, np.where(src == HOST, 0, src))
    dx, dy = tiles_of(chip, dst)
    return (src != HOST) & (sx == dx) & (sy == dy)


def route(chip: Chip, src: int, dst: int) -> list[Link]:
    """The links an XY-routed message crosses from core `src` (or HOST) to core `dst` (or
    HOST: to the host tile, then out of the host port, (x, y, -1, -1))."""
    links: list[Link] = []
    if src == HOST:
        x, y = chip.host
        links.append((-1, -1, x, y))
    else:
        tx, ty = tiles_of(chip, np.array([src]))
        x, y = int(tx[0]), int(ty[0])
    if dst == HOST:
        gx, gy = chip.host
    else:
        tx, ty = tiles_of(chip, np.array([dst]))
        gx, gy = int(tx[0]), int(ty[0])
    while x != gx:
        step = 1 if gx > x else -1
        links.append((x, y, x + step, y))
        x += step
    while y != gy:
        step = 1 if gy > y else -1
        links.append((x, y, x, y + step))
        y += step
    if dst == HOST:
        links.append((x, y, -1, -1))
    return links


def link_packets(chip: Chip, src: np.ndarray, dst: np.ndarray, msgs: np.ndarray,
                 back: np.ndarray = (), back_msgs: np.ndarray = ()) -> dict[str, int]:
    """Packets over each directed link ("x0,y0->x1,y1"; "host->x,y" and "x,y->host" for the
    host port) when `msgs[i]` messages go from core `src[i]` (or HOST) to core `dst[i]`, and
    `back_msgs[j]` from core `back[j]` to the host, each XY-routed as `route` walks it: every
    route at once, a run of links along a row or column added as a difference and summed."""
    src, dst = np.asarray(src, np.int64), np.asarray(dst, np.int64)
    back = np.asarray(back, np.int64)
    host = src == HOST
    hx, hy = chip.host
    sx, sy = tiles_of(chip, np.where(host, 0, src))
    gx, gy = tiles_of(chip, dst)
    bx, by = tiles_of(chip, back)
    x0 = np.concatenate([np.where(host, hx, sx), bx])
    y0 = np.concatenate([np.where(host, hy, sy), by])
    x1 = np.concatenate([gx, np.full(back.size, hx)])
    y1 = np.concatenate([gy, np.full(back.size, hy)])
    m = np.concatenate([np.asarray(msgs, np.int64), np.asarray(back_msgs, np.int64)])
    w = int(max(x0.max(initial=0), x1.max(initial=0), hx)) + 2
    h = int(max(y0.max(initial=0), y1.max(initial=0), hy)) + 2

    def runs(axis: int, row, start, stop, sel) -> np.ndarray:
        """Packets per link of runs along `axis` (1: x), entries start..stop-1 on `row`."""
        diff = np.zeros((h + 1, w + 1), np.int64)
        at = (row[sel], start[sel]) if axis == 1 else (start[sel], row[sel])
        np.add.at(diff, at, m[sel])
        at = (row[sel], stop[sel]) if axis == 1 else (stop[sel], row[sel])
        np.add.at(diff, at, -m[sel])
        return np.cumsum(diff, axis=axis)

    out: dict[str, int] = {}
    entering = int(m[:src.size][host].sum())
    if entering:
        out[f"host->{hx},{hy}"] = entering
    steps = {  # (packets[y, x] per link leaving tile (x, y), its step)
        (1, 0): runs(1, y0, x0, x1, x1 > x0),
        (-1, 0): runs(1, y0, x1 + 1, x0 + 1, x1 < x0),
        (0, 1): runs(0, x1, y0, y1, y1 > y0),
        (0, -1): runs(0, x1, y1 + 1, y0 + 1, y1 < y0),
    }
    for (dx, dy), packets in steps.items():
        for y, x in zip(*np.nonzero(packets), strict=True):
            out[f"{x},{y}->{x + dx},{y + dy}"] = int(packets[y, x])
    leaving = int(np.asarray(back_msgs, np.int64).sum())
    if leaving:
        out[f"{hx},{hy}->host"] = leaving
    return out
