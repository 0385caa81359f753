"""Run edit programs: parse, apply in order on a copy, validate, diff, keep a history.

A program is ``{"edits": [{"op": ..., "target": {...}, ...}, ...]}`` (JSON
Schema: ``gnn/schema/edit.schema.json``).  It is atomic: every edit applies and
the result validates, or an :class:`EditError` says which edit failed and why and
the input graph is untouched (edits only ever see copies).
"""

from __future__ import annotations

import functools
import json
import pathlib
from dataclasses import dataclass, field
from typing import Any

from gnn.edits.ops import EDITS, Edit
from gnn.errors import EditError
from gnn.ir.graph import Graph
from gnn.roles import label

SCHEMA_FILE = pathlib.Path(__file__).resolve().parents[1] / "schema" / "edit.schema.json"


@functools.cache
def schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text())


def parse_program(program: str | dict | list) -> list[Edit]:
    """A program as JSON text, a dict with ``edits``, or a list of edits -> Edit objects."""
    import jsonschema

    if isinstance(program, str):
        try:
            program = json.loads(program)
        except json.JSONDecodeError as e:
            raise EditError(f"edit program is not valid JSON ({e}); expected {{\"edits\": [...]}}") from None
    if isinstance(program, list):
        program = {"edits": program}
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema()).iter_errors(program))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "<top level>"
        raise EditError(f"edit program fails the schema at {where}: {error.message}")
    edits = []
    for i, data in enumerate(program["edits"]):
        try:
            edits.append(Edit.from_dict(data))
        except EditError as e:
            raise EditError(f"edit {i}: {e}") from None
    return edits


@dataclass
class Diff:
    added_nodes: list[str] = field(default_factory=list)
    removed_nodes: list[str] = field(default_factory=list)
    changed_nodes: list[str] = field(default_factory=list)
    added_composites: list[str] = field(default_factory=list)
    removed_composites: list[str] = field(default_factory=list)
    params_before: int = 0
    params_after: int = 0
    trainable_before: int = 0
    trainable_after: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __str__(self) -> str:
        lines = [
            f"parameters: {self.params_before:,} -> {self.params_after:,} ({self.params_after - self.params_before:+,})",
            f"trainable:  {self.trainable_before:,} -> {self.trainable_after:,}",
            f"nodes: +{len(self.added_nodes)} -{len(self.removed_nodes)} ~{len(self.changed_nodes)}",
        ]
        if self.added_composites:
            lines.append(f"added modules: {some(self.added_composites)}")
        if self.removed_composites:
            lines.append(f"removed modules: {some(self.removed_composites)}")
        return "\n".join(lines)


def some(items: list[str], n: int = 4) -> str:
    """The first ``n`` of ``items`` and how many there are in all."""
    return ", ".join(items[:n]) + (f", ... ({len(items)})" if len(items) > n else "")


def diff(before: Graph, after: Graph) -> Diff:
    old = {n.id: n for n in before.nodes}
    new = {n.id: n for n in after.nodes}
    changed = [i for i in new if i in old and (new[i].op, new[i].args, new[i].kwargs, new[i].module)
               != (old[i].op, old[i].args, old[i].kwargs, old[i].module)]
    old_c, new_c = set(before.hierarchy.composites), set(after.hierarchy.composites)
    return Diff(
        added_nodes=[i for i in new if i not in old],
        removed_nodes=[i for i in old if i not in new],
        changed_nodes=changed,
        added_composites=sorted(new_c - old_c),
        removed_composites=sorted(old_c - new_c),
        params_before=before.num_parameters,
        params_after=after.num_parameters,
        trainable_before=before.num_trainable_parameters,
        trainable_after=after.num_trainable_parameters,
    )


@dataclass
class EditResult:
    graph: Graph
    diff: Diff
    extras: dict[str, Any] = field(default_factory=dict)  # e.g. {"peft_config": {...}}
    program: list[dict] = field(default_factory=list)
    report: Any = None  # the edited graph's gnn.validate.Report (None when not validated)


