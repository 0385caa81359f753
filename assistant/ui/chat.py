"""One conversation about one architecture: what the chat app keeps per browser session.

A :class:`Session` holds the loaded graph and its edit history (undo, redo, reset), the
conversation, and a folder for its downloads; nothing in it is shared with another
session.  Its imports, edits and exports run in worker processes and the language model in
one of its own (:mod:`assistant.ui.workers`), under a time limit, so a session's heavy
request never holds up another's.  :meth:`Session.send` turns a message into a reply:

* ``undo`` / ``redo`` / ``reset``: step through the history;
* "describe this model": the description made from the graph's facts;
* "what changed?": the last edit's program and diff;
* an edit program as JSON (``{"edits": [...]}``): run as it is;
* a question about the graph ("how many KV heads?"): answered from its facts;
* anything else: the language model turns it into an edit, a question back, or a refusal; an edit
  is said back in plain words first (its *reading*), each part linked to the words it came from.

Every reply is text for the chat; a bad source, upload or request becomes a one-line
message, never a traceback, and leaves the graph as it was.
"""

from __future__ import annotations

import functools
import json
import pathlib
import re
import shutil
import tempfile
import threading
import uuid
import weakref
from typing import Any

from gnn.edits import History, Step
from gnn.errors import MadError, SourceError
from gnn.fileio import write_text
from gnn.ir.graph import Graph

UPLOAD_SUFFIXES = (".onnx", ".json")
MAX_UPLOAD_MB = 512
_YES = ("yes", "y", "yes please", "yes, please", "do it", "yes, do it", "ok", "okay", "sure", "go ahead")
_QUESTION_WORDS = ("how", "what", "which", "does", "do", "is", "are", "can", "where", "why", "who", "when")


_sessions: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # token -> Session, for the drawing's clicks
# Imports, edits, exports and the language model run in worker processes (assistant.ui.workers), so one session's
# heavy request never holds up another's.  What still runs torch here (facts for a graph without names: the
# learned labeler) runs one at a time.
_torch_lock = threading.RLock()


