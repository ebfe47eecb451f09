"""Lava backend: lowering the quantised IR to Lava processes and running them.

Importing this package installs the Python 3.11 import shim for lava-nc 0.10 (see
:mod:`backends.lava.compat`), so any later ``import lava...`` works.
"""

from backends.lava import compat

compat.install()
