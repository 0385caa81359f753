"""Instruction data: requests paired with the answer the assistant should give for a given graph.

Training phrasings come from a small grammar per intent (``[a|b|c]`` picks one of the
alternatives; ``{r}``, ``{n}``... are the request's parameters), a few thousand in all.
Held-out phrasings are never trained on: two written with the first templates, and four
per intent written independently, without seeing the grammar
(``corpora/held_out_phrasings.json``); a grammar phrasing too close to any held-out one
of its intent (difflib ratio >= 0.85) is dropped, and so is one too close to any phrasing
written after a training run to test it (``corpora/fresh_phrasings*.json``).  The right
answer depends on the graph, as it does for a person: "use GQA with 3 KV heads" is an
edit on a model with 12 heads and a refusal naming the divisors on one with 8; "switch to
RMSNorm" on a model that already has it is a plain statement, not an edit; "make it
smaller" is a question back.
Answers are the JSON the assistant is decoded under (:mod:`assistant.schema`).

Where the right answer is a refusal because of the graph (those three, removing every
block, a model with no attention heads to regroup), the model is trained to write the
edit the request asks for (:attr:`Example.written`), and the edit engine refuses it with
its reason (:class:`gnn.edits.Infeasible`): words to edits is the model's job, whether
the graph can take the edit is the engine's.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import json
import random
import re
from dataclasses import dataclass

from assistant.facts import CORPORA, Facts

ACTS = {"gelu": "GELU", "silu": "SiLU", "relu": "ReLU", "gelu_new": "tanh-approximated GELU", "mish": "Mish",
        "relu2": "squared ReLU"}
NORMS = {"rmsnorm": "RMSNorm", "layernorm": "LayerNorm"}
# Other names people (and Hugging Face configs: ``hidden_act``) give them; training requests draw among these, the
# held-out and fresh ones keep the names above
ACT_NAMES = {"gelu": ["GELU", "gelu", "exact GELU", "erf-based GELU"], "silu": ["SiLU", "silu", "Swish", "swish"],
             "relu": ["ReLU", "relu", "plain ReLU"], "mish": ["Mish", "mish"],
             "gelu_new": ["tanh-approximated GELU", "gelu_new", "GELU (tanh approximation)", "approximate GELU",
                          "gelu_pytorch_tanh", "tanh GELU", "the tanh approximation of GELU", "GELU with tanh"],
             "relu2": ["squared ReLU", "relu2", "ReLU squared", "ReLU^2"]}
NORM_NAMES = {"rmsnorm": ["RMSNorm", "RMS norm", "rmsnorm", "root-mean-square norm", "RMS normalization"],
              "layernorm": ["LayerNorm", "layer norm", "layernorm", "standard layer normalization", "nn.LayerNorm"]}
ADAPTER_ACTS = {a: ACTS.get(a, a) for a in ("gelu", "relu", "silu", "tanh")}  # the adapter's own nonlinearity
ADAPTER_SITES = {"attn": ["attention modules", "attention blocks", "self-attention layers", "attention"],
                 "mlp": ["MLPs", "feed-forward blocks", "MLP modules", "FFN layers"]}
SIMILAR = 0.85  # a training phrasing at least this close to a held-out or fresh one is dropped
PER_INTENT = 2  # training phrasings drawn per intent and graph
DRAWS = {"vague": 3}  # times PER_INTENT: vague requests come in eight kinds (VAGUE), each with its own question
WRAPPED = 0.3  # share of training phrasings said with a reason, a greeting or as a question (WRAPS)


@dataclass
class Example:
    intent: str
    request: str
    answer: dict
    held_out_phrasing: bool
    source: str = "grammar"  # grammar, first templates, independent (held out), hand-written
    written: dict | None = None  # what the model writes, where it differs from `answer` (an edit the engine refuses)
    phrasing: str = ""  # the phrasing the request was made from, before its parameters were filled in

    @property
    def target(self) -> dict:
        """The model's answer to train on."""
        return self.written or self.answer


def _edit(*edits: dict) -> dict:
    return {"action": "edit", "edits": list(edits)}


def _refuse(reason: str) -> dict:
    return {"action": "refuse", "reason": reason}


def _ask(question: str) -> dict:
    return {"action": "ask", "question": question}


# -- phrasings ----------------------------------------------------------------------------------

_PLEASE = "[| please| for me]"
_LAST = "[the last|the final|the top|the topmost|the very last]"
_BLOCK = "[layer|block|transformer block|decoder layer]"
_BLOCKS = "[layers|blocks|transformer blocks|decoder layers|transformer layers]"
_LORA = "[LoRA|LoRA adapters|low-rank adapters|LoRA modules|lora]"

