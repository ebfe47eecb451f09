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
