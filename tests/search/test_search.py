"""The search loop on tiny budgets: every strategy through one Optuna loop, the agent's proposals, resume after a
kill with no evaluation lost or repeated, the executors (a process pool, a local Ray), and `mad search`."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import optuna
import pytest

from assistant.search import nas_bench_graph as nbg
from assistant.search import samplers, study
from assistant.search.predictor import Online
from tests.assistant.ui.test_cli import assert_refused, mad


def _onehot_predictor():
    """The agent's predictor over cheap features (the graph transformer's take minutes to compute for the space)."""
    archs = nbg.space()
    feats = np.array([[a.link == k for k in nbg.LINKS] + [a.ops[i] == op for i in range(4) for op in nbg.OPS]
                      for a in archs], dtype=float)
    return Online([a.key for a in archs], feats, prior=feats @ np.linspace(-1, 1, feats.shape[1]))


@pytest.mark.parametrize("strategy", samplers.STRATEGIES)
def test_every_strategy_runs_through_one_loop(strategy):
    space = nbg.Space("cora")
    s = study.open_study(strategy, None, samplers.sampler(strategy, space, 0, _onehot_predictor()))
    study.run(s, space, 30, seed=0)
    done = study.complete(s)
    assert len(done) == 30
    b = study.best(s)
    assert b["score"] == max(t.value for t in done)
    assert b["test"] == space.results[nbg.Arch.from_params(b["params"]).key]["test"]
    assert [c["queries"] for c in study.curve(s)] == list(range(1, 31))
    if strategy in ("evolution", "mad"):  # they never evaluate one architecture twice
        assert len({space.key(t.params) for t in done}) == 30


def test_the_agents_first_proposal_is_the_predictors_best_and_it_exploits_results():
    space, predictor = nbg.Space("cora"), _onehot_predictor()
    s = study.open_study("agent", None, samplers.sampler("mad", space, 0, predictor))
    study.run(s, space, 1)
    first = study.complete(s)[0]
    # the first pool is 600 random cells; the one evaluated is the best of them by the prior
    assert predictor.prior[predictor.row[space.key(first.params)]] >= np.quantile(predictor.prior, 0.99)
    study.run(s, space, 15)
    done = study.complete(s)
    # after five results it proposes around the results: mutants and crossovers, rarely fresh random cells
    near = [t for i, t in enumerate(done[5:], 5)
            if any(sum(t.params[k] != u.params[k] for k in t.params) <= 2 for u in done[:i])]
    assert len(near) >= 8


def test_a_resumed_search_makes_the_same_proposals():
    space = nbg.Space("pubmed")
    a = study.open_study("a", None, samplers.sampler("evolution", space, 3))
    study.run(a, space, 25)
    b = study.open_study("b", None, samplers.sampler("evolution", space, 3))
    study.run(b, space, 10)
    study.run(b, space, 25)  # a second process would open the same storage; the sampler reads only the trials
    assert [t.params for t in study.complete(a)] == [t.params for t in study.complete(b)]


SCRIPT = """
import os, sys, time
from assistant.search import nas_bench_graph as nbg, samplers, study

class Logged(nbg.Space):
    def evaluate(self, params, seed=0):
        with open(os.environ["LOG"], "a") as f:
            f.write(f"start {{self.key(params)}}\\n")
        if os.environ.get("HANG_AT") and sum(1 for _ in open(os.environ["LOG"])) >= int(os.environ["HANG_AT"]):
            time.sleep(600)  # killed here, mid-evaluation
        r = super().evaluate(params, seed)
        with open(os.environ["LOG"], "a") as f:
            f.write(f"end {{self.key(params)}}\\n")
        return r