GRAMMAR: dict[str, list[str]] = {
    "lora_default": [
        "[wrap|wrap the model|wrap it] [with|in] [a default|the default|a plain] [LoraConfig|peft LoraConfig|LoRA config]"
        "[| and default hyperparameters| with nothing overridden| and call get_peft_model]",
        "[call |run |]get_peft_model [on it |on the model |]with [a default LoraConfig|LoraConfig()|the default LoRA config]",
        "[lora pls|lora w/ defaults|add lora, default cfg|lora, stock settings|vanilla lora]",
        "[use|apply|set up] peft['s|] LoRA with [its|the] default [target_modules|config|hyperparameters|rank]",
        "[|can you |let's |I'd like to |go ahead and ][add|apply|attach|inject|enable] " + _LORA
        + "[| to the model| to this model| to it| with the default settings| using the peft defaults]",
        "put LoRA adapters on it", "make it LoRA-tunable", "wrap it with low-rank adapters",
        "[prepare|get] [it|the model|this model] [for|ready for] LoRA [training|fine-tuning|tuning]",
        "[fine-tune|train|tune] [it|this model|the model] with LoRA[| adapters][| using the defaults]",
        "LoRA[| please| with the usual settings| with default rank and targets]",
        "I [want|need|would like] [LoRA|low-rank adapters] on [this model|it|the model]",
        "[set up|configure] LoRA [on|for] [this model|the model|it] with [defaults|default settings]",
    ],
    "lora_last": [
        "[lora|LoRA] [on|->|for] [last|final|top] [layer|blk|block] [only|pls]",
        "[LoraConfig|LoRA] with layers_to_transform [set to|=|limited to] [the last layer|only the final block|"
        "the top layer]",
        "[add|apply|put|attach] " + _LORA + " [to|on] " + _LAST + " " + _BLOCK + "[| only]",
        "[only|just] " + _LAST + " [layer|block] [should get|gets|needs|should have] LoRA",
        "LoRA [on|for|in] " + _LAST + " [layer|block][| only][| please]",
        "[restrict|limit|confine] LoRA to " + _LAST + " [layer|block]",
        "[fine-tune|adapt] [only |just ]" + _LAST + " [layer|block] with LoRA",
        "[add|apply] LoRA to layer -1[| only]",
        "[put|add|place|attach] " + _LORA + " on " + _LAST + " " + _BLOCK + " [and nowhere else|and no other layer|"
        "alone|but not the others|, leaving the other layers without]",
    ],
    "lora_qv_rank": [
        "[LoraConfig|LoRA config|a LoraConfig] with r={r} and target_modules [q_proj, v_proj|\"q_proj\", \"v_proj\"|"
        "= q_proj,v_proj|covering q_proj and v_proj]",
        "[lora|LoRA] [r={r}|r{r}|rank {r}] [q,v|on q/v|qv|on q+v] [pls|only|]",
        "[add|apply|put|use|attach] [rank {r} LoRA|rank-{r} LoRA|LoRA with rank {r}|LoRA with r={r}|LoRA r={r}|"
        "LoRA of rank {r}|a rank {r} LoRA|LoRA, rank {r},] [on|to|for] [the query and value projections|q and v|"
        "q_proj and v_proj|the q and v projections|the queries and values|the attention queries and values|"
        "the query/value matrices|q/v|Q and V|q_proj/v_proj|the Q and V weights]",
        "LoRA [r={r}|rank {r}|r {r}|with r={r}] [on|for] [q and v|q_proj/v_proj|the query and value projections|"
        "queries and values|Q/V]",
        "[target|adapt] [q_proj and v_proj|the query and value projections|q and v] with [rank {r}|rank-{r}|r={r}] LoRA",
        "[I want|I need|give me] LoRA [with|at] rank {r} on [the query and value projections|q and v|q_proj, v_proj]",
        # long requests that also say what to leave alone
        "[add|put|attach|I want] [low-rank adapters|low-rank (LoRA) adapters|LoRA adapters] [of rank {r}|with rank {r}|"
        "with r = {r}|(rank {r})] [to|on] the [attention |][query and value|q and v|Q and V] [projections|matrices]"
        "[| only| and nothing else]",
        "[I'd like|I want|please add|could you add] [low-rank adapters|LoRA|LoRA adapters|LoRA modules] "
        "([r = {r}|r={r}|rank {r}|rank = {r}]) [on|for] the [attention |self-attention |][query and value|q and v|Q and V] "
        "[matrices|projections|weights][| only][; leave the rest alone|, nothing else|; keep k, o and the MLP frozen|"
        ", not the keys, outputs or MLP|]",
        "[only|just] the [query and value|q and v] projections [should get|get|need] LoRA, [with|at] [rank|r =] {r}"
        "[; leave everything else as it is|, everything else untouched|]",
    ],
    "remove_last": [
        "[set|reduce|lower] num_hidden_layers [down by {n}|by {n}|to {n} fewer]",
        "[drop|pop|slice off] the last {n} entries of [model.layers|the layer list|the ModuleList of blocks]",
        "[rm|drop|nuke|cut] [top|last] {n} [layers|blocks|blks][| pls]",
        "[remove|drop|delete|prune|cut|strip|chop off|get rid of|take out] " + _LAST + " {n} " + _BLOCKS + _PLEASE,
        "[remove|drop|cut|delete] {n} [layers|blocks] [from the end|from the top|off the top|off the end]",
        "[shrink|shorten|reduce] [the model|it|the depth|the stack] by [removing|dropping|deleting] " + _LAST
        + " {n} [layers|blocks]",
        "[make it|make the model] {n} [layers|blocks] shallower",
        "[reduce|lower|decrease] the [depth|number of layers|layer count] by {n}",
        "[truncate|trim|shorten|cut down] [the model|the stack|the network|the decoder|it] by [removing|deleting|dropping|"
        "cutting] [its|the] [last|top|final|uppermost|topmost] {n} [layers|blocks|decoder layers|transformer blocks]",
        "[delete|remove|drop|discard] [its|the model's|the network's|the stack's] [top|uppermost|last|final] {n} "
        "[layers|blocks|decoder layers|transformer layers][| and keep the rest| please]",
        "[chop|lop|cut|slice] {n} [layers|blocks|decoder layers] off [the end|the top] of [the stack|the model|the network]",
    ],
    "insert": [
        "[increase|bump|raise] [num_hidden_layers|n_layer|the layer count in the config] by {n}",
        "[append|add|push] {n} [new |fresh |extra ][decoder layers|blocks|transformer blocks] [to|onto] [model.layers|"
        "the end of the model|the end of the stack|the layer list]",
        "[+{n} layers|{n} more blks|{n} extra layers] [on top|at the end|pls]",
        "[add|append|insert|stack] {n} [more|extra|new|additional] " + _BLOCKS
        + "[| at the end| on top| after the last one| at the top| to the stack]" + _PLEASE,
        "[put|place|stack|add] {n} [extra|additional|new|more] " + _BLOCKS + " [after the current last one|"
        "after the final layer|on top of the stack|at the end of the stack|above the last block]",
        "[make|grow] [it|the model|the network] {n} [layers|blocks] deeper",
        "[increase|grow|extend|raise] the [depth|number of layers|layer count] by {n}[| layers| blocks]",
        "[deepen|extend] the [model|stack|network] [by|with] {n} [more |extra |][layers|blocks]",
        "[I want|I need|give me] {n} more [layers|blocks][| on top]",
    ],
    "activation": [
        "[set|change] [hidden_act|activation_function|hidden_activation|the config's hidden_act] [to|=] {act}",
        "[ffn|mlp|FFN] [act|activation] [->|=|to] {act}[| pls]",
        "[use|switch to|change to|go with|try|move to] {act}[| activations| as the activation| in the MLP|"
        " in the feed-forward| in the FFN][| instead]",
        "[replace|swap|change|switch] the [activation|activation function|nonlinearity|MLP activation|"
        "feed-forward activation|ffn activation|hidden activation] [with|for|to] {act}",
        "[make|set] the [activations|nonlinearities|MLP activations|activation functions] {act}",
        "{act} [activations|nonlinearity|in the MLPs|as the activation function][| please]",
        "[I want|I'd like|let's have] {act} [activations|as the nonlinearity|in the feed-forward layers]",
        "[use|put|swap in] {act} in the [ffn|FFN|MLP|feed-forward] [instead of the current activation|in place of the "
        "current nonlinearity|rather than what it has now]",
    ],
    "norm": [
        "[set|change] the [norm class|normalization module|norm_type|normalization type] to {norm}",
        "[all norms|norms|every norm|ln] [->|to] {norm}[| pls]",
        "[swap|replace|change|switch|convert] [the norms|every norm|all norm layers|the normalization layers|"
        "normalization|all the norm layers|each norm|the normalization] [to|with|for|into] {norm}",
        "[use|switch to|go with|move to] {norm}[| everywhere| for all norms| throughout| for every norm layer]",
        "{norm} [everywhere|for every norm layer|in all blocks|for all normalization][| please]",
        "[I want|I'd like|let's use] {norm} [for normalization|everywhere|in place of the current norms]",
        "[make|turn] [every norm layer|each norm|all the norm layers] into {norm}",
    ],
    "mqa": [
        "[set|change|make] [num_key_value_heads|n_kv_heads|num_kv_heads|the KV head count] [to|=] 1",
        "[convert|switch|move|change] [attn|the attn|attention] to [mqa|MQA][| pls]",
        "[attn -> mqa|mqa pls|kv heads -> 1|1 kv head pls|multi_query=True]",
        "[make|turn|convert] [it|the model|this model] [multi-query|into a multi-query model|to MQA|into MQA|"
        "to multi-query attention]",
        "[use|switch to|apply|go with|move to] [MQA|multi-query attention|multi query attention]"
        "[| everywhere| in every layer| please]",
        "[share|use] [one|a single] [key/value|KV|kv|key-value] head [across|for] all [the |][query heads|heads]",
        "[set|reduce|cut] the [KV|kv|key/value|key-value] heads to [one|1|a single one]",
        "[I want|give me|let's do] multi-query attention",
        "num_key_value_heads = 1",
        "[change|convert|switch] the attention [layers|blocks|modules] to [MQA|multi-query attention][, i.e.|:|, that is,|"
        " -] [keep every query head but share a single key/value head|all query heads share one K/V head|"
        "one K and V head for all the query heads|keep the Q heads and collapse K and V to one head]",
        "[keep|leave] [all|every one of] the [query|Q] heads but [collapse|reduce|merge] [K and V|the keys and values|"
        "the KV heads] [down to|into|to] [one|a single] [shared |][head|group]",
    ],
    "gqa": [
        "[set|change] [num_key_value_heads|n_kv_heads|num_kv_heads] [to|=] {kv}",
        "[gqa w/ {kv} kv heads|attn -> gqa ({kv} kv)|kv heads -> {kv}|{kv} kv heads pls|gqa, {kv} groups]",
        "[use|switch to|apply|go with] [GQA|grouped-query attention|grouped query attention] with {kv} "
        "[KV heads|kv heads|key/value heads|KV groups|groups]",
        "[set|change|reduce|make] the [number of KV heads|KV heads|kv head count|number of key/value heads|"
        "num_key_value_heads] [to|=] {kv}",
        "[make it|convert to|switch to] [GQA|grouped-query attention][,|:| with] {kv} [groups|KV heads]",
        "{kv} [KV|kv|key/value] heads[| please| instead]",
        "[group|share] the [keys and values|KV heads] into {kv} [groups|heads]",
        "[set|change|bring] the number of [key-value|key value|K/V] heads to {kv}[|, grouping the query heads to match|"
        " and group the query heads over them| (grouped-query attention)]",
        "[I want|give me|let's have] {kv} [key-value|K/V|shared key/value] heads[| with the query heads grouped over them]",
    ],
    "adapter": [
        "[add|insert|use] [Houlsby|bottleneck|Pfeiffer] adapters [with|at] [reduction dim|adapter_size|adapter size|"
        "a hidden size of] {b}",
        "[adapter_size={b}|bottleneck adapters, adapter_size={b}|adapters (adapter_size {b})]",
        "[add|insert|put|attach|use] [bottleneck adapters|Houlsby adapters|adapter layers|adapters|adapter modules|"
        "bottleneck adapter layers] [with bottleneck|with bottleneck size|with a bottleneck of|of size|with size] {b}"
        "[| after the MLPs| after each feed-forward| in every block]",
        "[add|insert] {b}-[dim|wide|dimensional] [bottleneck adapters|adapters][| after each MLP]",
        "[adapters|bottleneck adapters|Houlsby adapters] [with|of] [bottleneck|size|bottleneck size] {b}[| please]",
        "[I want|give me] bottleneck adapters, size {b}",
        "[add|insert|put in] [adapter layers|adapters|adapter modules|bottleneck adapters] [w/|with] [bottleneck dim|"
        "a bottleneck dim of|bottleneck dimension|a bottleneck dimension of|down-projection size|reduction dim] {b}",
        "[adapter layers|adapters|bottleneck adapters] [w/|with] [dim|bottleneck dim|hidden size|width] {b}[| pls| please]",
        # an activation and a place as well (the engine's defaults: ReLU, after each MLP)
        "[add|insert|put|attach] [adapters|bottleneck adapters|adapter layers|Houlsby adapters] with {adapter_act} and "
        "[bottleneck|bottleneck size|a bottleneck of|size] {b} after the {where}",
        "[add|insert|put] [{b}-wide|size-{b}|{b}-dim] [adapters|bottleneck adapters] [using|with] {adapter_act} "
        "[after|behind] [each of |every one of |][the |]{where}",
        "[adapters|bottleneck adapters] after the {where}[,|:| with] [bottleneck|size] {b}[,| and] {adapter_act} "
        "[activation|nonlinearity|inside]",
        "[I want|I'd like|please add] [adapter modules|bottleneck adapters|adapters] [after|following] the {where} "
        "([bottleneck|width] {b}, {adapter_act})",
    ],
    "dropout": [
        "[set|use|add] [attention dropout|attn dropout|attn_dropout|dropout on the attention output] [of|to|=] {p}",
        "[attn dropout {p}|dropout p={p} after attn|{p} dropout post-attn|dropout {p} on attn out][| pls]",
        "[add|insert|put|apply|use] [dropout|a dropout layer] [of|with p=|with rate|with probability|p=] {p} "
        "after [attention|the attention blocks|each attention block|self-attention|the attention layers|"
        "every attention layer|the attention modules]",
        "[dropout|a dropout of] {p} after [attention|self-attention|every attention block][| please]",
        "[regularize|regularise] the attention [outputs|output] with [dropout {p}|{p} dropout|dropout p={p}]",
        "[drop|zero out] {p} of the attention outputs with dropout",
    ],
    "freeze_but_last": [
        "[set requires_grad=False|freeze|lock] [for every parameter|for all params|all parameters|all params|"
        "every weight] [except|apart from|but] [those|the ones|the parameters] in the [final|last|top] [layer|block]",
        "[only|just] [fine-tune|train|tune] the [top|last|final] [layer|block] of the [network|stack|model]",
        "[freeze all but last blk|freeze everything exc. last layer|train last layer only|only last blk trainable]",
        "[keep|leave] [only |just ]the [final|last|top] [transformer block|layer|block] trainable and freeze "
        "[everything else|the rest|all other parameters]",
        "[freeze|lock|fix] [everything|all layers|the whole model|all parameters|all the weights|every layer] "
        "[except|but|apart from|other than|save] " + _LAST + " [layer|block|transformer block|one]",
        "[only|just] [train|fine-tune|update] " + _LAST + " [layer|block]",
        "[make|keep|leave] [only|just] " + _LAST + " [layer|block] trainable",
        "[freeze|lock] all but " + _LAST + " [layer|block|one]",
        "[set requires_grad=False|turn off gradients] [everywhere|for everything] [except|but] " + _LAST
        + " [layer|block]",
    ],
    "unsupported": [
        "[add|use|switch to|give it|implement|apply|put in|I want|can you add|try|enable] {method}"
        "[| to this model| in this model| please|?| here]",
        "[make it use|convert it to use|make the model use|convert the model to use] {method}",
        "{method}[ please|, can you do that?| support, please]",
        "[replace the attention with|retrofit] {method}",
    ],
}