def serialized(method):
    """One request at a time per session (its graph and history change together); sessions run side by side."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return run


def assistant(llm: str | None = None, log=print):
    """The language model, as the session calls it: ``interpret(graph, text)``, run in its own worker process
    (loaded there on first use, ~3 s from the cached copy, ~20 s the first time)."""
    from assistant.ui import workers

    return workers.Language(llm)


def _facts(graph):
    from assistant.facts import facts

    with _torch_lock:
        return facts(graph)


def parse_override_text(text: str) -> dict[str, Any]:
    """``"num_hidden_layers=2, hidden_size=256"`` (commas or spaces between) -> overrides."""
    from gnn.sources import parse_overrides

    items = [t for t in re.split(r"[\s,;]+", text.strip()) if t]
    return parse_overrides(items)


class Session:
    """A browser session's graph, history, conversation and downloads."""

    def __init__(self, llm: str | None = None):
        self.llm = llm
        self.source = ""
        self.history: History | None = None  # None until a model is loaded
        self.conversation: list[dict] = []  # {"role", "content"} as the chat shows it
        self.offered: tuple[str, dict, Graph] | None = None  # a "Did you mean" edit: request, program, on graph
        self.folder = pathlib.Path(tempfile.mkdtemp(prefix="mad-session-"))
        self.opened: set[str] = set()  # the drawing's open boxes (gnn.exporters.drawing)
        self.overrides = ""  # the config overrides the model was loaded with (a comparison reuses them)
        self.comparing = None  # (Comparison, the other graph): drawn until the next load, edit or step
        self.opened_other: set[str] = set()
        self.token = uuid.uuid4().hex  # names this session to the drawing's clicks, which come without its state
        self._lock = threading.RLock()
        _sessions[self.token] = self

    # -- state ----------------------------------------------------------------------------------

    @property
    def graph(self) -> Graph | None:
        return self.history.current if self.history else None

    @property
    def step(self) -> Step | None:
        return self.history.step if self.history else None

    @property
    def edits(self) -> int:
        """How many edits made the current graph."""
        return self.history.at if self.history else 0

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    # -- loading --------------------------------------------------------------------------------

    @serialized
    def load(self, source: str = "", overrides: str = "", upload: str | None = None) -> str:
        """Load a model (``hf:<type>``, a config folder, or an uploaded file); the reply says what was loaded."""
        from gnn.analysis.summary import summarize

        source = (source or "").strip()
        if not upload and not source:
            raise SourceError("no model given: type hf:<model_type> (e.g. hf:llama), a config folder, or upload "
                              "an .onnx, graph .json or config.json")
        if upload:
            (graph, report), label = self._load_upload(pathlib.Path(upload), overrides)
        else:
            (graph, report), label = _load(source, parse_override_text(overrides or "")), source
        from gnn.exporters.drawing import default_open

        self.source, self.overrides, self.comparing = label, overrides or "", None
        self.history = History(graph, report)
        self.opened = default_open(graph)
        s = summarize(graph)
        report = self.step.report
        check = ("" if report.ok else f" **It fails validation** ({len(report.errors)} error(s), shown at their "
                 f"nodes in the graph): {report.errors[0]}.")
        return (f"Loaded **{label}**: {graph.name}, {s['params']:,} parameters, {s['layers']} repeated "
                f"blocks, {len(graph.nodes):,} ops.{check} Ask me to change it, describe it, or ask about it.")

    def _load_upload(self, path: pathlib.Path, overrides: str) -> tuple[tuple, str]:
        name = path.name
        suffix = path.suffix.lower()
        if suffix not in UPLOAD_SUFFIXES:
            raise SourceError(f"cannot use `{name}`: upload an .onnx file, a MAD graph .json or a config.json")
        size = path.stat().st_size
        if size > MAX_UPLOAD_MB * 1e6:
            raise SourceError(f"`{name}` is {size / 1e6:.0f} MB, over the {MAX_UPLOAD_MB} MB upload limit")
        if suffix == ".json":
            try:
                data = json.loads(path.read_text())
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise SourceError(f"`{name}` is not valid JSON ({e.__class__.__name__}); upload a MAD graph "
                                  ".json or a Hugging Face config.json") from None
            if isinstance(data, dict) and "model_type" in data:  # a Hugging Face config
                folder = self.folder / "config"
                folder.mkdir(exist_ok=True)
                shutil.copyfile(path, folder / "config.json")
                return _load(str(folder), parse_override_text(overrides or "")), name
        if overrides and overrides.strip():
            raise SourceError(f"config overrides apply to Hugging Face configs, not to `{name}`")
        return _load(str(path), {}), name

    # -- messages -------------------------------------------------------------------------------

    @serialized
    def send(self, text: str, progress=None) -> dict:
        """The reply to ``text``: ``{"text": markdown, "program": JSON or None}``; the conversation records both."""
        text = (text or "").strip()
        self.conversation.append({"role": "user", "content": text})
        try:
            reply = self._reply(text, progress)
        except MadError as e:
            reply = {"text": f"**Error:** {str(e).splitlines()[0]}", "program": None}
        self.conversation.append({"role": "assistant", "content": reply["text"],
                                  **({"program": reply["program"]} if reply.get("program") else {})})
        return reply

    def _reply(self, text: str, progress) -> dict:
        low = text.lower().rstrip(".!? ")
        if not text:
            return {"text": "Say what to change, or ask about the model.", "program": None}
        if self.graph is None:
            return {"text": "Load a model first: pick an example, type hf:<model_type> (e.g. hf:llama), or upload a "
                            "file.", "program": None}
        offered, self.offered = self.offered, None  # an offer holds for the next message only
        if offered and low in _YES and offered[2] is self.graph:
            return self._record(offered[0], _apply(self.graph, offered[1]))
        if low in ("undo", "redo", "reset"):
            return {"text": getattr(self, low)(), "program": None}
        if re.fullmatch(r"(please )?(describe|summari[sz]e)( (it|this|this model|the model|the architecture))?", low):
            from assistant.describe import describe

            return {"text": describe(_facts(self.graph)), "program": None}
        if re.search(r"\bwhat (has |did you |was )?change|\bshow (me )?the (diff|changes)|\bwhat did you do\b", low):
            return self._what_changed()
        if text.startswith("{"):  # an edit program, run as it is (the engine says what is wrong with a bad one)
            return self._record(text, _apply(self.graph, text))
        if text.endswith("?") or low.split(" ", 1)[0] in _QUESTION_WORDS:
            from assistant.ask import ask

            answer, key = ask(_facts(self.graph), text)
            if key:
                return {"text": answer, "program": None}
        return self._interpret(text, progress)

    def _interpret(self, text: str, progress) -> dict:
        if progress is not None:
            progress(0.1, desc="reading the request (the first one loads the language model: about 20 s the "
                               "first time, then 3 s)")
        outcome = assistant(self.llm, log=lambda m: None).interpret(self.graph, text)  # in its worker
        if outcome.action == "ask":
            if outcome.program:  # "Did you mean: ...?": the edit it names is one "yes" away
                self.offered = (text, outcome.program, self.graph)
                return {"text": f"**Question:** {outcome.message} (Say yes to make that edit.)", "program": None}
            return {"text": f"**Question:** {outcome.message}", "program": None}
        if outcome.action == "refuse":
            return {"text": f"**Cannot do that:** {outcome.message}", "program": None}
        if outcome.action == "failed":
            return {"text": f"**Nothing changed:** {outcome.message}", "program": None}
        return self._record(text, outcome.result, outcome.reading)

    def _record(self, text: str, result, reading=None) -> dict:
        """The reply to an edit: its reading (or its program), the diff; ``reading`` (a
        :class:`assistant.reading.Statement`) also comes back as HTML linking each part to the request's words."""
        self.history.record(result, text)
        self.comparing = None
        said = f"I read that as: {reading.text}." if reading is not None else _program_text(result.program)
        lines = [f"**Done.** {said}", *_diff_lines(result.diff)]
        if "peft_config" in result.extras:
            lines.append("- the equivalent peft `LoraConfig` is under Downloads")
        lines.append("- validated: structure, shapes and dtypes")
        return {"text": "\n".join(lines), "program": {"edits": result.program},
                **({"reading": reading.html(text)} if reading is not None else {})}

    def _what_changed(self) -> dict:
        step = self.step
        if step is None or step.result is None:
            return {"text": "Nothing yet: this is the model as loaded.", "program": None}
        lines = [f"The last edit (\"{step.request}\"): {_program_text(step.program)}", *_diff_lines(step.result.diff)]
        return {"text": "\n".join(lines), "program": {"edits": step.program}}

    # -- history --------------------------------------------------------------------------------

    def undo(self) -> str:
        self.comparing = None
        if self.history is None or self.history.at == 0:
            return "Nothing to undo."
        undone = self.step
        self.history.undo()
        return f"Undone: {_program_text(undone.program)}"

    def redo(self) -> str:
        self.comparing = None
        if self.history is None or self.history.at == len(self.history.steps) - 1:
            return "Nothing to redo."
        self.history.redo()
        return f"Redone: {_program_text(self.step.program)}"

    def reset(self) -> str:
        self.comparing = None
        if not self.history:
            return "Nothing to reset."
        self.history.reset()
        return f"Back to {self.source} as loaded."

    # -- views and files ------------------------------------------------------------------------

    def view(self) -> str:
        """The graph drawn, its last edit coloured (the outline when Graphviz is not installed)."""
        from assistant.ui.graph_view import drawing, render

        if self.graph is None:
            return '<div class="madg">No model loaded.</div>'
        step = self.step
        diff = step.result.diff if step.result else None
        try:
            if self.comparing is not None:  # the other graph, its differences from this one coloured
                found, other = self.comparing
                return drawing(other, self.opened_other, token=self.token, marks_=found.marks(),
                               title=f"{found.b}, coloured where it differs from {found.a}")
            return drawing(step.graph, self.opened, diff, step.report, self.token)
        except MadError as e:  # no Graphviz: the outline, which needs nothing
            return (f'<div class="madg"><div class="status bad">{str(e).splitlines()[0]}; showing the outline</div>'
                    '</div>' + render(step.graph, diff, step.report))

    def toggle(self, box_id: str) -> str:
        """A click on the drawing's box ``box_id``: open or close it, and the new drawing."""
        from assistant.ui.graph_view import toggled

        if self.comparing is not None:
            self.opened_other = toggled(self.opened_other, box_id)
        elif self.graph is not None:
            self.opened = toggled(self.opened, box_id)
        return self.view()

    @serialized
    def compare(self, other: str = "") -> str:
        """Compare the current graph with ``other`` (``hf:mistral``, optionally followed by overrides; the loaded
        model's overrides apply too), or with the graph as loaded when ``other`` is blank; the reply is the
        comparison, and the drawing shows the other graph with the differences coloured."""
        from assistant.compare import compare
        from gnn.exporters.drawing import default_open

        if self.graph is None:
            raise SourceError("load a model first, then compare it with another")
        words = (other or "").split()
        if not words:
            if self.edits == 0:
                raise SourceError("nothing to compare: no edits yet; name a model to compare with, e.g. hf:mistral")
            found = compare(self.history.steps[0].graph, self.graph, f"{self.source} as loaded", "now")
            b = self.graph
        else:
            extra = parse_override_text(" ".join(words[1:]))
            mine = parse_override_text(self.overrides) if words[0].startswith("hf:") else {}
            b = _load(words[0], {**mine, **extra})[0]
            found = compare(self.graph, b, self.source + (" (edited)" if self.edits else ""), words[0])
        self.comparing, self.opened_other = (found, b), default_open(b)
        return "**Comparison** (the drawing shows the second, coloured where it differs)\n\n" + _markdown(found.text())

    def peft_config(self) -> dict | None:
        """The peft LoraConfig of the latest LoRA edit still in the current graph."""
        for step in reversed(self.history.steps[:self.history.at + 1] if self.history else []):
            if step.result is not None and "peft_config" in step.result.extras:
                return step.result.extras["peft_config"]
        return None

    def explorer(self) -> str:
        """A link that opens the current graph in Model Explorer, served on this machine."""
        from assistant.ui import explorer

        return explorer.url(self.download("explorer"))

    def program(self) -> list[dict]:
        """The edits that made the current graph from the one loaded, in order (one program)."""
        steps = self.history.steps[1:self.history.at + 1] if self.history else []
        return [edit for step in steps for edit in step.program]

    @serialized
    def recipe(self):
        """The way back to code for the edits so far (gnn.edits.recipe), proved on the rebuilt model."""
        from assistant.ui import workers

        program = self.program()
        if not program:
            raise SourceError("no edits yet: the snippet and config.json come with an edit")
        return workers.pool().call(workers.recipe, self.history.steps[0].graph, {"edits": program})

    @serialized
    def download(self, what: str) -> pathlib.Path:
        """Write ``what`` (graph, onnx, lora, code, config, conversation) into the session's folder and return its
        path; ``code`` and ``config`` are the recipe of the edits so far, checked before they are written."""

        if what == "conversation":
            path = self.folder / "conversation.json"
            write_text(path, json.dumps({"source": self.source, "messages": self.conversation}, indent=1) + "\n")
            return path
        if self.graph is None:
            raise SourceError("no model loaded yet")
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.graph.name) or "graph"
        if what == "graph":
            return export(self.graph, {"json": self.folder / f"{stem}.json"})[0]
        if what == "onnx":
            return export(self.graph, {"onnx": self.folder / f"{stem}.onnx"})[0]
        if what == "lora":
            config = self.peft_config()
            if config is None:
                raise SourceError("no LoRA in this graph: a LoraConfig comes with an add_lora edit")
            return export(self.graph, {"peft_config": self.folder / "adapter_config.json"},
                          extras={"peft_config": config})[0]
        if what == "explorer":
            return export(self.graph, {"explorer": self.folder / f"{stem}.explorer.json"})[0]
        if what in ("code", "config"):
            made = self.recipe()
            if what == "config":
                if made.config is None:
                    raise SourceError(f"no config.json for these edits: {made.no_config}; the snippet (edit.py) "
                                      "makes them")
                return export(self.graph, {"config": self.folder / "config.json"}, extras={"config": made.config})[0]
            return export(self.graph, {"code": self.folder / "edit.py"}, extras={"code": made.code})[0]
        raise SourceError(f"unknown download `{what}`; choose graph, onnx, lora, code, config, explorer or "
                          "conversation")


