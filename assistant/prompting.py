"""The prompts the language model gets: the graph's outline, the methods retrieval names, the request.

Texts live in ``prompts/`` (``edit.md`` the system prompt, ``edit_user.md`` the request turn,
``retry.md`` the turn after the engine refused an answer, ``clarify.md`` the question back when
a request says too little); this module fills them in.
"""

from __future__ import annotations

import functools
import json
import pathlib

from assistant.facts import Facts

PROMPTS = pathlib.Path(__file__).resolve().parents[1] / "prompts"
MIN_METHOD_SCORE = 0.45


def outline(f: Facts) -> str:
    """The graph's facts on one line, the way every prompt shows them."""
    parts = [f.name, f.kind or "unknown kind", f"{f.layers} blocks (layers 0 to {max(f.layers - 1, 0)})"]
    if f.hidden:
        parts.append(f"width {f.hidden}")
    if f.heads:
        parts.append(f"{f.heads} heads, {f.kv_heads} kv heads" + (", fused qkv" if f.fused_qkv else ""))
    if f.norm:
        parts.append(f"{f.norm} {f.norm_position or ''}".strip())
    if f.activation:
        parts.append(f.activation + (" gated mlp" if f.gated_mlp else " mlp"))
    if f.positions:
        parts.append(f"{f.positions} positions")
    if f.lora:
        parts.append("has LoRA")
    return " | ".join(parts)


@functools.lru_cache(maxsize=4096)  # a request's prompt is built again on a retry, and per example in training
def methods_text(request: str, k: int = 2) -> str:
    from assistant.retrieval import search

    lines = []
    for hit in search(request, k):
        if hit.score < MIN_METHOD_SCORE:
            continue
        e = hit.entry
        can = json.dumps(e["program"]["edits"], separators=(",", ":")) if e["program"] else f"no edit: {e['engine_note']}"
        lines.append(f"{e['name']} -> {can}")
    return "; ".join(lines) or "none named"


@functools.cache
def prompt(name: str) -> str:
    """The text of ``prompts/<name>``."""
    return (PROMPTS / name).read_text().strip()


@functools.cache  # compiled once: every request, retry and training example renders these
def _template(name: str):
    import jinja2

    return jinja2.Template(prompt(name), undefined=jinja2.StrictUndefined, keep_trailing_newline=False)


def render(name: str, **values) -> str:
    """``prompts/<name>`` as a Jinja template filled with ``values``; a value the template names and
    ``values`` lacks is an error, not an empty string."""
    return _template(name).render(**values)


# the order the system prompt lists the edits in; an edit registered later follows them
OPS_ORDER = ("add_lora", "remove_layers", "insert_layers", "replace_activation", "replace_norm", "set_kv_heads",
             "insert_adapter", "add_dropout", "freeze", "unfreeze")


def ops_text() -> str:
    """The edits the engine has, with the parameters the prompt names: ``add_lora (r, alpha, dropout), ...``,
    read off the edit registry (:data:`gnn.edits.EDITS`)."""
    from gnn.edits import EDITS

    parts = []
    for op in sorted(EDITS, key=lambda o: (OPS_ORDER.index(o) if o in OPS_ORDER else len(OPS_ORDER), o)):
        cls = EDITS[op]
        named = [f"{p}: {' or '.join(cls.choices[p])}" if p in cls.choices else p for p in cls.prompt_params]
        inner = ", ".join(named) + (f"; {cls.prompt_note}" if cls.prompt_note else "")
        parts.append(f"{op} ({inner})" if inner else op)
    return ", ".join(parts)


@functools.cache
def system_prompt() -> str:
    return render("edit.md", ops=ops_text())


def messages(f: Facts, request: str, graph_placeholder: str = "", error: str | None = None,
             previous: str | None = None) -> list[dict]:
    user = render("edit_user.md", outline=outline(f), graph=graph_placeholder or "(not shown)",
                  methods=methods_text(request), request=request)
    out = [{"role": "system", "content": system_prompt()}, {"role": "user", "content": user}]
    if error is not None:
        out += [{"role": "assistant", "content": previous or ""},
                {"role": "user", "content": render("retry.md", error=error)}]
    return out
