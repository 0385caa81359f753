"""The language model as the agent's proposer (EvoPrompting, Chen et al., 2023): prompted with the best and the
worst architectures scored so far, it writes new ones in the space's notation, decoded under that notation's
grammar (lm-format-enforcer's regular-expression parser), so every answer parses; the engine (the space) then
checks each before it can cost an evaluation.  After each round it learns from its own results: its LoRA adapter
(peft's defaults) is tuned for a few steps on the round's best architectures as the answers to the prompt the
round started from, so its proposals improve as it works; ``tune=False`` is the same loop with it frozen.

A space gives :class:`Notation`: what its architectures look like written down (a regular expression and a
sentence), and the task in a sentence.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Notation:
    task: str  # the task, in a sentence ("1-D CNNs for MNIST-1D ...")
    grammar: str  # a regular expression every architecture written down matches
    example: str  # how to read one


class Proposer:
    """``propose(scored, n)``: up to ``n`` new architectures (the space's keys) from the language model;
    ``learn(prompt_scored, round_scored)``: tune its adapter on a round's results (nothing when frozen)."""

    def __init__(self, notation: Notation, llm: str | None = None, tune: bool = True, seed: int = 0,
                 shown: int = 6, steps: int = 6, lr: float = 3e-3, temperature: float = 0.9, max_new_tokens: int = 48):
        import torch
        from peft import LoraConfig, get_peft_model

        from assistant.interpret import tokenizer_data
        from assistant.llm import load

        base, self.tokenizer = load(llm, fresh=True, log=lambda *a: None)
        torch.manual_seed(seed)
        self.model = get_peft_model(base, LoraConfig(task_type="CAUSAL_LM"))  # peft's default targets and rank
        self.model.eval()
        self.notation, self.tune, self.shown, self.steps = notation, tune, shown, steps
        self.temperature, self.max_new_tokens = temperature, max_new_tokens
        # lr: at 3e-4 a round's 6 steps leave the sampled proposals as they were (measured); at 3e-3 they move
        # towards the round's best
        self.opt = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad], lr=lr)
        self._tokenizer_data = tokenizer_data(self.tokenizer)
        self.seed, self.rounds, self.losses = seed, 0, []

    def chat(self, scored: list[tuple[str, float]]) -> list[dict]:
        """The prompt: the task, the notation, the best and the worst results so far with their scores."""
        ranked = sorted(scored, key=lambda kv: -kv[1])
        best = ranked[: self.shown]
        worst = ranked[self.shown:][-max(1, self.shown // 3):]
        lines = [f"{key}: {value:.3f}" for key, value in best + worst]
        return [{"role": "system", "content": f"You design neural networks. {self.notation.task} "
                 f"{self.notation.example}"},
                {"role": "user", "content": "Scored networks (validation accuracy):\n" + "\n".join(lines)
                 + "\nWrite one new network, different from these, that will score higher."}]

    def propose(self, scored: list[tuple[str, float]], n: int, seen: set | None = None) -> list[str]:
        import torch
        from lmformatenforcer import RegexParser, TokenEnforcer

        chat = self.chat(scored)
        ids = self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt",
                                                 return_dict=True)
        enforcer = TokenEnforcer(self._tokenizer_data, RegexParser(self.notation.grammar))

        def allowed(batch_id, sent):
            return enforcer.get_allowed_tokens(sent.tolist()).allowed_tokens

        torch.manual_seed(self.seed * 7919 + len(scored))
        with torch.no_grad():
            out = self.model.generate(**ids, do_sample=True, temperature=self.temperature, num_return_sequences=n,
                                      max_new_tokens=self.max_new_tokens, prefix_allowed_tokens_fn=allowed,
                                      pad_token_id=self.tokenizer.pad_token_id)
        start = ids["input_ids"].shape[1]
        texts = [self.tokenizer.decode(s[start:], skip_special_tokens=True).strip() for s in out]
        seen = set(seen or ()) | {k for k, _ in scored}
        return [t for t in dict.fromkeys(texts) if t and t not in seen]

    def learn(self, before: list[tuple[str, float]], round_scored: list[tuple[str, float]], top: float = 0.25) -> None:
        """Tune the adapter on the round's best (its top quarter) as answers to the prompt of the results before
        the round: the next rounds' proposals move towards what scored well."""
        self.rounds += 1
        if not self.tune or not round_scored:
            return
        import torch

        ranked = sorted(round_scored, key=lambda kv: -kv[1])
        targets = [k for k, _ in ranked[: max(1, round(top * len(ranked)))]]
        prompt = self.tokenizer.apply_chat_template(self.chat(before or round_scored), add_generation_prompt=True,
                                                    tokenize=False)
        p = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        rows = []
        for t in targets:
            a = self.tokenizer(t + self.tokenizer.eos_token, add_special_tokens=False)["input_ids"]
            rows.append((p + a, [-100] * len(p) + a))
        width = max(len(x) for x, _ in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([x + [pad] * (width - len(x)) for x, _ in rows])
        labels = torch.tensor([y + [-100] * (width - len(y)) for _, y in rows])
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x, _ in rows])
        self.model.train()
        for _ in range(self.steps):
            loss = self.model(input_ids=ids, attention_mask=mask, labels=labels).loss
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            self.losses.append(round(float(loss.detach()), 4))
        self.model.eval()
