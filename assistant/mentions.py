"""What a request says explicitly: its numbers, the layers it places an edit at, and the parts it names.

Each mention keeps its character span, so a program can be checked against every word that asked
for something, and its reading linked back to those words (issue 20).  Number words go through
``number-parser``; positions are read on the graph's depth (``depth``), so "the top two layers" of
a 4-block model is blocks 2 and 3.

    >>> [(m.kind, m.value) for m in mentions("LoRA r=sixteen on q and v of the top two layers", depth=4)]
    [('number', 16), ('role', 'attn.q'), ('role', 'attn.v'), ('layers', (2, 3))]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_TOKEN = re.compile(r"\d+(?:\.\d+)?|[A-Za-z_]+(?:-[A-Za-z_]+)*|\S")
_BLOCK = {"layer", "layers", "block", "blocks", "decoder", "encoder", "transformer"}
_LAST = {"last", "final", "top", "topmost", "uppermost", "highest"}
_FIRST = {"first", "bottom", "lowest", "initial", "earliest"}
_ALL = {"every", "all", "each"}
_EXCEPT = {"but", "except", "excluding", "apart", "besides", "other"}
_LINK = {"and", ",", "&", "or"}
_RANGE = {"-", "to", "through", "thru", "..", "–"}
_SKIP = {"the", "of", "one", "ones", "two-layer"}  # words that may sit between a position and its noun

# the words people use for each part; a multi-word name is a tuple of tokens
PARTS: dict[str, list[tuple[str, ...]]] = {
    "attn.q": [("q",), ("query",), ("queries",), ("q_proj",), ("wq",), ("to_q",)],
    "attn.k": [("k",), ("key",), ("keys",), ("k_proj",), ("wk",), ("to_k",)],
    "attn.v": [("v",), ("value",), ("values",), ("v_proj",), ("wv",), ("to_v",)],
    "attn.o": [("o",), ("o_proj",), ("out_proj",), ("wo",), ("output", "projection"), ("out", "projection")],
    "attn.qkv": [("c_attn",), ("qkv",), ("qkv_proj",), ("query_key_value",), ("fused", "qkv")],
    "mlp.gate": [("gate",), ("gate_proj",), ("w1",)],
    "mlp.up": [("up",), ("up_proj",), ("c_fc",), ("fc1",), ("w3",)],
    "mlp.down": [("down",), ("down_proj",), ("fc2",), ("w2",)],
    "attn": [("attention",), ("attn",), ("self-attention",), ("self_attn",)],
    "mlp": [("mlp",), ("mlps",), ("ffn",), ("ffns",), ("feed-forward",), ("feedforward",), ("feed", "forward")],
    "embed.positions": [("position", "embedding"), ("position", "embeddings"), ("positional", "embedding"),
                        ("positional", "embeddings"), ("wpe",)],
    "embed.tokens": [("embedding",), ("embeddings",), ("embed_tokens",), ("wte",), ("token", "embedding"),
                     ("token", "embeddings")],
    "lm_head": [("lm_head",), ("lm", "head"), ("output", "head"), ("language", "model", "head")],
    "norm.final": [("final", "norm"), ("final", "layernorm"), ("ln_f",)],
}


@dataclass(frozen=True)
class Mention:
    kind: str  # "number", "layers" (block indices, 0-based, in order) or "role"
    value: Any
    start: int  # the mention's characters in the request: request[start:end]
    end: int


def mentions(request: str, depth: int) -> list[Mention]:
    """Every number, layer position and named part in ``request``, in the order they appear; positions are
    resolved on a stack of ``depth`` blocks (an index past the end stays in, so a check can refuse it)."""
    tokens = [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(request)]
    words = [t[0].lower() for t in tokens]
    out: list[Mention] = []
    used: set[int] = set()
    i = 0
    while i < len(tokens):
        found = _position(words, i, depth) or _part(words, i)
        if found:
            kind, value, j = found
            out.append(Mention(kind, value, tokens[i][1], tokens[j - 1][2]))
            used.update(range(i, j))
            i = j
            continue
        i += 1
    for i, (text, start, end) in enumerate(tokens):
        if i in used:
            continue
        j, value = _number_at(words, i)
        if value is not None and not any(k in used for k in range(i, j)):
            out.append(Mention("number", value, start, tokens[j - 1][2]))
            used.update(range(i, j))
    return sorted(out, key=lambda m: m.start)


def _number_at(words: list[str], i: int) -> tuple[int, int | float | None]:
    """The number starting at token ``i`` (digits, or number words through number-parser) and where it ends."""
    if re.fullmatch(r"\d+(?:\.\d+)?", words[i]):
        return i + 1, float(words[i]) if "." in words[i] else int(words[i])
    from number_parser import parse_number

    best = (i + 1, None)
    for j in range(i + 1, min(len(words), i + 6) + 1):
        if not re.fullmatch(r"[a-z]+(?:-[a-z]+)*", words[j - 1]) or words[i] == "and":
            break
        if words[j - 1] == "and":  # "one hundred and twenty eight": read on past the "and"
            continue
        value = parse_number(" ".join(words[i:j]))
        if value is None:
            break
        best = (j, value)
    return best


def _count(words: list[str], i: int) -> tuple[int, int | None]:
    """A count right at ``i`` ("two", "3"), else none."""
    if i >= len(words) or words[i] in ("a", "an"):
        return i, None
    j, value = _number_at(words, i)
    return (j, value) if isinstance(value, int) else (i, None)


def _noun(words: list[str], i: int) -> int | None:
    """Where a block noun ("layers", "decoder blocks") ends, if one starts at ``i`` after skippable words."""
    while i < len(words) and words[i] in _SKIP:
        i += 1
    if i < len(words) and words[i] in _BLOCK:
        while i < len(words) and words[i] in _BLOCK:
            i += 1
        return i
    return None


def _position(words: list[str], i: int, depth: int) -> tuple[str, Any, int] | None:
    w = words[i]
    # "layers 0 and 2", "block 3", "layers 1-3", "layers 0, 1 and 3"
    if w in _BLOCK:
        k = i
        while k < len(words) and words[k] in _BLOCK:
            k += 1
        indices, j = _index_list(words, k)
        if indices:
            return "layers", tuple(indices), j
    # "the last layer", "the top two blocks", "final 3 layers", "the first three"
    if w in _LAST or w in _FIRST:
        j, n = _count(words, i + 1)
        end = _noun(words, j)
        if end is None and n is None:
            return None
        n = n or 1
        picked = list(range(depth - n, depth)) if w in _LAST else list(range(n))
        return "layers", tuple(p for p in picked if p >= 0), end or j
    # "second-to-last", "penultimate", "second last layer"
    if w in ("penultimate", "second-to-last", "next-to-last") or (w == "second" and i + 1 < len(words)
                                                                    and words[i + 1] in _LAST):
        j = i + 1 if w != "second" else i + 2
        return "layers", (depth - 2,), _noun(words, j) or j
    # "the third layer", "2nd block"
    ordinal = _ordinal(w)
    if ordinal is not None:
        end = _noun(words, i + 1)
        if end is not None:
            return "layers", (ordinal - 1,), end
    # "every layer", "all blocks", "all but the last", "every layer except the first two"
    if w in _ALL:
        end = _noun(words, i + 1)
        k = end if end is not None else i + 1
        if k < len(words) and words[k] in _EXCEPT:
            k += 1
            while k < len(words) and words[k] in ("the", "for", "from", "than", "of"):
                k += 1
            if k < len(words) and (words[k] in _LAST or words[k] in _FIRST):
                side = words[k]
                j, n = _count(words, k + 1)
                n = n or 1
                cut = set(range(depth - n, depth)) if side in _LAST else set(range(n))
                j = _noun(words, j) or j
                return "layers", tuple(p for p in range(depth) if p not in cut), j
        if end is not None:
            return "layers", tuple(range(depth)), end
    return None


def _ordinal(word: str) -> int | None:
    """1 for "1st", 3 for "third" (number-parser), else None."""
    match = re.fullmatch(r"(\d+)(?:st|nd|rd|th)", word)
    if match:
        return int(match.group(1))
    if not re.fullmatch(r"[a-z]+", word):
        return None
    from number_parser import parse_number, parse_ordinal

    return parse_ordinal(word) if parse_number(word) is None else None  # "one" is a count, not a place


def _index_list(words: list[str], i: int) -> tuple[list[int], int]:
    """Block indices listed from ``i``: "0 and 2", "1-3", "0, 1 and 3"; and where the list ends."""
    indices: list[int] = []
    j = i
    while j < len(words):
        k, value = _count(words, j)
        if value is None:
            break
        if k < len(words) and words[k] in _RANGE:
            k2, last = _count(words, k + 1)
            if last is not None:
                indices += list(range(value, last + 1))
                j = k2
            else:
                indices.append(value)
                j = k
        else:
            indices.append(value)
            j = k
        if j < len(words) and words[j] in _LINK and j + 1 < len(words) and _count(words, j + 1)[1] is not None:
            j += 1
            continue
        if j + 1 < len(words) and words[j] == "," and words[j + 1] == "and":
            j += 2
            continue
        break
    return indices, j


# everyday words that name a part only beside a projection word or another part ("gate, up and down
# projections"; not "set up LoRA", "scale down")
_AMBIGUOUS = {"up", "down", "gate", "o", "out", "output"}
_PROJECTION = {"proj", "projection", "projections", "matrix", "matrices", "weights", "layer", "layers", "linear"}


def _part(words: list[str], i: int) -> tuple[str, str, int] | None:
    """The longest part name starting at ``i``."""
    best = None
    for role, names in PARTS.items():
        for name in names:
            n = len(name)
            if tuple(words[i:i + n]) == name and (best is None or n > best[2] - i):
                best = ("role", role, i + n)
    if best and best[2] == i + 1 and words[i] in _AMBIGUOUS and not _beside_part(words, i):
        return None
    return best


def _beside_part(words: list[str], i: int) -> bool:
    def near(k: int, step: int) -> str | None:
        while 0 <= k < len(words) and words[k] in (",", "and", "/", "&", "or"):
            k += step
        return words[k] if 0 <= k < len(words) else None

    single = {name[0] for names in PARTS.values() for name in names if len(name) == 1}
    return any(w is not None and (w in _PROJECTION or w in single) for w in (near(i - 1, -1), near(i + 1, 1)))
