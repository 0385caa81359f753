"""Who proposes the next architecture: every strategy is an Optuna sampler, so every search is an Optuna study
(its storage, resume and dashboard) and the baselines run through the same code as the agent.

* ``random``: Optuna's ``RandomSampler``;
* ``tpe``: Optuna's ``TPESampler`` (its defaults);
* ``evolution``: regularized evolution (Real et al., 2019): a population of the last ``population`` results,
  tournaments of ``sample``, the winner mutated once, the oldest dropped;
* ``mad``: the MAD agent: proposals from mutation of the best results so far (every one-change neighbour of the
  best, where the space lists them; else mutants and crossovers) and, with a proposer, the language model's
  (:mod:`~assistant.search.proposer`), ranked by the predictor (:mod:`~assistant.search.predictor`, refitted on
  the results) before any is evaluated; the best-ranked new one is evaluated.

A space (:class:`Space`) says what a candidate is: its Optuna parameters, its key (two candidates with one key are
one architecture: never evaluated twice by evolution or the agent), its moves (mutation, crossover).
"""

from __future__ import annotations

import random
from typing import Protocol

import numpy as np
import optuna
from optuna.samplers import BaseSampler


class Space(Protocol):
    def distributions(self) -> dict: ...

    def key(self, params: dict): ...

    def random(self, rng: random.Random) -> dict: ...

    def mutate(self, params: dict, rng: random.Random) -> dict: ...

    def crossover(self, a: dict, b: dict, rng: random.Random) -> dict: ...


STRATEGIES = ("random", "tpe", "evolution", "mad")


def sampler(name: str, space: Space, seed: int, predictor=None, proposer=None) -> BaseSampler:
    """The sampler called ``name`` (one of :data:`STRATEGIES`); the agent's ``proposer`` is the language model
    (:class:`~assistant.search.proposer.Proposer`), or None for mutation alone."""
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "evolution":
        return Evolution(space, seed)
    if name == "mad":
        return Agent(space, seed, predictor, proposer=proposer, **getattr(space, "agent", {}))
    from gnn.errors import MadError

    raise MadError(f"unknown search strategy `{name}`; strategies are: {', '.join(STRATEGIES)}")


class _Proposer(BaseSampler):
    """A sampler that proposes a whole candidate at once (relative sampling over the space's distributions),
    from the completed trials; its random stream is seeded by the study's seed and the trial's number, so a
    resumed search proposes what the uninterrupted one would have."""

    def __init__(self, space: Space, seed: int):
        self.space, self.seed = space, seed

    def infer_relative_search_space(self, study, trial):
        return self.space.distributions()

    def sample_relative(self, study, trial, search_space):
        if not search_space:
            return {}
        rng = random.Random(self.seed * 1_000_003 + trial.number)
        from assistant.search.study import complete

        done = complete(study)
        seen = {self.space.key(t.params) for t in study.get_trials(deepcopy=False) if t.params}
        self.number = trial.number
        return self.propose(done, seen, rng)

    def sample_independent(self, study, trial, param_name, param_distribution):
        rng = random.Random(self.seed * 7_919 + trial.number)
        return param_distribution.to_external_repr(rng.randrange(len(param_distribution.choices)))

    def propose(self, done: list, seen: set, rng: random.Random) -> dict:
        raise NotImplementedError

    def _new(self, make, seen: set, rng: random.Random, tries: int = 200) -> dict:
        """``make()`` until it gives a candidate not yet seen (a random one if it keeps failing)."""
        for _ in range(tries):
            params = make()
            if self.space.key(params) not in seen:
                return params
        while True:
            params = self.space.random(rng)
            if self.space.key(params) not in seen:
                return params


class Evolution(_Proposer):
    def __init__(self, space: Space, seed: int, population: int = 20, sample: int = 5):
        super().__init__(space, seed)
        self.population, self.sample = population, sample

    def propose(self, done, seen, rng):
        if len(done) < self.population:
            return self._new(lambda: self.space.random(rng), seen, rng)
        alive = sorted(done, key=lambda t: t.number)[-self.population:]

        def child():
            parent = max(rng.sample(alive, self.sample), key=lambda t: t.value)
            return self.space.mutate(dict(parent.params), rng)

        return self._new(child, seen, rng)


