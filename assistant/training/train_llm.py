"""LoRA-tune the language model on instruction data, with graph tokens as in InstructGLM.

    python -m assistant.training.train_llm                 # the shipped adapter, assistant/adapter
    python -m assistant.training.train_llm --no-graph-tokens --out /tmp/no-graph   # the ablation
    accelerate launch -m assistant.training.train_llm      # the same on GPUs

Each prompt carries the graph's one-line outline and ``<graph>`` placeholders, one per
composite of the graph (a block, an embedding, a head); the graph model's composite
embeddings, projected by a trained two-layer MLP into the language model's embedding
space, take the placeholders' places.  LoRA (peft's defaults for the model type: rank
8 on ``q_proj``/``v_proj`` for SmolLM2) and the projector train together; only the
answer's tokens are scored.  The adapter is saved in peft's format
(``adapter_config.json`` + ``adapter_model.safetensors``) with ``projector.safetensors``
and ``graph_tokens.json`` beside it.

Training data: the instruction examples (:mod:`assistant.training.instructions`: the phrasing grammar
and the hand-written requests that hold for the graph, never a held-out phrasing or request)
of every training-split model type, on its full-size graph (the architecture corpus) and on
its narrow variants (:mod:`assistant.training.narrow`: 1, 2 and 3 blocks, and 2-block graphs edited
to multi-query attention, the other norm, another activation), so depth, heads and the
number of graph tokens vary as they do in use.  Facts and graph tokens of both come from
committed files (``corpora/architectures.jsonl`` + ``graph_tokens.safetensors``,
``corpora/narrow.jsonl`` + ``narrow_tokens.safetensors``), so this command alone rebuilds
the adapter.  Where the graph decides that the answer is no (RMSNorm on a model that has it,
GQA groups that do not divide the heads), the model learns to write the edit asked for and
the engine refuses it (:class:`gnn.edits.Infeasible`).  After training, the decoding
(greedy, or beam search reranked by :mod:`assistant.rerank`, and the similarity under which an
edit is asked about instead of made) is chosen on the development requests and written to
``decoding.json`` beside the adapter (``--no-tune`` skips it).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import sys
import time
from dataclasses import dataclass

import torch

from assistant.graph_tokens import (
    GRAPH_TOKEN,
    MAX_GRAPH_TOKENS,
    Projector,
    add_graph_token,
    embed_with_graph,
    graph_placeholder,
)
from assistant.llm import ADAPTER


def _help(text: str, default):
    return dataclasses.field(default=default, metadata={"help": text})


@dataclass
class LLMTrainConfig:
    llm: str | None = _help("the causal LM to tune: a local folder or a cached hub id (default: SmolLM2-135M-Instruct)",
                            None)
    steps: int = _help("optimizer steps: 4 prompts a step take ~11 s on one CPU thread, about an hour for the "
                       "shipped run", 300)
    batch_size: int = _help("prompts per step", 4)
    lr: float = _help("AdamW's peak learning rate for LoRA and the projector (warm-up, cosine decay)", 1e-3)
    graph_tokens: bool = _help("put the graph model's composite embeddings at the prompt's <graph> placeholders "
                               "(--no-graph-tokens: the ablation)", True)
    examples_per_graph: int = _help("examples drawn per graph, of ~32 (full size and up to 6 narrow variants per "
                                    "type)", 8)
    seed: int = _help("seeds the example draw, the order and LoRA's initialisation", 0)
    max_length: int = _help("tokens per example at most (longer ones are cut)", 512)
    out: str = _help("the adapter folder written", str(ADAPTER))


# -- data -----------------------------------------------------------------------------------


def load_corpus() -> list[dict]:
    """Every graph training can draw on: each type at full size (the architecture corpus) and its narrow
    variants (:mod:`assistant.training.narrow`), with their split, facts and graph tokens."""
    from assistant.training.corpora import CORPUS, load_graph_tokens
    from assistant.training.narrow import load_narrow

    if not CORPUS.exists():
        raise SystemExit("no architecture corpus: build it with `python -m assistant.training.corpora`")
    rows = [json.loads(line) for line in CORPUS.read_text().splitlines()]
    tokens = load_graph_tokens()
    for r in rows:
        r["tokens"], r["variant"] = tokens.get(r["model_type"]), "full"
    rows = [r for r in rows if "facts" in r]
    split = {r["model_type"]: r["split"] for r in rows}
    narrow = [dict(r, split=split[r["model_type"]]) for r in load_narrow() if r["model_type"] in split]
    return rows + narrow


def make_examples(rows: list[dict], split: str, held_out: bool, per_graph: int, seed: int) -> list[dict]:
    """Prompt pieces and answers for the graphs of ``split``'s types; held-out phrasings only, or none of them."""
    from assistant.facts import Facts
    from assistant.training.instructions import examples

    out = []
    for r in rows:
        if r["split"] != split:
            continue
        f = Facts(**r["facts"])
        rng = random.Random(f"{seed}-{r['model_type']}-{r['variant']}")
        chosen = examples(f, rng, held_out)
        rng.shuffle(chosen)
        for e in chosen[:per_graph]:
            out.append({"model_type": r["model_type"], "variant": r["variant"], "facts": f, "tokens": r["tokens"],
                        "request": e.request, "intent": e.intent, "answer": e.target})
    return out


