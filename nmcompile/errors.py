"""The exceptions nmcompile raises. Each message names the node or layer at fault and the fix."""


class NmcompileError(Exception):
    """Base class of every error nmcompile raises on purpose."""


class GraphError(NmcompileError):
    """The graph is malformed: a missing node, a bad edge, a zero-delay cycle, a bad parameter."""


class ShapeError(GraphError):
    """Shapes do not fit together at some node."""


class UnsupportedError(NmcompileError):
    """A module, layer, operation or parameter that nmcompile cannot represent exactly."""


class FormatError(NmcompileError):
    """A file that is not a valid nmcompile file, or one too large to load safely."""


class LimitError(NmcompileError):
    """A size limit would be exceeded; raised before anything is allocated."""