VAGUE_ANY = "What should change: depth, attention heads (GQA/MQA), norm, activation, LoRA or adapters?"

# Vague requests, by what they leave open: the question back names the choices.
VAGUE: dict[str, tuple[str, list[str]]] = {
    "smaller": ("Smaller how: fewer layers (remove_layers), fewer KV heads (set_kv_heads), or a LoRA setup so "
                "fewer weights train?",
                ["make it smaller", "[shrink|slim down|trim|downsize] [it|the model|this model]",
                 "[reduce|cut] [its|the model's] size", "I need a [smaller|lighter|more compact] [model|version]",
                 "can [it|the model] be [smaller|lighter|more compact]?"]),
    "better": ("Better at what? I can change depth, attention heads, norms, activations, or add LoRA or adapters.",
               ["make it better", "[improve|upgrade|enhance] [it|the model|this architecture]",
                "make [it|the model] [stronger|more accurate|more powerful]", "can you improve this model?"]),
    "attention": ("Which change: fewer KV heads (GQA/MQA), LoRA on the attention projections, or dropout after "
                  "attention?",
                  ["improve the attention", "[change|tweak|fix|modify|rework] the attention[| somehow| a bit]",
                   "do something about the attention[| layers]",
                   "the attention [feels off|seems weak|is not great|could be better][,|;|.] [can|could] you [tweak|fix|"
                   "improve|adjust] it?"]),
    "change": ("Which part: depth, attention heads, norm, activation, or adapters?",
               ["change the architecture a bit", "[modify|tweak|alter|adjust] [it|the architecture|the model]"
                "[| a bit| somehow| slightly]", "[try|make] [a change|some changes|something different]"]),
    "adapters": ("Which kind and where: LoRA on which projections, or bottleneck adapters after which modules?",
                 ["add some adapters somewhere", "[add|put] [some|a few] adapters[| somewhere| in there]",
                  "[add|use] [some kind of|some sort of] adapter"]),
    "speed": ("Faster inference: fewer layers or fewer KV heads (GQA/MQA)? Which one should I apply?",
              ["[speed it up|speed up the model|make inference quicker|cut the latency]",
               "I need [lower latency|quicker inference|faster generation]"]),
    "optimize": ("Optimize for what: size, speed or fine-tuning cost? Tell me which edit to make.",
                 ["[tune up|streamline|optimise] [it|the model|this network]", "make it more efficient",
                  "give [it|the model|this network] a [tune-up|once-over|bit of tuning][| please| so it performs "
                  "better]", "[help me get|I want] [better results|more] out of this [model|network|architecture]",
                  "this [model|network] [underperforms|is too slow|is too big|is not efficient][, fix it| - do "
                  "something|; sort it out please|, can you help?]"]),
    # a wish with no edit in it, in a long or polite sentence
    "wish": (VAGUE_ANY,
             ["[can|could|would] you make [this architecture|the model|this network|it] [more efficient|more robust|"
              "more modern|more capable|leaner|more stable|more general|state of the art]?",
              "I [want|would like|need] [the model|this architecture|this network|it] to be [more robust|more modern|"
              "more efficient|more stable|more general|better][; do|, so do|. Do] whatever you think [is best|helps|"
              "makes sense]",
              "[modernize|refresh|revamp|overhaul|rework|redesign|update] [the model|this architecture|it|the network]"
              "[| a little| somewhat| as you see fit| however you like]",
              "[change|edit|adjust] whatever you think [is best|helps|makes sense|would help][| here| in this model]",
              "[please |could you |][improve|fix up|polish] [this architecture|the model|this network] [as you see fit|"
              "the way you think best|however you like|in whatever way you want]",
              "[give|apply] [the model|it|this network] [a makeover|an upgrade|a refresh|some improvements]",
              "I need [the model|this network|it] to be [smaller and faster|faster and better|leaner and quicker|"
              "better and cheaper][; please adjust it accordingly|, adjust it as needed|. Change what you must]",
              "[the model|this network|it] [feels off|is not good enough|could be better][, can you tweak it?|; fix it "
              "please|. Improve it]"]),
}

