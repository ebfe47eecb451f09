"""The hardware-neutral graph IR: a `Graph` of typed node dataclasses joined by delayed edges.

Importing this package does not import PyTorch; the float interpreter (`interpret.py`) and the
shared update equations (`dynamics.py`) do, and are imported where needed.
"""

from .graph import Graph
from .neurons import ALIF, IF, LI, LIF, Neuron
from .node import NODE_TYPES, Node, Shape, register
from .ports import Input, Output
from .projections import AvgPool2d, Conv2d, Dense, Flatten, Scale, Sparse, SumPool2d
from .quantized import QALIF, QLI, QLIF, QConv2d, QDense, QSparse
from .serialize import load, save

__all__ = [
    "ALIF",
    "IF",
    "LI",
    "LIF",
    "NODE_TYPES",
    "QALIF",
    "QLI",
    "QLIF",
    "AvgPool2d",
    "Conv2d",
    "Dense",
    "Flatten",
    "Graph",
    "Input",
    "Neuron",
    "Node",
    "Output",
    "QConv2d",
    "QDense",
    "QSparse",
    "Scale",
    "Shape",
    "Sparse",
    "SumPool2d",
    "load",
    "register",
    "save",
]
