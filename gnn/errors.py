"""The project's error types.

Every error meant for a person derives from :class:`MadError`; the command line
prints its one-line message and exits non-zero instead of showing a traceback.
"""


class MadError(Exception):
    """A user-facing error: one line saying what was wrong and what is accepted."""


class SourceError(MadError):
    """A model source (hf:..., folder, .onnx, .json) could not be read."""


class UnsupportedOpError(MadError):
    """A traced operation is not in the op vocabulary (see docs/ops.md)."""


class GraphValidationError(MadError):
    """A graph broke one of the invariants checked by :func:`gnn.validate`.

    ``issues`` holds every problem found, the first one at the front.
    """

    def __init__(self, issues):
        self.issues = list(issues)
        first = self.issues[0]
        more = f" (+{len(self.issues) - 1} more)" if len(self.issues) > 1 else ""
        super().__init__(f"{first}{more}")


class ExportError(MadError):
    """A graph could not be written in the requested format."""
