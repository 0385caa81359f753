"""What a request says explicitly: its numbers, the layers it places an edit at, the parts it names, the
activations, norms and methods it names, the numbers it ties to a setting ("rank 16", ``lora_alpha=32``),
and the words that give a change its direction ("instead of", "back to").

Each mention keeps its character span, so a program can be checked against every word that asked
for something, and its reading linked back to those words (issue 20).  Number words go through
``number-parser``; positions are read on the graph's depth (``depth``), so "the top two layers" of
a 4-block model is blocks 2 and 3.

    >>> [(m.kind, m.value) for m in mentions("LoRA r=sixteen on q and v of the top two layers", depth=4)]
    [('method', 'lora'), ('param', ('r', 16)), ('role', 'attn.q'), ('role', 'attn.v'), ('layers', (2, 3))]
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

_NUMBER = r"(?:\d+(?:\.\d+)?|(?<![\w.])\.\d+)(?:e-?\d+)?"  # "16", "0.05", ".1", "1e-5"
_TOKEN = re.compile(r"\d+(?:st|nd|rd|th)\b|" + _NUMBER + r"|[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z_][A-Za-z0-9_]*)*|->|=>|\S")
_BLOCK = {"layer", "layers", "block", "blocks", "decoder", "encoder", "transformer", "index", "layers_to_transform"}
_LAST = {"last", "final", "top", "topmost", "uppermost", "highest"}
_FIRST = {"first", "bottom", "lowest", "initial", "earliest"}
_ALL = {"every", "all", "each", "everywhere"}
_EXCEPT = {"but", "except", "excluding", "apart", "besides", "other"}
_LINK = {"and", ",", "&", "or"}
_RANGE = {"-", "to", "through", "thru", "..", "–"}
# words that may sit between a position and its noun ("the last remaining block")
_FRACTION = {"half": 0.5, "quarter": 0.25, "fifth": 0.2, "tenth": 0.1}
_SKIP = {"the", "of", "one", "ones", "two-layer", "remaining", "existing", "original", "current", "new"}

# the words people use for each part; a multi-word name is a tuple of tokens
PARTS: dict[str, list[tuple[str, ...]]] = {
    "attn.q": [("q",), ("query",), ("queries",), ("q_proj",), ("wq",), ("to_q",)],
    "attn.k": [("k",), ("key",), ("keys",), ("k_proj",), ("wk",), ("to_k",)],
    "attn.v": [("v",), ("value",), ("values",), ("v_proj",), ("wv",), ("to_v",)],
    "attn.o": [("o",), ("o_proj",), ("out_proj",), ("wo",), ("output", "projection"), ("out", "projection"),
               ("attn", ".", "c_proj"), ("attn", "c_proj"), ("attention", "output"), ("attention", "c_proj"),
               ("attention", "'", "s", "c_proj"), ("attn", "'", "s", "c_proj"), ("output-projection",),
               ("output",), ("out",)],  # alone only in a list of q, k and v ("query, key, value and the output")
    "attn.qkv": [("c_attn",), ("qkv",), ("qkv_proj",), ("query_key_value",), ("fused", "qkv")],
    "mlp.gate": [("gate",), ("gate_proj",), ("w1",), ("gate-projection",)],
    "mlp.up": [("up",), ("up_proj",), ("c_fc",), ("fc1",), ("w3",), ("mlp", ".", "c_fc"), ("up-projection",)],
    "mlp.down": [("down",), ("down_proj",), ("fc2",), ("w2",), ("mlp", ".", "c_proj"), ("mlp", "c_proj"),
                 ("mlp", "'", "s", "c_proj"), ("down-projection",)],
    "attn": [("attention",), ("attn",), ("self-attention",), ("self_attn",)],
    "mlp": [("mlp",), ("mlps",), ("ffn",), ("ffns",), ("feed-forward",), ("feedforward",), ("feed", "forward")],
    "embed.positions": [("position", "embedding"), ("position", "embeddings"), ("positional", "embedding"),
                        ("positional", "embeddings"), ("wpe",)],
    "embed.tokens": [("embedding",), ("embeddings",), ("embed_tokens",), ("wte",), ("token", "embedding"),
                     ("token", "embeddings")],
    "lm_head": [("lm_head",), ("lm", "head"), ("output", "head"), ("language", "model", "head")],
    "norm.final": [("final", "norm"), ("final", "layernorm"), ("final", "layer", "norm"), ("ln_f",), ("model", ".", "norm"),
                   ("final", "ln"), ("final", "rmsnorm"), ("last", "norm"), ("final", "normalization")],
    "norm.attn": [("input_layernorm",), ("ln_1",), ("attention", "norm"), ("attention", "norms"),
                  ("pre-attention", "norm"), ("attn", "norm"),
                  ("pre-attention", "norms"), ("pre-attention", "layernorms"), ("pre-attention", "rmsnorms")],
    "norm.mlp": [("post_attention_layernorm",), ("ln_2",), ("mlp", "norm"), ("mlp", "norms"), ("ffn", "norm"),
                 ("pre-mlp", "norm"), ("pre-mlp", "norms"), ("post-attention", "norm"), ("post-attention", "norms")],
}

# activations as requests name them (transformers' ACT2CLS names are recognised as themselves too)
ACTIVATION_NAMES: dict[str, list[tuple[str, ...]]] = {
    "silu": [("swish",), ("silu",), ("sigmoid", "linear", "unit"), ("silu", "/", "swish")],
    "gelu": [("gelu",), ("exact", "gelu"), ("erf", "gelu"), ("erf-based", "gelu"), ("plain", "gelu"),
             ("nn", ".", "gelu"), ("gelu", "(", ")")],
    "gelu_new": [("gelu_new",), ("new", "gelu"), ("newgelu",), ("newgeluactivation",), ("tanh", "gelu"),
                 ("gelu", "tanh"), ("tanh-approximated", "gelu"), ("tanh-approximate", "gelu"),
                 ("approximate", "gelu"), ("gelu", "with", "tanh"), ("gelu", "(", "tanh", "approximation", ")"),
                 ("tanh", "approximation", "of", "gelu"), ("gelu-tanh",), ("openai", "gelu")],
    "gelu_pytorch_tanh": [("gelu_pytorch_tanh",), ("pytorch", "tanh", "gelu"), ("pytorch", "gelu", "tanh"),
                          ("gelu", "(", "approximate"), ("pytorchgelutanh",), ("gelu_tanh",),
                          ("pytorch", "tanh", "approximation", "of", "gelu"), ("pytorch", "tanh", "approximation"),
                          ("pytorch", "'", "s", "tanh", "gelu")],
    "relu": [("relu",), ("plain", "relu")],
    "relu2": [("relu2",), ("squared", "relu"), ("relu", "squared"), ("relu", "^", "2"), ("relu", "²"),
              ("relu-squared",)],
    "mish": [("mish",)],
    "linear": [("identity",), ("identity", "function"), ("no", "activation"), ("nn", ".", "identity")],
    "quick_gelu": [("quick_gelu",), ("quick", "gelu"), ("quickgelu",)],
    "leaky_relu": [("leaky_relu",), ("leaky", "relu"), ("leakyrelu",), ("leaky-relu",)],
    "gelu_fast": [("gelu_fast",), ("fast", "gelu")],
    "tanh": [("tanh",)],
    "sigmoid": [("sigmoid",)],
    "hardswish": [("hardswish",), ("hard", "swish"), ("hard-swish",)],
    "relu6": [("relu6",)],
    "prelu": [("prelu",)],
}

NORM_NAMES: dict[str, list[tuple[str, ...]]] = {
    "rmsnorm": [("rmsnorm",), ("rms", "norm"), ("rms_norm",), ("rms", "normalization"), ("rms", "normalisation"),
                ("llamarmsnorm",), ("root", "mean", "square"), ("root-mean-square",), ("rms-norm",), ("rms",),
                ("rmsnorms",), ("t5layernorm",)],
    "layernorm": [("layernorm",), ("layer", "norm"), ("layer_norm",), ("layer", "normalization"),
                  ("layer", "normalisation"), ("layer-norm",), ("layernorms",), ("nn", ".", "layernorm"),
                  ("standard", "layernorm"), ("ln",), ("ln_",)],
}

# words that name a method (an edit) or the change itself
METHODS: dict[str, list[tuple[str, ...]]] = {
    "lora": [("add_lora",), ("lora",), ("loras",), ("low-rank",), ("low", "rank"), ("loraconfig",), ("lora_config",),
             ("get_peft_model",), ("peft",), ("lora-adapters",)],
    "adapter": [("insert_adapter",), ("adapter",), ("adapters",), ("adaptor",), ("adaptors",), ("houlsby",), ("pfeiffer",), ("bottleneck",),
                ("bottlenecks",),
                ("adapter-style",), ("adapter", "layers")],
    "dropout": [("add_dropout",), ("dropout",), ("dropouts",), ("nn", ".", "dropout")],
    "freeze": [("freeze",), ("freezes",), ("frozen",), ("freezing",), ("requires_grad", "=", "false"),
               ("requires_grad_", "(", "false"), ("non-trainable",), ("not", "trainable"), ("untrainable",),
               ("lock",), ("locked",), ("stop", "gradients"), ("einfrieren",), ("stay", "fixed"), ("stays", "fixed"),
               ("keep", "fixed"), ("kept", "fixed"), ("stay", "frozen"), ("remain", "fixed"), ("no", "gradients"),
               ("no", "gradient"), ("not", "be", "trained"), ("not", "updated"), ("not", "be", "updated")],
    "unfreeze": [("unfreeze",), ("unfrozen",), ("unfreezing",), ("thaw",), ("trainable",), ("requires_grad", "=", "true"),
                 ("requires_grad_", "(", "true"), ("only", "train"), ("train", "only"), ("keep", "training"),
                 ("fine-tune", "only"), ("only", "fine-tune"), ("finetune", "only"), ("only", "finetune"),
                 ("tune", "only"), ("only", "tune"), ("only", "update"), ("update", "only")],
    "remove": [("remove_layers",), ("remove",), ("removing",), ("del",), ("rm",), ("take", "off"), ("drop",), ("dropping",), ("delete",), ("deleting",), ("cut",), ("prune",),
               ("strip",), ("chop",), ("discard",), ("lop",), ("pop",), ("ditch",), ("truncate",), ("get", "rid", "of"),
               ("shave",), ("shorten",), ("shallower",), ("fewer",), ("eliminate",), ("take", "out"), ("throw", "away"),
               ("trim",), ("kill",), ("lose",), ("rip", "out")],
    "insert": [("insert_layers",), ("insert",), ("inserting",), ("append",), ("stack",), ("duplicate",), ("deepen",), ("deeper",),
               ("grow",), ("extend",), ("more",), ("extra",), ("another",), ("additional",), ("clone",), ("repeat",),
               ("copy",), ("add",), ("adding",), ("new",), ("put",)],
    "kv": [("set_kv_heads",), ("gqa",), ("mqa",), ("mha",), ("multi-query",), ("multiquery",), ("multi", "query"), ("grouped-query",),
           ("grouped", "query"), ("multi-head", "attention"), ("multihead", "attention"), ("multi", "head", "attention"),
           ("kv", "heads"), ("kv", "head"), ("key", "/", "value", "heads"), ("key", "/", "value", "head"),
           ("key-value", "heads"), ("key-value", "head"), ("kv-heads",), ("kv_heads",), ("num_key_value_heads",),
           ("n_kv_heads",), ("num_kv_heads",), ("multi_query",), ("kv", "groups"), ("key", "and", "value", "heads"),
           ("shared", "kv"), ("share", "kv"), ("key", "and", "value", "head"), ("k", "/", "v", "head"),
           ("k", "/", "v", "heads"), ("kv", "head"), ("key/value", "heads"), ("key/value", "head"),
           ("undo", "the", "grouping"), ("ungroup",), ("grouped-query", "attention"), ("multi-query", "attention")],
    "activation": [("activation",), ("activations",), ("act_fn",), ("hidden_act",), ("activation_function",),
                   ("nonlinearity",), ("non-linearity",), ("nonlinearities",), ("activation", "function")],
    "norm": [("norm",), ("norms",), ("normalization",), ("normalisation",), ("normalization", "layers"),
             ("norm", "layers")],
}

# what the engine cannot build, as requests name it, and how a refusal names it
UNSUPPORTED: dict[str, list[tuple[str, ...]]] = {
    "quantization": [("quantize",), ("int8-quantize",), ("int4-quantize",), ("quantized",), ("quantizing",), ("quantise",), ("quantization",), ("quantisation",), ("quantized",), ("int8",),
                     ("int4",), ("4-bit",), ("8-bit",), ("4bit",), ("8bit",), ("bitsandbytes",), ("gptq",), ("awq",),
                     ("qlora",), ("fp8",), ("nf4",), ("load_in_4bit",), ("load_in_8bit",)],
    "mixture of experts": [("moe",), ("mixture", "of", "experts"), ("mixture-of-experts",), ("experts",),
                           ("expert", "layers"), ("switch", "transformer")],
    "Mamba or state-space blocks": [("mamba",), ("ssm",), ("state", "space"), ("state-space",), ("rwkv",),
                                    ("s4",), ("hyena",)],
    "BatchNorm": [("batchnorm",), ("batch", "norm"), ("batch", "normalization"), ("batch", "normalisation"),
                  ("batchnorm1d",), ("bn",)],
    "changing the hidden size": [("hidden", "size"), ("hidden_size",), ("n_embd",), ("d_model",), ("wider",),
                                 ("narrower",), ("intermediate_size",), ("embedding", "dim")],
    "training settings (learning rate, optimizer, epochs)": [("learning", "rate"), ("lr",), ("optimizer",),
                                                              ("epochs",), ("weight", "decay"), ("warmup",)],
    "pruning heads or widths": [("prune", "heads"), ("head", "pruning"), ("prune", "attention", "heads"),
                                ("remove", "heads"), ("fewer", "heads"),
                                ("magnitude", "pruning"), ("pruning",), ("mlp", "width"), ("ffn", "width"),
                                ("intermediate", "size")],
    "position encodings (RoPE, ALiBi)": [("alibi",), ("rope",), ("rotary",), ("rope_theta",), ("rope_scaling",)],
    "attention kernels (flash, sliding window)": [("flash", "attention"), ("flash-attention",), ("flash_attention",),
                                                  ("sliding", "window"), ("sliding-window",), ("sliding_window",),
                                                  ("attn_implementation",), ("flash_attention_2",), ("sdpa",)],
    "tying or untying weights": [("tie",), ("tied",), ("tie_word_embeddings",), ("weight", "tying"), ("untie",)],
    "other PEFT methods (prefix or prompt tuning, IA3, DoRA)": [("prefix", "tuning"), ("prompt", "tuning"),
                                                                ("prefix-tuning",), ("ia3",), ("dora",), ("p-tuning",),
                                                                ("use_dora",), ("adalora",), ("loha",), ("lokr",)],
    "gated activations (SwiGLU, GeGLU)": [("swiglu",), ("geglu",), ("reglu",)],
    "distillation": [("distill",), ("distillation",), ("distil",)],
    "changing the vocabulary": [("resize_token_embeddings",), ("add_tokens",), ("vocab_size",), ("vocabulary",),
                                ("new", "tokens")],
}

# words that give a change its direction: "B instead of A" (the first name is the new one), "back to B"
DIRECTION: dict[str, list[tuple[str, ...]]] = {
    "instead": [("instead", "of"), ("in", "place", "of"), ("rather", "than"), ("in", "lieu", "of")],
    "back": [("back", "to"), ("revert", "to"), ("restore",)],
    "to": [("->",), ("=>",), ("→",), ("with",), ("to",), ("into",), ("for",), ("by",)],
}

# numbers tied to a setting by the word before them ("rank 16", "lora_alpha=32", "p=0.1") or after them ("2 KV
# heads", "a 16-dim bottleneck"), and the setting each names
SETTINGS: dict[str, set[str]] = {
    "r": {"r", "rank", "lora_r", "lora_rank", "ranks"},
    "alpha": {"alpha", "lora_alpha", "α", "scaling"},
    "lora_dropout": {"lora_dropout"},
    "p": {"dropout", "p", "probability", "prob", "rate", "dropout_rate", "dropout_prob", "hidden_dropout",
          "attn_pdrop", "resid_pdrop", "embd_pdrop", "drop"},
    "bottleneck": {"bottleneck", "adapter_size", "bottleneck_size", "bottleneck_dim", "size", "dim", "dimension",
                   "width", "hidden", "reduction_dim"},
    "reduction": {"reduction", "reduction_factor", "factor"},
    "kv_heads": {"kv", "num_key_value_heads", "n_kv_heads", "num_kv_heads", "kv_heads", "n_head_kv",
                 "multi_query_group_num", "groups", "group"},
    "depth": {"num_hidden_layers", "n_layer", "n_layers", "num_layers", "depth"},
    "heads": {"num_attention_heads", "n_head", "n_heads", "num_heads"},  # the query heads: kept, never changed
    "eps": {"eps", "epsilon", "layer_norm_epsilon", "rms_norm_eps", "layer_norm_eps", "norm_eps"},
}
_AFTER = {"r": {"rank"}, "p": {"dropout"}, "bottleneck": {"dim", "dimensional", "d", "bottleneck", "wide"},
          "kv_heads": {"kv", "groups", "kv-heads", "key-value"}}
_SKIP_SETTING = {"=", ":", "of", "to", "is", "a", "an", "the", "with", "at", "set", "-", "(", "'", '"', "about",
                 "around", "equal", "equals", "be", "as", "value", "=>", "->", "just", "only"}


@dataclass(frozen=True)
class Mention:
    kind: str  # number, layers (block indices, 0-based, in order), role, activation, norm, method, unsupported,
    # direction, param (value: (setting, number)) or count (a number of blocks: "two more layers")
    value: Any
    start: int  # the mention's characters in the request: request[start:end]
    end: int


def mentions(request: str, depth: int) -> list[Mention]:
    """Every number, layer position and named part in ``request``, in the order they appear; positions are
    resolved on a stack of ``depth`` blocks (an index past the end stays in, so a check can refuse it)."""
    tokens = [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(request)]
    words = [_spelt(t[0].lower()) for t in tokens]
    out: list[Mention] = []
    used: set[int] = set()
    # "layer 2 (1-indexed)": the indices a request writes count from one
    shift = 1 if re.search(r"\b1[- ]?(indexed|based)\b|\bcounting from (one|1)\b", request, re.IGNORECASE) else 0
    i = 0
    while i < len(tokens):
        found = _position(words, i, depth) or _phrase(words, i)
        if found:
            kind, value, j = found
            if kind == "indices":
                kind, value = "layers", tuple(v - shift for v in value)
            out.append(Mention(kind, value, tokens[i][1], tokens[j - 1][2]))
            used.update(range(i, j))
            i = j
            continue
        i += 1
    for i, (text, start, end) in enumerate(tokens):
        if i in used:
            continue
        short = re.fullmatch(r"(l|layer|block|h)(\d+)", words[i])
        if short and int(short.group(2)) < max(depth, 1) * 4:  # "lora r4 qv L3": shorthand for layer 3
            out.append(Mention("layers", (int(short.group(2)),), start, end))
            used.add(i)
            continue
        if re.fullmatch(r"[qkvo]{2,4}", words[i]) and len(set(words[i])) == len(words[i]) and words[i] not in (
                "kv", "qkv", "ok"):  # "qv", "qkvo": the projections by their letters
            out += [Mention("role", f"attn.{c}", start, end) for c in words[i]]
            used.add(i)
            continue
        rank = re.fullmatch(r"(r|alpha)(\d+)", words[i])
        if rank:  # "LoRA r16 alpha32": peft's keywords run into their values
            out.append(Mention("param", (rank.group(1), int(rank.group(2))), start, end))
            used.add(i)
            continue
        if words[i].isdigit() and ((i and words[i - 1] == "step") or (words[i + 1:i + 2] == [")"]
                                                                      and not _opened(words, i))):
            used.add(i)  # "Step 1:", "1) ... 2) ...": a list's markers
            continue
        if words[i] in ("0", "1") and words[i + 1:i + 3] in (["-", "indexed"], ["-", "based"]):
            used.update(range(i, i + 3))  # "(0-indexed)": how positions count, not a setting
            continue
        j, value = _number_at(words, i)
        if value is not None and j < len(words) and words[j] in ("percent", "%", "pct"):
            value, j = value / 100, j + 1
        if value is not None and not any(k in used for k in range(i, j)):
            setting, first, last = _setting(words, i, j)
            if setting and setting != "count" and words[last:last + 1] in (["->"], ["=>"], ["→"], ["to"]):
                k, later = _number_at(words, last + 1) if last + 1 < len(words) else (last, None)
                if later is not None:  # "n_layer 4 -> 2", "rank 8 to 16": the value it goes to
                    value, last = later, k
                    used.update(range(first, last))
            if setting:
                out.append(Mention("param", (setting, value), tokens[first][1], tokens[last - 1][2]))
                used.update(range(first, last))
            else:
                out.append(Mention("number", value, start, tokens[j - 1][2]))
                used.update(range(i, j))
    # "both embeddings": the token and the position table
    for k, m in enumerate(list(out)):
        if m.kind == "role" and m.value == "embed.tokens" and re.search(r"\b(both|all)\s+(the\s+)?$",
                                                                         request[:m.start].lower()):
            out.append(Mention("role", "embed.positions", m.start, m.end))
    # a setting named twice is one mention ("rank" read with its number takes the word along)
    out = [m for m in out if not (m.kind != "param" and any(o.kind == "param" and o.start <= m.start < o.end
                                                              for o in out))]
    return sorted(out, key=lambda m: m.start)


def _opened(words: list[str], i: int) -> bool:
    """Whether token ``i`` sits inside parentheses opened before it ("(layers 1 and 2)")."""
    depth = 0
    for w in words[:i]:
        depth += (w == "(") - (w == ")")
    return depth > 0


def _setting(words: list[str], i: int, j: int) -> tuple[str | None, int, int]:
    """The setting the number at tokens ``i:j`` is tied to, and the tokens the mention spans (keyword included):
    a keyword up to four tokens before it ("rank of 16", "lora_alpha=32"), else right after it ("2 KV heads",
    "16-dim", "three more layers": a count of blocks)."""
    k = i - 1
    while k >= 0 and i - k <= 4 and words[k] in _SKIP_SETTING:
        k -= 1
    if k >= 0 and i - k <= 4:
        for setting, keys in SETTINGS.items():
            if words[k] in keys and not (words[k] == "size" and k > 0 and words[k - 1] in ("hidden", "embedding")):
                return setting, k, j
    m = j
    while m < len(words) and words[m] in ("-", "more", "extra", "new", "additional", "fewer", "x"):
        m += 1
    if m < len(words):
        for setting, keys in _AFTER.items():
            if words[m] in keys:
                end = m + 2 if setting == "kv_heads" and words[m + 1:m + 2] in (["heads"], ["head"]) else m + 1
                return setting, i, end
        if words[m] in ("key", "key/value") and "heads" in words[m:m + 4] or words[m] == "heads" and m > j:
            return "kv_heads", i, m + 1
        if words[m] in _BLOCK:
            return "count", i, m + 1
    return None, i, j


def _number_at(words: list[str], i: int) -> tuple[int, int | float | None]:
    """The number starting at token ``i`` (digits, or number words through number-parser) and where it ends."""
    if words[i] in ("twice", "thrice"):
        return i + 1, 2 if words[i] == "twice" else 3
    if words[i] in ("one", "a") and words[i + 1:i + 2] and words[i + 1] in _FRACTION:  # "a dropout of one half"
        return i + 2, _FRACTION[words[i + 1]]
    if re.fullmatch(_NUMBER, words[i]):
        return i + 1, float(words[i]) if "." in words[i] or "e" in words[i] else int(words[i])
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
        if i < len(words) and words[i] in ("norm", "norms", "normalization", "normalisation", "normalizations"):
            return None  # "all the layer norms": the norms, not every layer
        return i
    return None


def _position(words: list[str], i: int, depth: int) -> tuple[str, Any, int] | None:
    w = words[i]
    # Python's slices of the block list: "model.layers[:2]", "transformer.h[-2:]"
    if (w in _BLOCK or w == "h") and words[i + 1:i + 2] == ["["]:
        cut = _slice(words, i + 2, depth)
        if cut is not None:
            return "layers", cut[0], cut[1]
    # "layers 0 and 2", "block 3", "layers 1-3", "layers 0, 1 and 3"
    if w in _BLOCK or (w == "h" and i + 2 < len(words) and words[i + 1] == "." and words[i + 2].isdigit()):
        k = i + 1
        while k < len(words) and (words[k] in _BLOCK or words[k] in (".", "=", "[", "(", ":", "number", "no", "nr",
                                                                      "#", "num", "idx")):
            k += 1
        indices, j = _index_list(words, k, depth)
        if j < len(words) and words[j] in ("]", ")"):
            j += 1
        if indices:
            return "indices", tuple(indices), j
        # "the block that is now last", "the layer which is first now"
        rest = words[k:k + 6]
        if rest[:1] in (["that"], ["which"]) and rest[1:2] in (["is"], ["'"]):
            m = k + 2 + (rest[1:2] == ["'"])
            while m < len(words) and words[m] in ("now", "the", "s"):
                m += 1
            if m < len(words) and (words[m] in _LAST or words[m] in _FIRST):
                return "layers", (depth - 1,) if words[m] in _LAST else (0,), m + 1 + (words[m + 1:m + 2] == ["now"])
    # "the first half of the blocks", "the top half"
    if w in _LAST | _FIRST | {"second", "upper", "lower"} and words[i + 1:i + 2] == ["half"]:
        end = _noun(words, i + 2) or i + 2
        top = w in _LAST or w in ("second", "upper")
        return "layers", tuple(range(depth // 2, depth) if top else range(depth // 2)), end
    # "the last layer", "the top two blocks", "final 3 layers", "the first three"
    if w in _LAST or w in _FIRST:
        j, n = _count(words, i + 1)
        end = _noun(words, j)
        k = j + 1 + (words[j + 1:j + 2] == ["the"])
        if end is None and words[j:j + 1] in (["and"], ["&"], [","]) and k < len(words) and (
                words[k] in _LAST or words[k] in _FIRST) and words[k] != w:
            other = _position(words, k, depth)  # "the first and the last layer": one noun for both
            if other and other[0] == "layers" and (_noun(words, _count(words, k + 1)[0]) is not None or
                                                   words[k + 1:k + 2] in (["one"], ["ones"])):  # "... the last one"
                n = n or 1
                mine = range(depth - n, depth) if w in _LAST else range(n)
                return "layers", tuple(sorted(set(mine) | set(other[1]))), other[2]
        if end is None and n is None:
            return None
        n = n or 1
        picked = list(range(depth - n, depth)) if w in _LAST else list(range(n))
        return "layers", tuple(picked), end or j  # more than there are: kept, for the reading to refuse
    if w == "middle" and words[i + 1:i + 2] in (["two"], ["2"]):
        end = _noun(words, i + 2) or (i + 2 if i + 2 >= len(words) or not words[i + 2].isalnum() else None)
        if end is not None:
            return "layers", (depth // 2 - 1, depth // 2), end
    # "the middle one", "the middle block", "the two middle blocks"
    if w == "middle" and (i + 1 >= len(words) or words[i + 1] in _BLOCK or words[i + 1] in ("one", "ones")):
        j = i + 1 + (i + 1 < len(words))
        middle = (depth // 2,) if depth % 2 else (depth // 2 - 1, depth // 2)
        return "layers", middle, _noun(words, i + 1) or j
    if w in ("two", "2") and i + 1 < len(words) and words[i + 1] == "middle":
        end = _noun(words, i + 2)
        if end is not None:
            return "layers", (depth // 2 - 1, depth // 2), end
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
    # "every other block, starting with block 1", "alternate layers", "the odd-numbered layers"
    step = None
    if w == "every" and words[i + 1:i + 2] in (["other"], ["second"], ["2nd"], ["alternate"]):
        step = i + 2
    elif w in ("alternate", "alternating"):
        step = i + 1
    if step is not None and _noun(words, step) is not None:
        end = _noun(words, step)
        start = 0
        tail = words[end:end + 7]
        for at in range(len(tail)):
            if tail[at] in ("starting", "start", "beginning", "from") and at < 3:
                rest = [x for x in tail[at + 1:] if x not in ("with", "at", "from", "the", "layer", "block", "index")]
                if rest and (rest[0].isdigit() or _ordinal(rest[0])):
                    start = int(rest[0]) if rest[0].isdigit() else _ordinal(rest[0]) - 1
                    end = end + at + 1 + tail[at + 1:].index(rest[0]) + 1
                break
        return "layers", tuple(range(start, depth, 2)), end
    end = _noun(words, i + 1 + (words[i + 1:i + 2] in (["-"], ["numbered"]))) \
        if w in ("odd", "even", "odd-numbered", "even-numbered") else None
    if end is not None:
        end = _noun(words, end) or end
        return "layers", tuple(range(1 if w.startswith("odd") else 0, depth, 2)), end
    # "every layer", "all blocks", "all but the last", "every layer except the first two"
    if w in _ALL:
        if words[i + 1:i + 3] in (["remaining", "one"], ["remaining", "ones"]):
            return "layers", tuple(range(depth)), i + 3  # "after each remaining one"
        k = i + 1
        while k < len(words) and words[k] in ("of", "the"):
            k += 1
        j, n = _count(words, k)
        noun = _noun(words, j) if n == depth and j > k else None
        if noun is not None:  # "after each of the four layers"
            return "layers", tuple(range(depth)), noun
        end = _noun(words, i + 1)
        if end is not None:  # "after each of layers 1 and 2": the list, not every layer
            indices, j = _index_list(words, end, depth)
            if indices:
                return "indices", tuple(indices), j
        k = end if end is not None else i + 1
        if k < len(words) and words[k] in _EXCEPT:
            k += 1
            while k < len(words) and words[k] in ("the", "for", "from", "than", "of", "very"):
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


def _slice(words: list[str], i: int, depth: int) -> tuple[tuple[int, ...], int] | None:
    """The blocks ``[a:b]`` selects (either side may be missing or negative), and where the slice ends."""
    def bound(k: int) -> tuple[int | None, int]:
        if words[k:k + 1] == ["-"] and k + 1 < len(words) and words[k + 1].isdigit():
            return -int(words[k + 1]), k + 2
        if k < len(words) and words[k].isdigit():
            return int(words[k]), k + 1
        return None, k

    a, k = bound(i)
    if words[k:k + 1] != [":"]:
        return None
    b, k = bound(k + 1)
    if words[k:k + 1] != ["]"]:
        return None
    return tuple(range(depth)[slice(a, b)]), k + 1


def _ordinal(word: str) -> int | None:
    """1 for "1st", 3 for "third" (number-parser), else None."""
    match = re.fullmatch(r"(\d+)(?:st|nd|rd|th)", word)
    if match:
        return int(match.group(1))
    if not re.fullmatch(r"[a-z]+", word):
        return None
    from number_parser import parse_number, parse_ordinal

    return parse_ordinal(word) if parse_number(word) is None else None  # "one" is a count, not a place


def _index_list(words: list[str], i: int, depth: int) -> tuple[list[int], int]:
    """Block indices listed from ``i``: "0 and 2", "1-3", "0, 1 and 3", "-2 and -1" (from the end); and where the
    list ends."""
    indices: list[int] = []
    j = i
    while j < len(words):
        if words[j] == "-" and j + 1 < len(words) and words[j + 1].isdigit():
            indices.append(depth - int(words[j + 1]))  # a negative index, as Python counts from the end
            j += 2
            if j < len(words) and words[j] in _LINK and j + 1 < len(words) and (
                    words[j + 1] == "-" or _count(words, j + 1)[1] is not None):
                j += 1
                continue
            break
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
        if j < len(words) and words[j] in _LINK and j + 1 < len(words) and (
                _count(words, j + 1)[1] is not None or words[j + 1] == "-" and words[j + 2:j + 3] != [] and
                words[j + 2].isdigit()):
            j += 1
            continue
        if j + 1 < len(words) and words[j] == "," and words[j + 1] == "and":
            j += 2
            continue
        break
    return indices, j


# module names two parts share (GPT-2's attn.c_proj and mlp.c_proj): a target by name, as peft's target_modules
MODULE_NAMES = {"c_proj", "dense"}
# "token and position embeddings": the first part shares the second's noun
_SHARED_NOUN = {("token",): "embed.tokens", ("word",): "embed.tokens", ("position",): "embed.positions",
                ("positional",): "embed.positions"}
# the same words, singular or plural, inside "the embeddings (tokens and positions)"
_IN_PARENS = {w: role for (word,), role in _SHARED_NOUN.items() for w in (word, word + "s")}


def _after_embeddings(words: list[str], i: int) -> bool:
    """Whether ``words[i]`` sits in a parenthesis right after "embedding(s)": "(tokens and positions)"."""
    k = i - 1
    while k >= 0 and (words[k] in _IN_PARENS or words[k] in ("and", ",", "+", "&", "/", "both")):
        k -= 1
    return k >= 1 and words[k] == "(" and words[k - 1] in ("embedding", "embeddings")


# everyday words that name a part only beside a projection word or another part ("gate, up and down
# projections"; not "set up LoRA", "scale down")
_AMBIGUOUS = {"up", "down", "gate", "o", "out", "output"}
_QKV = {name[0] for r in ("attn.q", "attn.k", "attn.v") for name in PARTS[r] if len(name) == 1}
_PROJECTION = {"proj", "projs", "projection", "projections", "matrix", "matrices", "weights", "layer", "layers", "linear"}


@functools.cache
def _tables() -> list[tuple[str, dict[str, list[tuple[str, ...]]]]]:
    from gnn.edits.ops.activation import activation_names

    acts = {k: list(v) for k, v in ACTIVATION_NAMES.items()}
    for name in activation_names():  # every name the engine takes is also its own mention ("linear" names layers)
        if name != "linear" and not any((name,) in v for v in acts.values()):
            acts.setdefault(name, []).append((name,))
    return [("role", PARTS), ("activation", acts), ("norm", NORM_NAMES), ("method", METHODS),
            ("unsupported", UNSUPPORTED), ("direction", DIRECTION)]


def _phrase(words: list[str], i: int) -> tuple[str, str, int] | None:
    """The longest name (a part, activation, norm, method, something the engine cannot build, a direction word)
    starting at ``i``."""
    best = None
    for kind, table in _tables():
        for value, names in table.items():
            for name in names:
                n = len(name)
                if tuple(words[i:i + n]) == name and (best is None or n > best[2] - i):
                    best = (kind, value, i + n)
    if best and best[0] == "method" and words[i] == "new" and words[i + 1:i + 2] and (
            words[i + 1] in _LAST or words[i + 1] in _FIRST):
        return None  # "the new last layer": a position on the graph as it is now, not an insertion
    if best and best[0] == "role" and best[2] == i + 1 and words[i] in _AMBIGUOUS and not _beside_part(
            words, i, _QKV if words[i] in ("output", "out") else None):
        return None
    if best is None and words[i] in MODULE_NAMES:
        return "module", words[i], i + 1
    if best is None and words[i] in _IN_PARENS and _after_embeddings(words, i):
        return "role", _IN_PARENS[words[i]], i + 1  # "the embeddings (tokens and positions)"
    if best is None and (words[i],) in _SHARED_NOUN and words[i + 1:i + 2] in (["and"], [","], ["/"], ["&"]):
        rest = _phrase(words, i + 2)
        if rest and rest[0] == "role" and rest[1].startswith("embed."):
            return "role", _SHARED_NOUN[(words[i],)], i + 1
    return best


def known_word(word: str) -> bool:
    """Whether ``word`` is a name one of the tables knows (a part, activation, norm, method...)."""
    return any((word.lower(),) in names for _, table in _tables() for names in table.values())


@functools.cache
def _vocabulary() -> tuple[frozenset, tuple[str, ...]]:
    """Every one-word name the tables and block nouns know, and those long enough to correct a slip towards."""
    known = {name[0] for _, table in _tables() for names in table.values() for name in names if len(name) == 1}
    known |= _BLOCK | _LAST | _FIRST | {"adapter", "adapters", "middle", "remaining"}
    return frozenset(known), tuple(sorted(w for w in known if len(w) >= 5 and w.isalpha()))


@functools.lru_cache(maxsize=4096)
def _spelt(word: str) -> str:
    """A misspelt name read as the name: one letter dropped, added or two letters swapped ("layres", "embedings",
    "remvoe", "freez"); a changed letter is not read as a slip ("remote" is a word of its own)."""
    known, targets = _vocabulary()
    if len(word) < 5 or not word.isalpha() or word in known:
        return word
    return next((name for name in targets if _one_slip(word, name)), word)


def _one_slip(a: str, b: str) -> bool:
    if len(a) == len(b):
        diff = [k for k in range(len(a)) if a[k] != b[k]]
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    short, long = sorted((a, b), key=len)
    return len(long) - len(short) == 1 and any(long[:k] + long[k + 1:] == short for k in range(len(long)))


def _beside_part(words: list[str], i: int, parts: set | None = None) -> bool:
    def near(k: int, step: int) -> str | None:
        while 0 <= k < len(words) and words[k] in (",", "and", "/", "&", "or", "the"):
            k += step
        return words[k] if 0 <= k < len(words) else None

    single = {name[0] for names in PARTS.values() for name in names if len(name) == 1}
    if parts is not None:
        return any(w in parts for w in (near(i - 1, -1), near(i + 1, 1)))
    return any(w is not None and (w in _PROJECTION or w in single) for w in (near(i - 1, -1), near(i + 1, 1)))