# Held out with the first templates (the rest of those templates are in the grammar).
_HELD_OUT_FIRST: dict[str, list[str]] = {
    "lora_default": ["set it up for LoRA fine-tuning", "I want to fine-tune it with LoRA"],
    "lora_last": ["only the last layer should get LoRA", "give the last block LoRA"],
    "lora_qv_rank": ["use LoRA (r {r}) on q and v", "rank {r} low-rank adapters on the q and v projections"],
    "remove_last": ["get rid of the last {n} layers", "truncate the model by {n} layers"],
    "insert": ["grow the depth by {n} layers", "deepen the model by {n} blocks"],
    "activation": ["make the activations {act}", "{act} activations please"],
    "norm": ["convert the norms to {norm}", "I'd like {norm} instead of the current norm"],
    "mqa": ["make the attention MQA", "one kv head for every query head"],
    "gqa": ["use {kv} key-value heads", "convert attention to {kv}-group GQA"],
    "adapter": ["adapters with bottleneck {b} please", "add size-{b} bottleneck adapters"],
    "dropout": ["dropout {p} after attention please", "apply dropout ({p}) to the attention outputs"],
    "freeze_but_last": ["lock every layer except the last one", "freeze the model apart from its final block"],
    "unsupported": ["can you add {method}?", "I want {method}"],
    "vague": ["make it faster", "optimize this model"],
}
INTENTS = list(_HELD_OUT_FIRST)


