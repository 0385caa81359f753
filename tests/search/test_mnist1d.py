"""MNIST-1D as a search space of real trainings: its networks in MAD's IR, trained from the fx exporter's rebuild,
the budget checked before a training, the moves, and the agent's climb from the seed MLP on a tiny budget."""

import random

import numpy as np
import pytest
import torch

from assistant.search import mnist1d as m
from assistant.search import samplers, study
from gnn.validate import validate
from tests.assistant.ui.test_cli import assert_refused, mad

PAPER_CNN = m.Net(((24, 5, 2), (24, 3, 2), (24, 3, 2)), (), "relu")


def test_the_data_is_generated_here_and_split_for_selection():
    d = m.data()
    assert d["x"].shape == (3500, 40) and d["x_val"].shape == (500, 40) and d["x_test"].shape == (1000, 40)
    assert set(d["y"].tolist()) == set(range(10))
    before = np.random.get_state()[1].copy()
    m.data.cache_clear()
    again = m.data()
    assert torch.equal(again["x"], d["x"])  # seeded: the same signals every time
    assert (np.random.get_state()[1] == before).all()  # and numpy's global generator left as it was


@pytest.mark.parametrize("net", [m.SEED, PAPER_CNN, m.Net(((8, 9, 1), (16, 3, 2)), (32,), "gelu", "max"),
                                 m.Net(((12, 7, 2),), (), "tanh", "mean")])
def test_a_network_is_a_valid_graph_with_the_modules_parameters(net):
    g = m.to_graph(net)
    assert validate(g).errors == []
    module = net.module()
    assert net.size() == sum(p.numel() for p in module.parameters())
    params = {v.target: v.shape for v in g.values_of_kind("parameter")}
    assert params == {k: list(p.shape) for k, p in module.named_parameters()}
    assert {n.module.split(".")[0] for n in g.nodes if n.module} <= {"convs", "hidden", "classifier"}


def test_the_parameter_budget_is_the_papers_cnn_and_is_checked_first():
    assert m.Net(((25, 5, 2), (25, 3, 2), (25, 3, 2)), (), "relu").size() == m.LIMIT == 5210
    big = m.Net(((48, 9, 1),), (128,), "relu")
    assert "over the budget of 5,210" in big.problem()
    assert m.Space(steps=1).evaluate(m.to_params(big)) is None  # refused before any training


def test_moves_are_one_edit_and_stay_in_the_space():
    seed = m.SEED
    moves = seed.neighbours()
    assert moves and all(n.problem() is None for n in moves)
    assert len({str(n) for n in moves}) == len(moves) and str(seed) not in {str(n) for n in moves}
    # inserting a convolution into the MLP near the budget pools its features rather than overflowing
    assert any(n.convs and n.pool == "mean" and n.hidden == (100,) for n in moves)
    assert m.Net(hidden=(64,)) in moves and m.Net(hidden=(100,), act="gelu") in moves and m.Net(hidden=()) in moves
    for net in (seed, PAPER_CNN):
        assert m.Net.parse(str(net)) == net
        assert m.from_params(m.to_params(net)) == net
    rng = random.Random(0)
    space = m.Space(steps=1)
    for _ in range(50):
        p = space.random(rng)
        assert m.from_params(p).problem() is None
        assert m.from_params(space.mutate(p, rng)) in m.from_params(p).neighbours()


def test_training_runs_the_rebuilt_graph_and_learns():
    r = m.train(PAPER_CNN, seed=0, steps=150)
    assert 0.4 < r["valid"] <= 1 and 0.4 < r["test"] <= 1  # chance is 0.1
    assert m.train(PAPER_CNN, seed=0, steps=150) == {**r, "seconds": pytest.approx(r["seconds"], abs=60)}


def test_the_agent_climbs_from_the_seed_mlp():
    space = m.Space(steps=40)
    space.agent = {**space.agent, "rank": 3}  # reading a candidate means tracing it: a small sample here
    s = study.open_study("agent", None, samplers.sampler("mad", space, 0, space.predictor()))
    study.run(s, space, 7, seed=0)
    done = study.complete(s)
    assert m.from_params(done[0].params) == m.SEED  # the first proposal is the seed
    for i, t in enumerate(done[1:], 1):  # every later one is one edit from a result before it
        assert any(m.from_params(t.params) in m.from_params(u.params).neighbours() for u in done[:i])
    assert len({space.key(t.params) for t in done}) == 7
    assert all(t.user_attrs["test"] > 0 and "parameters" in t.user_attrs["arch"] for t in done)


def test_while_the_seed_trains_the_agent_proposes_a_neighbour_of_it():
    import random

    space = m.Space(steps=40)
    agent = samplers.sampler("mad", space, 0, space.predictor())
    for seed in range(5):  # a second worker asks before any result: not a random network, one edit from the seed
        params = agent.propose([], {str(m.SEED)}, random.Random(seed))
        assert m.from_params(params) in m.SEED.neighbours()


def test_mad_search_on_mnist1d(tmp_path, capsys):
    db = tmp_path / "s.db"
    code, out, err = mad(capsys, "search", "--space", "mnist1d:30", "--strategy", "evolution", "--queries", "2",
                         "--storage", db)
    assert code == 0, err
    assert "mnist1d-evolution-0: best of 2 by score" in out and "parameters)" in out


def test_mad_search_refuses_a_bad_mnist1d_budget(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = mad(capsys, "search", "--space", "mnist1d:lots", "--storage", tmp_path / "s.db")
    assert_refused(code, err, "mnist1d's argument is the training steps per candidate, a positive whole number")
    assert list(tmp_path.iterdir()) == []


def test_the_language_model_proposes_in_the_notation_and_learns_from_each_round():
    import re

    from assistant.search.proposer import Proposer

    space = m.Space(steps=20)
    space.agent = {"init": 1, "rank": 2, "round_size": 3, "asks": 3}
    proposer = Proposer(space.notation(), seed=0, steps=1, max_new_tokens=24)
    agent = samplers.sampler("mad", space, 0, space.predictor(), proposer)
    s = study.open_study("llm", None, agent)
    study.run(s, space, 7, seed=0)
    done = study.complete(s)
    assert len({space.key(t.params) for t in done}) == 7
    assert proposer.rounds == 2 and len(proposer.losses) == 2  # learned after results 3 and 6, one step each
    asked = agent._asks  # the last round's proposals: each in the notation, and checked by the space
    assert asked and all(re.fullmatch(m.GRAMMAR, k) and m.Net.parse(k).problem() is None for k in asked)
    assert agent.sources[str(m.SEED)] == "seed" and set(agent.sources.values()) <= {"seed", "mutation", "llm"}
    # the last trial of each round of 3 is the language model's share (a quarter of 3, rounded): its proposal
    assert [agent.sources[space.key(t.params)] for t in done if t.number % 3 == 2] == ["llm", "llm"]
    # frozen, a round of learning leaves the adapter as it was; tuned, it moves it
    lora = {n: p.detach().clone() for n, p in proposer.model.named_parameters() if p.requires_grad}
    proposer.tune = False
    proposer.learn([("fc100 relu", 0.6)], [("conv24k5s2 conv24k3s2 mean relu", 0.9)])
    assert all(torch.equal(p, lora[n]) for n, p in proposer.model.named_parameters() if p.requires_grad)
    proposer.tune = True
    proposer.learn([("fc100 relu", 0.6)], [("conv24k5s2 conv24k3s2 mean relu", 0.9)])
    assert any(not torch.equal(p, lora[n]) for n, p in proposer.model.named_parameters() if p.requires_grad)