def encode(tokenizer, example: dict, graph_tokens: bool, max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids of prompt + answer and labels scoring the answer only."""
    from assistant.prompting import messages

    n = len(example["tokens"]) if graph_tokens and example["tokens"] is not None else 0
    chat = messages(example["facts"], example["request"], graph_placeholder=graph_placeholder(n))
    prompt = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    answer = json.dumps(example["answer"], separators=(",", ":")) + tokenizer.eos_token
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    a = tokenizer(answer, add_special_tokens=False)["input_ids"]
    ids = (p + a)[:max_length]
    labels = ([-100] * len(p) + a)[:max_length]
    return torch.tensor(ids), torch.tensor(labels)


# -- training -------------------------------------------------------------------------------


def _require_graph_tokens(graphs: list[dict]) -> None:
    """Stop, saying which command builds them, when any of ``graphs`` (corpus rows or examples) has no graph tokens."""
    missing = sorted({(g["model_type"], g.get("variant", "full")) for g in graphs if g["tokens"] is None})
    if missing:
        full = any(v == "full" for _, v in missing)  # the corpus's full-size graphs, else the narrow variants
        raise SystemExit(f"no graph tokens for {len(missing)} graphs ({', '.join(f'{t}@{v}' for t, v in missing[:3])}, "
                         f"...) in corpora/{'graph_tokens' if full else 'narrow_tokens'}.safetensors: build them "
                         f"with `python -m assistant.training.{'corpora' if full else 'narrow'}`, or train with --no-graph-tokens")


def train(cfg: LLMTrainConfig, examples: list[dict] | None = None, progress: bool = True):
    from accelerate import Accelerator
    from peft import LoraConfig, get_peft_model
    from tqdm import tqdm

    from assistant.llm import load

    if examples is None:
        rows = [r for r in load_corpus() if r["split"] == "train"]
        if cfg.graph_tokens:  # before drawing examples for every graph (minutes), not after
            _require_graph_tokens(rows)
        examples = make_examples(rows, "train", False, cfg.examples_per_graph, cfg.seed)
    if not examples:
        raise SystemExit("no training examples")
    if cfg.graph_tokens:
        _require_graph_tokens(examples)
    torch.manual_seed(cfg.seed)
    accelerator = Accelerator()
    base, tokenizer = load(cfg.llm, log=print)
    graph_id = add_graph_token(tokenizer)
    model = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM"))  # peft's default targets and rank
    d_graph = next((len(e["tokens"][0]) for e in examples if e["tokens"] is not None), 96)
    projector = Projector(d_graph, base.config.hidden_size) if cfg.graph_tokens else None
    params = [p for p in model.parameters() if p.requires_grad] + (list(projector.parameters()) if projector else [])
    opt = torch.optim.AdamW(params, lr=cfg.lr)
    warmup = max(1, cfg.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / cfg.steps))))
    model, opt, sched = accelerator.prepare(model, opt, sched)
    if projector is not None:
        projector = accelerator.prepare(projector)
    encoded: dict[int, tuple] = {}  # encoded when first drawn: a run sees a fraction of the examples
    rng = random.Random(cfg.seed)
    order: list[int] = []
    history = []
    model.train()
    bar = tqdm(range(cfg.steps), disable=not (progress and accelerator.is_main_process), desc="train llm")
    start = time.perf_counter()
    for step in bar:
        if len(order) < cfg.batch_size:
            order += rng.sample(range(len(examples)), len(examples))
        batch, order = order[:cfg.batch_size], order[cfg.batch_size:]
        for i in batch:
            if i not in encoded:
                encoded[i] = encode(tokenizer, examples[i], cfg.graph_tokens, cfg.max_length)
        length = max(len(encoded[i][0]) for i in batch)
        ids = torch.full((len(batch), length), tokenizer.pad_token_id)
        labels = torch.full((len(batch), length), -100)
        attention = torch.zeros((len(batch), length), dtype=torch.long)
        for row, i in enumerate(batch):
            x, y = encoded[i]
            ids[row, :len(x)], labels[row, :len(y)], attention[row, :len(x)] = x, y, 1
        ids, labels, attention = ids.to(accelerator.device), labels.to(accelerator.device), attention.to(accelerator.device)
        embeds = embed_with_graph(model, ids, graph_id, [examples[i]["tokens"] for i in batch], projector)
        loss = model(inputs_embeds=embeds, attention_mask=attention, labels=labels).loss
        opt.zero_grad()
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        history.append(round(loss.item(), 4))
        bar.set_postfix(loss=f"{loss.item():.3f}")
    seconds = round(time.perf_counter() - start, 1)
    if cfg.out and accelerator.is_main_process:
        save(accelerator.unwrap_model(model), accelerator.unwrap_model(projector) if projector else None,
             tokenizer, cfg, {"loss": history, "seconds": seconds, "examples": len(examples)})
    return model, projector, history


def save(model, projector, tokenizer, cfg: LLMTrainConfig, log: dict) -> None:
    """The adapter in peft's format, the projector and the run's record, written to a temporary folder first."""
    from safetensors.torch import save_file

    from assistant.llm import is_default
    from gnn.fileio import staged_dir

    if is_default(cfg.llm):  # the default model by its hub name, not this machine's cache path
        model.peft_config["default"].base_model_name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct"
    with staged_dir(cfg.out) as tmp:
        model.save_pretrained(tmp)
        (tmp / "README.md").unlink(missing_ok=True)  # peft's blank model card; docs/assistant.md describes it
        if projector is not None:
            save_file({k: v.contiguous() for k, v in projector.state_dict().items()}, str(tmp / "projector.safetensors"))
        (tmp / "graph_tokens.json").write_text(json.dumps({
            "token": GRAPH_TOKEN, "max_tokens": MAX_GRAPH_TOKENS, "graph_tokens": cfg.graph_tokens,
            "d_graph": projector.net[0].in_features if projector is not None else None,
            "train": dataclasses.asdict(cfg), "loss": log["loss"], "seconds": log["seconds"],
            "examples": log["examples"]}, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    from gnn.training.options import add_options, from_options

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(parser, LLMTrainConfig)
    parser.add_argument("--no-tune", dest="tune", action="store_false",
                        help="skip choosing the decoding (greedy or reranked beams, and the floor under which an "
                             "edit is asked about) on the development requests")
    args = parser.parse_args(argv)
    tune = args.tune
    cfg = from_options(args, LLMTrainConfig)
    _, _, history = train(cfg)
    print(json.dumps({"steps": cfg.steps, "final_loss": history[-1]}))
    if tune:  # ~10 min: decoding.json beside the adapter (assistant.rerank)
        from assistant.training.evaluate_llm import test_cases, tune_rerank

        print(json.dumps(tune_rerank(cfg.out, test_cases(10, 8, dev=True), llm=cfg.llm)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