def expand(pattern: str) -> list[str]:
    """Every phrasing a grammar pattern spells: ``[a|b]`` is one of a or b (possibly empty)."""
    parts = re.split(r"\[([^\]]*)\]", pattern)
    choices = [[p] if i % 2 == 0 else p.split("|") for i, p in enumerate(parts)]
    return [re.sub(r"\s+", " ", "".join(c)).strip().replace(" ,", ",").replace(" ?", "?")
            for c in itertools.product(*choices)]


@functools.cache
def held_out_phrasings(intent: str) -> tuple[str, ...]:
    independent = json.loads((CORPORA / "held_out_phrasings.json").read_text())
    return tuple(_HELD_OUT_FIRST[intent] + independent[intent])


@functools.cache
def fresh_phrasings(intent: str) -> tuple[str, ...]:
    """Phrasings written after a training run, to test it (``corpora/fresh_phrasings*.json``): never trained on."""
    return tuple(t for path in sorted(CORPORA.glob("fresh_phrasings*.json"))
                 for t in json.loads(path.read_text()).get(intent, []))


def closest_training_phrasing(intent: str, text: str) -> float:
    """How close (:func:`similarity`) ``text`` comes to any training phrasing of ``intent`` (a pair that cannot
    beat the closest so far is not compared in full)."""
    best = 0.0
    for t in train_phrasings(intent):
        best = max(best, similarity(text, t, floor=best))
    return best


