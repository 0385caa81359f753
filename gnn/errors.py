"""The project's error types.

Every error meant for a person derives from :class:`MadError`; the command line
prints its one-line message and exits non-zero instead of showing a traceback.
"""


def describe(e: BaseException) -> str:
    """An exception as one line, ``Type: message``: its first line, and the next one too
    when the first only introduces it (``... validation error for 'x':``)."""
    lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if text.endswith(":") and len(lines) > 1:
        text = f"{text} {lines[1]}"
    return f"{type(e).__name__}: {text}"[:300]


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


class EditError(MadError):
    """An edit program, or one of its edits, cannot be applied; the graph is left unchanged."""


class Infeasible(EditError):
    """A well-formed edit this graph cannot take, or already has (the attention cannot be regrouped, the norms
    are already RMSNorm, it would remove every block): the answer to the request is no, not a different program."""
