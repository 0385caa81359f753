"""The graph edit engine: edit programs -> validated graphs, diffs and history."""

from gnn.edits.engine import EDITS, Diff, EditResult, History, apply_program, diff, parse_program
from gnn.edits.target import EditError, Infeasible, Target

__all__ = ["EDITS", "Diff", "EditError", "EditResult", "History", "Infeasible", "Target", "apply_program", "diff", "parse_program"]
