"""A search is an Optuna study: every evaluated architecture is a trial (its parameters are the proposal; its value
the score; its user attributes the test score, cost, key, architecture and graph), in Optuna's storage (SQLite by
default, any SQL server for many workers), so a search resumes where it stopped and its results train later runs.

Resuming: trials a killed search left running were never scored; they are marked failed and their proposals
queued again (Optuna's ``enqueue_trial``), so no evaluation is lost and none is repeated; the search then runs
until ``queries`` trials are complete.
"""

from __future__ import annotations

import json

import optuna
from optuna.trial import TrialState

optuna.logging.set_verbosity(optuna.logging.WARNING)


def storage_url(path: str | None) -> str | None:
    """A storage URL for Optuna: a path becomes SQLite; a URL (``sqlite:///``, ``postgresql://``, ...) stays."""
    if path is None or "://" in path:
        return path
    return f"sqlite:///{path}"


def open_study(name: str, storage: str | None, sampler, attrs: dict | None = None) -> optuna.Study:
    study = optuna.create_study(study_name=name, storage=storage_url(storage), sampler=sampler,
                                direction="maximize", load_if_exists=True)
    for k, v in (attrs or {}).items():  # what it was last run with (--queries may grow it)
        study.set_user_attr(k, v)
    return study


def recover(study: optuna.Study) -> int:
    """Fail the trials a killed run left running and queue their proposals again; returns how many."""
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in stale:
        study.tell(t.number, state=TrialState.FAIL)
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
    return len(stale)


def complete(study: optuna.Study) -> list:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def run(study: optuna.Study, space, queries: int, executor=None, keep_graphs: bool = False, seed: int = 0,
        progress: bool = False) -> optuna.Study:
    """Run ``study`` until ``queries`` trials are complete: ask the sampler for a batch (one per worker of
    ``executor``, one without), evaluate them (the executor's workers, or here), tell the results."""
    from tqdm import tqdm

    recover(study)
    done = len(complete(study))
    workers = getattr(executor, "workers", 1)
    bar = tqdm(total=queries, initial=done, desc=f"search {study.study_name}", disable=not progress)
    dists = space.distributions()
    while done < queries:
        trials = [study.ask(fixed_distributions=dists) for _ in range(min(workers, queries - done))]
        proposals = [dict(t.params) for t in trials]
        results = executor.map(space.evaluate, proposals, seed) if executor else [space.evaluate(p, seed)
                                                                                  for p in proposals]
        for trial, params, r in zip(trials, proposals, results):
            if r is None:
                study.tell(trial, state=TrialState.FAIL)
                continue
            for k in ("test", "cost", "key", "arch"):
                if k in r:
                    trial.set_user_attr(k, r[k])
            trial.set_user_attr("seed", seed)
            if keep_graphs and hasattr(space, "graph"):
                from gnn.ir.serialize import to_json

                trial.set_user_attr("graph", to_json(space.graph(params)))
            study.tell(trial, r["score"])
            done += 1
            bar.update(1)
    bar.close()
    return study


def best(study: optuna.Study) -> dict:
    """The trial chosen by its score (validation), with its test score: what a search reports."""
    trials = complete(study)
    t = max(trials, key=lambda t: (t.value, -t.number))
    return {"number": t.number, "score": t.value, "test": t.user_attrs.get("test"), "arch": t.user_attrs.get("arch"),
            "params": t.params}


def curve(study: optuna.Study) -> list[dict]:
    """After each complete trial: the best score so far and the test score of the trial that holds it."""
    out, top = [], None
    for t in sorted(complete(study), key=lambda t: t.number):
        if top is None or t.value > top.value:
            top = t
        out.append({"queries": len(out) + 1, "score": top.value, "test": top.user_attrs.get("test")})
    return out


def status(storage: str) -> str:
    """Where every study in ``storage`` stands: trials by state, the best so far."""
    lines = []
    for s in optuna.get_all_study_summaries(storage_url(storage), include_best_trial=True):
        study = optuna.load_study(study_name=s.study_name, storage=storage_url(storage))
        states = {}
        for t in study.get_trials(deepcopy=False):
            states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
        target = study.user_attrs.get("queries")
        head = f"{s.study_name}: {states.get('complete', 0)}" + (f" of {target}" if target else "") + " complete"
        extra = ", ".join(f"{n} {k}" for k, n in sorted(states.items()) if k != "complete")
        lines.append(head + (f" ({extra})" if extra else ""))
        if s.best_trial is not None:
            b = s.best_trial
            test = b.user_attrs.get("test")
            lines.append(f"  best: trial {b.number}, score {b.value:.4f}" + (f", test {test:.4f}" if test is not None
                                                                            else "") +
                         (f", {b.user_attrs['arch']}" if "arch" in b.user_attrs else ""))
        if study.user_attrs:
            lines.append("  " + json.dumps({k: v for k, v in study.user_attrs.items()}, sort_keys=True))
    return "\n".join(lines) if lines else f"no studies in {storage}"