def _load(source: str, overrides: dict):
    """``(graph, its validation report)`` of a source, read in a worker process."""
    from assistant.ui import workers

    return workers.pool().call(workers.load, source, overrides)


def _apply(graph: Graph, program):
    from assistant.ui import workers

    return workers.pool().call(workers.apply, graph, program)


def export(graph: Graph, outputs: dict, extras=None) -> list[pathlib.Path]:
    """:func:`gnn.sources.export`, in a worker process."""
    from assistant.ui import workers

    return workers.pool().call(workers.export, graph, outputs, extras)


def _markdown(text: str) -> str:
    """A comparison's text for the chat: its heading lines as paragraphs, its items as bullets."""
    return "\n".join(line if line.startswith("- ") else f"\n{line}" for line in text.splitlines()).strip()


def toggle(args) -> str:
    """The drawing's click handler (a Gradio server function, called with its JavaScript arguments as one list):
    the session named by ``[token, box_id]`` opens or closes the box."""
    token, box_id = (list(args) + ["", ""])[:2] if isinstance(args, (list, tuple)) else (args, "")
    session = _sessions.get(str(token))
    if session is None:
        return '<div class="madg">This session has ended; reload the page.</div>'
    return session.toggle(str(box_id)[:2000])


def _diff_lines(d) -> list[str]:
    """A diff as the chat's bullet lines: parameters and trainable parameters before and after, ops, modules."""
    from gnn.edits.engine import some

    lines = [f"- parameters: {d.params_before:,} → {d.params_after:,} ({d.params_after - d.params_before:+,})",
             f"- trainable: {d.trainable_before:,} → {d.trainable_after:,}",
             f"- ops: +{len(d.added_nodes)} −{len(d.removed_nodes)} ~{len(d.changed_nodes)}"]
    if d.added_composites:
        lines.append(f"- added modules: {some(d.added_composites)}")
    if d.removed_composites:
        lines.append(f"- removed modules: {some(d.removed_composites)}")
    return lines


# the reading's links: each part of the statement and the request words it came from share a colour
READING_CSS = """
.mad-reading { font-size: 0.95em; line-height: 1.6; padding: 6px 10px; }
.mad-reading .mad-request { color: #555; }
.mad-link { padding: 0 2px; border-radius: 3px; }
""" + "".join(f".mad-link-{k}, .mad-link-{k + 6} {{ background: {c}; }}\n" for k, c in enumerate(
    ("#ffe08a", "#b8e0ff", "#c8f0c0", "#ffc8d8", "#e0ccff", "#ffd8b0")))


def _program_text(program: list[dict]) -> str:
    return "`" + json.dumps({"edits": program}, separators=(",", ":")) + "`" if program else "(none)"