@functools.cache
def dev_phrasings(intent: str) -> tuple[str, ...]:
    """Development phrasings (``corpora/dev_phrasings.json``): written apart from the grammar and the held-out
    ones (any within :data:`SIMILAR` of a held-out phrasing left out), for choosing decoding settings."""
    return tuple(json.loads((CORPORA / "dev_phrasings.json").read_text())[intent])


def similarity(a: str, b: str, floor: float = 0.0) -> float:
    """difflib's ratio of two phrasings, either way round (it is not symmetric), ignoring case.  A way round whose
    cheap upper bounds (``real_quick_ratio``, ``quick_ratio``) stay under ``floor`` is not compared in full, so
    a result under ``floor`` only says the pair is under it."""
    a, b = a.lower(), b.lower()
    best = 0.0
    for x, y in ((a, b), (b, a)):
        m = difflib.SequenceMatcher(None, x, y)
        bar = max(best, floor)
        if m.real_quick_ratio() >= bar and m.quick_ratio() >= bar:
            best = max(best, m.ratio())
    return best


def _too_close(text: str, held: tuple[str, ...]) -> bool:
    return any(similarity(text, h, floor=SIMILAR) >= SIMILAR for h in held)


@functools.cache
def train_patterns(intent: str) -> tuple[tuple[str, ...], ...]:
    """The grammar's phrasings of ``intent``, one tuple per pattern, without any too close to a held-out or fresh
    one."""
    patterns = ([p for _, ps in VAGUE.values() for p in ps] if intent == "vague" else GRAMMAR[intent])
    held = held_out_phrasings(intent) + fresh_phrasings(intent)
    out = []
    for p in patterns:
        texts = tuple(t for t in dict.fromkeys(expand(p)) if not _too_close(t, held))
        if texts:
            out.append(texts)
    return tuple(out)


def train_phrasings(intent: str) -> list[str]:
    return list(dict.fromkeys(t for texts in train_patterns(intent) for t in texts))


# Ways of saying any request: with a reason before it, a greeting, something after it, or (a request that starts
# with a verb) as a question. ``{}`` is the request.
WRAPS = [
    "[For an ablation|As a quick experiment|For the next run|Before we retrain|To compare against the baseline|"
    "Since we are short on GPU memory|Based on the last results|For my thesis experiments|To keep the comparison "
    "fair], {}",
    "[Our last run was unstable|The loss spiked last time|We need a cheaper baseline|I want to try something], so {}",
    "[Hi|Hey|OK|Quick one|Next step|One more thing|Alright][,|:] {}",
    "{}[, thanks| - thanks| thx| for the next experiment| before the next run|, then show me the diff|. Thanks!|"
    ", if you can| when you get a chance]",
]
QUESTION = "[Could you|Can you|Would you|Could we|Can we|Is it possible to|Would it be possible to] {}?"
VERBS = {"add", "apply", "attach", "put", "use", "switch", "change", "replace", "swap", "make", "remove", "drop",
         "delete", "prune", "cut", "strip", "chop", "get", "take", "shrink", "shorten", "reduce", "truncate", "trim",
         "insert", "stack", "grow", "increase", "extend", "deepen", "set", "convert", "turn", "share", "freeze",
         "lock", "fix", "keep", "leave", "only", "just", "fine-tune", "train", "tune", "adapt", "restrict", "limit",
         "wrap", "prepare", "configure", "target", "give", "move", "try", "go", "regularize", "regularise", "group",
         "bring", "enable", "inject", "implement", "retrofit", "improve", "modify", "tweak", "speed", "append",
         "place", "slice", "lop", "discard", "lower", "raise", "bump", "push", "call", "run", "pop", "decrease"}