space = Logged("cora")
s = study.open_study("resume", "{db}", samplers.sampler("evolution", space, 0))
study.run(s, space, 30)
"""


def test_kill_mid_run_and_resume_loses_and_repeats_nothing(tmp_path):
    db, log = tmp_path / "s.db", tmp_path / "evals.log"
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(SCRIPT.format(db=f"sqlite:///{db}")))
    env = dict(os.environ, LOG=str(log), HANG_AT=str(2 * 12 - 1), PYTHONPATH=os.getcwd())
    proc = subprocess.Popen([sys.executable, str(script)], env=env)
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and log.read_text().count("start") == 12):
        time.sleep(0.2)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = optuna.load_study(study_name="resume", storage=f"sqlite:///{db}")
    assert len(study.complete(killed)) == 11
    running = killed.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    assert len(running) == 1  # the evaluation the kill interrupted
    env.pop("HANG_AT")
    subprocess.run([sys.executable, str(script)], env=env, check=True, timeout=300)
    s = optuna.load_study(study_name="resume", storage=f"sqlite:///{db}")
    done = study.complete(s)
    assert len(done) == 30
    lines = log.read_text().split()
    ended = [int(k) for kind, k in zip(lines[::2], lines[1::2]) if kind == "end"]
    assert sorted(ended) == sorted(t.user_attrs["key"] for t in done)  # every finished evaluation stored, once
    assert len(set(ended)) == 30  # and none repeated
    retry = [t for t in done if t.user_attrs.get("retry_of") == running[0].number]
    assert len(retry) == 1 and retry[0].params == running[0].params  # the interrupted one, evaluated once after


def test_local_process_pool_evaluates_in_order():
    from assistant.search.executors import Local

    space = nbg.Space("cora")
    pool = Local(2)
    try:
        s = study.open_study("pool", None, samplers.sampler("random", space, 1))
        study.run(s, space, 8, executor=pool)
    finally:
        pool.close()
    for t in study.complete(s):
        assert t.value == space.evaluate(t.params)["score"]


def test_ray_executor_on_a_local_ray_instance():
    pytest.importorskip("ray")
    from assistant.search.executors import Ray

    space = nbg.Space("photo")
    executor = Ray(2)  # starts a local Ray instance, and stops it on close
    try:
        s = study.open_study("ray", None, samplers.sampler("evolution", space, 2))
        study.run(s, space, 6, executor=executor)
    finally:
        executor.close()
    done = study.complete(s)
    assert len(done) == 6
    for t in done:
        assert t.value == space.evaluate(t.params)["score"] and t.user_attrs["test"] == space.evaluate(t.params)["test"]


def test_mad_search_runs_resumes_and_reports(tmp_path, capsys):
    db = tmp_path / "s.db"
    code, out, err = mad(capsys, "search", "--space", "nas-bench-graph:citeseer", "--strategy", "random",
                         "--queries", "5", "--storage", db)
    assert code == 0, err
    assert "citeseer-random-0: best of 5 by score" in out
    code, out, _ = mad(capsys, "search", "--space", "nas-bench-graph:citeseer", "--strategy", "random",
                       "--queries", "7", "--storage", db)
    assert "best of 7" in out  # the same study, two more
    code, out, _ = mad(capsys, "search", "--storage", db, "--status")
    assert code == 0 and "citeseer-random-0: 7 of 7 complete" in out and "best: trial" in out
    s = optuna.load_study(study_name="citeseer-random-0", storage=f"sqlite:///{db}")
    assert all('"format": "mad-graph"' in t.user_attrs["graph"] for t in study.complete(s))  # the graph, stored
    code, out, _ = mad(capsys, "search", "--storage", db, "--study", "citeseer-random-0", "--plot", tmp_path / "c.png")
    assert code == 0 and (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("argv, message", [
    (["--space", "nas-bench-graph:mnist"], "unknown NAS-Bench-Graph dataset `mnist`; datasets are: cora"),
    (["--space", "nats:cifar10"], "unknown search space `nats:cifar10`; spaces are: nas-bench-graph:<dataset>"),
    (["--queries", "0"], "--queries and --workers must be at least 1"),
    (["--proposer", "llm"], "--proposer llm needs a space the language model can write: mnist1d"),
    (["--status"], "no search storage at"),
    (["--plot", "x.png"], "no search storage at"),
])
def test_mad_search_refusals_write_nothing(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = mad(capsys, "search", "--storage", tmp_path / "s.db", *argv)
    assert_refused(code, err, message)
    assert list(tmp_path.iterdir()) == []
