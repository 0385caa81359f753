"""The graph edit engine: edit programs -> validated graphs, diffs and history."""

from gnn.edits.engine import EDITS, Diff, EditResult, History, Step, apply_program, diff, parse_program
from gnn.edits.target import Target
from gnn.errors import EditError, Infeasible

__all__ = ["EDITS", "Diff", "EditError", "EditResult", "History", "Infeasible", "Step", "Target", "apply_program", "diff", "parse_program"]