def _lower_first(text: str) -> str:
    """``text`` to follow other words: "Use GQA" -> "use GQA", but "LoRA ..." and "MQA ..." stay."""
    first = text.split(" ", 1)[0]
    return text[:1].lower() + text[1:] if first[:1].isupper() and first[1:].islower() else text


def wrap(text: str, rng: random.Random) -> str:
    """``text`` said another way: with a reason, a greeting or a tail (:data:`WRAPS`), or as a question."""
    first = text.split(" ", 1)[0].lower()
    patterns = WRAPS + ([QUESTION] if first in VERBS else [])
    pattern = rng.choice(patterns)
    body = text.rstrip(".!?") if pattern in (QUESTION, WRAPS[-1]) else text
    if not pattern.startswith("{}"):
        body = _lower_first(body)
    return rng.choice(_expanded(pattern)).replace("{}", body)


@functools.cache
def _expanded(pattern: str) -> list[str]:
    return expand(pattern)


def _draw(intent: str, rng: random.Random) -> str:
    """A training phrasing: a pattern first, so a pattern with many spellings does not crowd out the rest; a
    share (:data:`WRAPPED`) said another way (:func:`wrap`), unless that comes close to a held-out or fresh one."""
    text = rng.choice(rng.choice(train_patterns(intent)))
    if rng.random() < WRAPPED:
        wrapped = wrap(text, rng)
        if not _too_close(wrapped, held_out_phrasings(intent) + fresh_phrasings(intent)):
            return wrapped
    return text


@functools.cache
def _vague_question(text: str) -> str:
    for question, patterns in VAGUE.values():
        if any(text in _expanded(p) for p in patterns):
            return question
    if text in VAGUE_QUESTIONS_HELD_OUT:
        return VAGUE_QUESTIONS_HELD_OUT[text]
    # said another way (wrap): the kind whose longest phrasing it holds
    inside = [(len(t), question) for question, patterns in VAGUE.values() for p in patterns for t in _expanded(p)
              if t in text]
    return max(inside)[1] if inside else VAGUE_ANY


VAGUE_QUESTIONS_HELD_OUT = {"make it faster": VAGUE["speed"][0], "optimize this model": VAGUE["optimize"][0]}

UNSUPPORTED = ["alibi", "rope", "mixture of experts", "swiglu", "sliding-window attention", "flash attention",
               "mamba", "4-bit quantization", "multi-head latent attention", "prefix tuning"]


def answer(intent: str, text: str, f: Facts, rng: random.Random, names: bool = False) -> tuple[str, dict, dict]:
    """The request ``text`` (an ``intent`` phrasing, parameters drawn from ``rng``) for facts ``f``, the answer
    the user gets, and what the model writes for it (the same, or the edit the engine refuses).  With ``names``,
    an activation or norm is called by one of its names drawn from ``rng`` (:data:`ACT_NAMES`), else by the one
    in :data:`ACTS`."""
    request, ans, *written = _answer(intent, text, f, rng, names)
    request = re.sub(r"\b1 (layer|block|transformer block|decoder layer|transformer layer)s\b", r"1 \1", request)
    return request, ans, written[0] if written else ans


def _answer(intent: str, text: str, f: Facts, rng: random.Random, names: bool = False) -> tuple[str, dict]:
    from assistant.facts import methods_corpus
    from assistant.retrieval import search

    layers = f.layers
    if intent == "lora_default":
        return text, _edit({"op": "add_lora"})
    if intent == "lora_last":
        return text, _edit({"op": "add_lora", "target": {"layers": [-1]}})
    if intent == "lora_qv_rank":
        r = rng.choice([4, 8, 16, 32, 64])
        return text.format(r=r), _edit({"op": "add_lora", "target": {"roles": ["attn.q", "attn.v"]}, "r": r})
    if intent == "remove_last":
        n = rng.choice([1, 2, 3, 4])
        edit = _edit({"op": "remove_layers", "target": {"layers": list(range(-n, 0))}})
        if n >= layers:
            return text.format(n=n), _refuse(f"The model has {layers} blocks; removing {n} would leave none. "
                                             f"I can remove up to {max(layers - 1, 0)}."), edit
        return text.format(n=n), edit
    if intent == "insert":
        n = rng.choice([1, 2, 4])
        return text.format(n=n), _edit({"op": "insert_layers", "target": {"layers": [-1]}, "count": n})
    if intent == "activation":
        act = rng.choice(sorted(ACTS))
        name = rng.choice(ACT_NAMES[act]) if names else ACTS[act]
        return text.format(act=name), _edit({"op": "replace_activation", "to": act})
    if intent == "norm":
        to = rng.choice(sorted(NORMS))
        name = rng.choice(NORM_NAMES[to]) if names else NORMS[to]
        edit = _edit({"op": "replace_norm", "to": to})
        if f.norm == NORMS[to]:
            return text.format(norm=name), _refuse(f"It already uses {NORMS[to]}."), edit
        return text.format(norm=name), edit
    if intent == "mqa":
        edit = _edit({"op": "set_kv_heads", "kv_heads": 1})
        if not f.heads:
            return text, _refuse("I cannot find the attention heads of this graph."), edit
        if f.kv_heads == 1:
            return text, _refuse("It is already multi-query: every query head shares one KV head."), edit
        return text, edit
    if intent == "gqa":
        kv = rng.choice([2, 3, 4, 8])
        edit = _edit({"op": "set_kv_heads", "kv_heads": kv})
        if not f.heads:
            return text.format(kv=kv), _refuse("I cannot find the attention heads of this graph."), edit
        if f.heads % kv:
            divisors = ", ".join(str(d) for d in range(1, f.heads + 1) if f.heads % d == 0)
            return text.format(kv=kv), _refuse(f"{kv} does not divide the {f.heads} query heads; "
                                               f"choose one of {divisors}."), edit
        if f.kv_heads == kv:
            return text.format(kv=kv), _refuse(f"It already has {kv} KV heads."), edit
        return text.format(kv=kv), edit
    if intent == "adapter":
        b = rng.choice([16, 32, 64, 128])
        edit = {"op": "insert_adapter", "bottleneck": b}
        if "{where}" not in text:
            return text.format(b=b), _edit(edit)
        role = rng.choice(sorted(ADAPTER_SITES))
        act = rng.choice(sorted(ADAPTER_ACTS))
        edit = {"op": "insert_adapter", "target": {"roles": [role]}, "bottleneck": b, "activation": act}
        return text.format(b=b, where=rng.choice(ADAPTER_SITES[role]), adapter_act=ADAPTER_ACTS[act]), _edit(edit)
    if intent == "dropout":
        p = rng.choice([0.1, 0.2, 0.3])
        return text.format(p=p), _edit({"op": "add_dropout", "target": {"roles": ["attn"]}, "p": p})
    if intent == "freeze_but_last":
        return text, _edit({"op": "freeze"}, {"op": "unfreeze", "target": {"layers": [-1]}})
    if intent == "unsupported":
        method = rng.choice(UNSUPPORTED)
        entry = methods_corpus()[search(method, 1)[0].id]
        return text.format(method=method), _refuse(f"{entry['name']}: {entry['engine_note']}"[:200])
    if intent == "vague":
        return text, _ask(_vague_question(text))
    raise ValueError(f"unknown intent `{intent}`; known: {', '.join(INTENTS)}")


