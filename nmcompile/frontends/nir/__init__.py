"""NIR (the Neuromorphic Intermediate Representation) in and out.

    graph = from_nir("net.nir", dt=1e-4)          # NIR file or nir.NIRGraph -> float IR
    to_nir(graph, "net.nir")                      # float IR -> NIR file (dt, reset kept)

`neurons.py` holds the equations (forward Euler at dt), `reader.py` and `writer.py` the graph
translation, `meta.py` what nmcompile adds to a file so its own round trip is exact.
docs/nir.md has the full mapping table. Imports `nir` (and h5py) only when called.
"""

from .reader import DT_HINT, from_nir
from .writer import to_nir

__all__ = ["DT_HINT", "from_nir", "to_nir"]