class Agent(_Proposer):
    """The MAD agent's proposer.  Its first ``init`` proposals are the space's seed architecture (``start``, where
    it has one) and then the best, by the predictor's prior, of a pool of random cells.  Then it climbs: where the
    space lists a candidate's neighbours (every one-change mutant), the pool is the unevaluated neighbours of the
    best result that has any left (a random sample of ``rank`` of them, where given); otherwise mutants and
    crossovers of the ``top`` best results.  The language model's proposals of the round join the pool, and the
    predictor, refitted on the results, picks the one to evaluate.  A share ``llm_share`` of each round's
    evaluations (its last trials) is kept for the language model's proposals alone (the predictor picks among
    them), so the proposer is judged on what it writes, not only on what the predictor lets through."""

    def __init__(self, space: Space, seed: int, predictor, pool: int = 600, top: int = 10, explore: float = 0.1,
                 init: int = 10, rank: int | None = None, proposer=None, round_size: int = 20, asks: int = 16,
                 llm_share: float = 0.25):
        super().__init__(space, seed)
        self.predictor, self.pool, self.top, self.explore, self.init = predictor, pool, top, explore, init
        self.rank = rank  # rank at most this many of a pool (a random sample): where reading a candidate costs
        # the language model (assistant.search.proposer.Proposer): every ``round_size`` results it learns from the
        # round's and writes ``asks`` proposals, which join every pool of the next round
        self.proposer, self.round_size, self.asks = proposer, round_size, asks
        self.quota = round(llm_share * round_size) if proposer is not None else 0
        self.number = 0  # the trial being proposed (set by sample_relative)
        self._asks_round, self._asks = None, {}
        self.sources: dict = {}  # key -> who proposed it: "seed", "prior", "mutation" or "llm"

    def propose(self, done, seen, rng):
        if len(done) < self.init:
            start = getattr(self.space, "start", None)  # a seed architecture the space starts from
            if start is not None and self.space.key(start()) not in seen:
                self.sources[self.space.key(start())] = "seed"
                return start()
            if start is not None and getattr(self.space, "neighbours", None) is not None:
                # the seed is still training (another worker): a neighbour of it, not a random cell
                pool = {self.space.key(p): p for p in self.space.neighbours(start())}
                pool = {k: p for k, p in pool.items() if k not in seen}
                if pool:
                    return self._ranked(pool, done, rng)
            return self._pooled(done, seen, rng)
        llm = self._asked(done, seen)
        if llm and self.number % self.round_size >= self.round_size - self.quota:
            return self._ranked({}, done, rng, llm)  # the language model's share of the round
        neighbours = getattr(self.space, "neighbours", None)
        if neighbours is not None:
            for parent in sorted(done, key=lambda t: (-t.value, t.number)):
                pool = {}
                for params in neighbours(dict(parent.params)):
                    key = self.space.key(params)
                    if key not in seen:
                        pool.setdefault(key, params)
                if pool:
                    return self._ranked(pool, done, rng, llm)
        return self._pooled(done, seen, rng, llm)

    def _asked(self, done, seen) -> dict:
        """The language model's proposals of this round not yet evaluated, each checked by the space (``parse``:
        None for one outside it); at a round's start it first learns from the rounds completed."""
        if self.proposer is None:
            return {}
        now = len(done) // self.round_size
        if self._asks_round != now:
            scored = [(self.space.key(t.params), t.value) for t in sorted(done, key=lambda t: t.number)]
            while self.proposer.rounds < now:  # (a resumed search catches up here)
                r, size = self.proposer.rounds, self.round_size
                self.proposer.learn(scored[: r * size], scored[r * size:(r + 1) * size])
            self._asks_round, self._asks = now, {}
            for text in self.proposer.propose(scored[: now * self.round_size] or scored, self.asks, seen):
                params = self.space.parse(text)
                if params is not None:
                    self._asks.setdefault(self.space.key(params), params)
        return {k: v for k, v in self._asks.items() if k not in seen}

    def _ranked(self, pool: dict, done: list, rng: random.Random, llm: dict | None = None) -> dict:
        keys = list(pool)
        rng.shuffle(keys)  # ties (a predictor with nothing to go on yet) are broken at random
        if self.rank is not None:
            keys = keys[: self.rank]
        llm = {k: v for k, v in (llm or {}).items() if k not in keys}
        keys += list(llm)
        scores = self.predictor.scores([self.space.key(t.params) for t in done], [t.value for t in done], keys)
        key = keys[int(np.argmax(scores))]
        self.sources[key] = "llm" if key in llm else "mutation" if done else "prior"
        return llm.get(key) or pool[key]

    def _pooled(self, done, seen, rng, llm: dict | None = None):
        best = sorted(done, key=lambda t: -t.value)[: self.top]
        pool: dict = {}
        for _ in range(4 * self.pool):  # near a few parents, distinct mutants run out: the pool stays smaller
            if len(pool) >= self.pool:
                break
            if not best or rng.random() < self.explore:
                params = self.space.random(rng)
            elif len(best) > 1 and rng.random() < 0.3:
                a, b = rng.sample(best, 2)
                params = self.space.crossover(dict(a.params), dict(b.params), rng)
            else:
                params = dict(rng.choice(best).params)
                for _ in range(1 + (rng.random() < 0.3)):
                    params = self.space.mutate(params, rng)
            key = self.space.key(params)
            if key not in seen:
                pool.setdefault(key, params)
        if not pool and not llm:
            return self._new(lambda: self.space.random(rng), seen, rng)
        return self._ranked(pool, done, rng, llm)