def apply_program(graph: Graph, program, labeler: str = "rules", validate_result: bool = True) -> EditResult:
    """Apply a program to a copy of ``graph``; raise :class:`EditError` and leave ``graph`` as it was on failure."""
    from gnn.validate import validate

    edits = parse_program(program) if not (isinstance(program, list) and all(isinstance(e, Edit) for e in program)) \
        else program
    extras: dict[str, Any] = {}
    # No module paths (an ONNX file with its names stripped): the learned labeler's node roles
    # rebuild the projections and blocks the edits work on (gnn.roles.structure).
    from gnn.errors import MadError
    from gnn.roles.structure import with_inferred_modules

    try:
        rebuilt = with_inferred_modules(graph)
    except MadError as e:
        raise EditError(f"this graph has no module names and its structure could not be inferred: {e}") from None
    if rebuilt is not graph:
        graph = rebuilt
        extras["inferred_modules"] = True
    current = graph
    for i, edit in enumerate(edits):
        roles = label(current, labeler)
        work = current.copy()
        try:
            extras.update(edit.apply(work, roles) or {})
        except EditError as e:
            raise type(e)(f"edit {i} (`{edit.op}`): {e}") from None
        work.invalidate()
        current = work
    report = None
    if validate_result:
        report = validate(current)
        if not report.ok:
            raise EditError(f"the edited graph is invalid, nothing was changed: {report.errors[0]}")
    current.meta = {**current.meta, "edits": [*graph.meta.get("edits", []), *(e.to_dict() for e in edits)]}
    return EditResult(current, diff(graph, current), extras, [e.to_dict() for e in edits], report)


@dataclass
class Step:
    """One graph of a history: the request and the edit result that made it (none for the graph loaded)."""

    graph: Graph
    request: str = ""
    result: EditResult | None = None
    validated: Any = field(default=None, repr=False)  # the loaded graph's report, where the caller already has it

    @property
    def program(self) -> list[dict]:
        return self.result.program if self.result is not None else []

    @functools.cached_property
    def report(self):
        """The graph's validation: the edit engine's, or run once when first asked for (a loaded graph)."""
        from gnn.validate import validate

        if self.result is not None and self.result.report is not None:
            return self.result.report
        return self.validated if self.validated is not None else validate(self.graph)


class History:
    """Undo, redo and reset over the graphs a session made (the app's and any caller's one mechanism)."""

    def __init__(self, graph: Graph, report=None):
        self.steps = [Step(graph, validated=report)]  # report: the graph's validation, if already run
        self.at = 0  # the current step; the ones after it are the redo branch

    @property
    def current(self) -> Graph:
        return self.steps[self.at].graph

    @property
    def step(self) -> Step:
        return self.steps[self.at]

    def apply(self, program, request: str = "", **kw) -> EditResult:
        """Run ``program`` on the current graph and make its result the current step."""
        return self.record(apply_program(self.current, program, **kw), request).result

    def record(self, result: EditResult, request: str = "") -> Step:
        """Make ``result`` (of an edit on the current graph) the current step."""
        del self.steps[self.at + 1:]  # a new edit drops the redo branch
        self.steps.append(Step(result.graph, request, result))
        self.at += 1
        return self.step

    def undo(self) -> Graph:
        if self.at == 0:
            raise EditError("nothing to undo")
        self.at -= 1
        return self.current

    def redo(self) -> Graph:
        if self.at == len(self.steps) - 1:
            raise EditError("nothing to redo")
        self.at += 1
        return self.current

    def reset(self) -> Graph:
        """Back to the graph as loaded; the edits are gone, not kept for redo."""
        self.steps, self.at = self.steps[:1], 0
        return self.current


__all__ = ["EDITS", "Diff", "EditResult", "History", "Step", "apply_program", "diff", "parse_program"]