def examples_for(f: Facts, rng: random.Random, held_out: bool = False, per_intent: int = PER_INTENT,
                 dev: bool = False, phrasings: dict[str, list[str]] | None = None) -> list[Example]:
    """Examples for the graph with facts ``f``: every held-out phrasing of each intent (or with ``dev``, every
    development phrasing; with ``phrasings``, each of those, by intent), or ``per_intent`` training phrasings of
    each drawn by ``rng`` (parameters too)."""
    out = []
    for intent in INTENTS:
        texts = (phrasings.get(intent, []) if phrasings is not None else dev_phrasings(intent) if dev
                 else held_out_phrasings(intent) if held_out
                 else [_draw(intent, rng) for _ in range(per_intent * DRAWS.get(intent, 1))])
        training = phrasings is None and not dev and not held_out
        for text in texts:
            request, ans, written = answer(intent, text, f, rng, names=training)
            source = ("fresh" if phrasings is not None else "dev" if dev else "grammar" if not held_out
                      else "first templates" if text in _HELD_OUT_FIRST[intent] else "independent")
            out.append(Example(intent, request, ans, held_out, source, written if written != ans else None, text))
    return out


@functools.cache
def _requests() -> list[dict]:
    return [json.loads(line) for line in (CORPORA / "requests.jsonl").read_text().splitlines() if line.strip()]


def _fits(f: Facts, edit: dict) -> bool:
    """Whether a hand-written edit means on this graph what its author meant (else the right answer differs)."""
    op, roles = edit["op"], set(edit.get("target", {}).get("roles", []))
    if op == "replace_norm" and f.norm == NORMS.get(edit["to"]):
        return False  # "it already uses RMSNorm"
    if op == "replace_activation" and (f.activation or "").lower() == ACTS[edit["to"]].lower():
        return False
    if op == "set_kv_heads" and (not f.heads or f.kv_heads == edit["kv_heads"]):
        return False
    layers = edit.get("target", {}).get("layers", [])
    if any(not -f.layers <= i < f.layers for i in layers):
        return False  # no such block on this graph
    if op == "remove_layers" and (f.layers <= 1 or len(layers) >= f.layers):
        return False  # it would remove every block: the answer is a refusal
    if f.fused_qkv and roles & {"attn.q", "attn.k", "attn.v"}:
        return False
    return True


def hand_written(f: Facts) -> list[Example]:
    """The hand-written requests (``corpora/requests.jsonl``) whose answer holds for the graph with facts ``f``.

    They were written for decoder language models (a final norm, token embeddings, one stack), so other
    kinds get none."""
    if f.kind != "decoder":
        return []
    return [Example("hand_written", r["request"], r["answer"], r["held_out"], "hand-written") for r in _requests()
            if r["answer"]["action"] != "edit" or all(_fits(f, e) for e in r["answer"]["edits"])]


def examples(f: Facts, rng: random.Random, held_out: bool, hand: int = 2 * PER_INTENT) -> list[Example]:
    """Grammar and hand-written examples for the graph with facts ``f``: every held-out one, or the training
    ones (``hand`` hand-written requests drawn by ``rng``, so they do not outnumber any intent's phrasings)."""
    written = [e for e in hand_written(f) if e.held_out_phrasing == held_out]
    return examples_for(f, rng, held_out) + (written if held_out else rng.sample(written, min(hand, len(written))))
