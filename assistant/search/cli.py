"""``mad search``: run, resume and inspect architecture searches.

    mad search --space nas-bench-graph:cora --strategy mad --queries 100 --storage search.db
    mad search --space mnist1d --strategy mad --queries 60 --workers 2
    mad search --storage search.db --status
    mad search --storage search.db --study cora-mad-0 --plot curve.png

A search is an Optuna study in ``--storage`` (a SQLite file, or any SQLAlchemy URL), named ``--study`` (default
``<dataset>-<strategy>-<seed>``, ``mnist1d-<strategy>-<seed>``); running the same command again after a crash resumes it.
"""

from __future__ import annotations

import argparse
import pathlib

from gnn.errors import MadError


def parser() -> argparse.ArgumentParser:
    from assistant.search.samplers import STRATEGIES

    p = argparse.ArgumentParser(prog="mad search", description="architecture search (an Optuna study)")
    p.add_argument("--space", default="nas-bench-graph:cora",
                   help="nas-bench-graph:<dataset> (cora, citeseer, pubmed, cs, physics, photo, computers, arxiv), "
                   "or mnist1d[:<steps>] (real trainings on MNIST-1D, <steps> per candidate, default 2000)")
    p.add_argument("--strategy", default="mad", choices=STRATEGIES)
    p.add_argument("--queries", type=int, default=100, help="architectures to evaluate (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--storage", default="search.db", help="SQLite file or database URL (default search.db)")
    p.add_argument("--study", help="study name (default <dataset>-<strategy>-<seed>)")
    p.add_argument("--executor", default="local", choices=["local", "ray"], help="where evaluations run")
    p.add_argument("--workers", type=int, default=1, help="evaluations at once")
    p.add_argument("--proposer", default="mutation", choices=["mutation", "llm", "llm-frozen"],
                   help="the agent's proposals: mutation ranked by the predictor (default); with `llm` the language "
                   "model's join them, its adapter tuned on each round's results; `llm-frozen` the same, never tuned "
                   "(spaces with a notation: mnist1d)")
    p.add_argument("--llm", help="the proposer's language model (default SmolLM2-135M-Instruct; any causal LM folder)")
    p.add_argument("--no-transfer", action="store_true", help="the agent's predictor without the other "
                   "datasets' results (NAS-Bench-Graph)")
    p.add_argument("--status", action="store_true", help="show where the studies in --storage stand, run nothing")
    p.add_argument("--plot", metavar="PNG", help="plot best score against queries of --study, run nothing")
    return p


def _space(spec: str):
    """The space ``spec`` names, a function giving the agent's predictor (with or without transfer), and the
    label of its studies."""
    kind, _, arg = spec.partition(":")
    if kind == "nas-bench-graph":
        from assistant.search import nas_bench_graph as nbg

        if arg not in nbg.DATASETS:
            raise MadError(f"unknown NAS-Bench-Graph dataset `{arg}`; datasets are: {', '.join(nbg.DATASETS)}")
        return nbg.Space(arg), (lambda transfer: nbg.predictor_for(arg, transfer)), arg
    if kind == "mnist1d":
        from assistant.search import mnist1d

        if arg and not (arg.isdigit() and int(arg) > 0):
            raise MadError(f"`{spec}`: mnist1d's argument is the training steps per candidate, a positive whole "
                           f"number (default {mnist1d.STEPS})")
        space = mnist1d.Space(int(arg) if arg else mnist1d.STEPS)
        return space, (lambda transfer: space.predictor()), "mnist1d"
    raise MadError(f"unknown search space `{spec}`; spaces are: nas-bench-graph:<dataset>, mnist1d[:<steps>]")


def run(args) -> int:
    """``mad search`` with ``parser()``'s arguments (the ``mad`` command line reports a MadError raised here)."""
    from assistant.search import study as st

    if (args.status or args.plot) and "://" not in args.storage and not pathlib.Path(args.storage).exists():
        raise MadError(f"no search storage at `{args.storage}`; a search run with --storage {args.storage} makes it")
    if args.status:
        print(st.status(args.storage))
        return 0
    if args.queries < 1 or args.workers < 1:
        raise MadError("--queries and --workers must be at least 1")
    if args.plot:
        return _plot(args)
    from assistant.search import executors, samplers

    space, make_predictor, label = _space(args.space)
    llm = args.strategy == "mad" and args.proposer != "mutation"
    if llm and not hasattr(space, "notation"):
        raise MadError(f"--proposer {args.proposer} needs a space the language model can write: mnist1d")
    name = args.study or f"{label}-{args.strategy}{'-' + args.proposer if llm else ''}-{args.seed}"
    predictor = make_predictor(not args.no_transfer) if args.strategy == "mad" else None
    proposer = None
    if llm:
        from assistant.search.proposer import Proposer

        proposer = Proposer(space.notation(), args.llm, tune=args.proposer == "llm", seed=args.seed)
    study = st.open_study(name, args.storage, samplers.sampler(args.strategy, space, args.seed, predictor, proposer),
                          {"space": args.space, "strategy": args.strategy, "seed": args.seed, "queries": args.queries,
                           "proposer": args.proposer if llm else "mutation"})
    executor = executors.make(args.executor, args.workers) if args.workers > 1 or args.executor != "local" else None
    try:
        st.run(study, space, args.queries, executor=executor, keep_graphs=True, seed=args.seed, progress=True)
    finally:
        if executor is not None:
            executor.close()
    b = st.best(study)
    test = f", test {b['test']:.4f}" if b["test"] is not None else ""
    print(f"{name}: best of {len(st.complete(study))} by score: trial {b['number']}, score {b['score']:.4f}{test}"
          + (f", {b['arch']}" if b["arch"] else ""))
    return 0


def _plot(args) -> int:
    import optuna

    from assistant.search import study as st

    if not args.study:
        raise MadError("--plot needs --study (see --status for the names)")
    try:
        study = optuna.load_study(study_name=args.study, storage=st.storage_url(args.storage))
    except KeyError:
        raise MadError(f"no study `{args.study}` in {args.storage}; see `mad search --storage {args.storage} "
                       "--status`") from None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = st.curve(study)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot([c["queries"] for c in curve], [c["score"] for c in curve], label="best score (validation)")
    if all(c["test"] is not None for c in curve):
        ax.plot([c["queries"] for c in curve], [c["test"] for c in curve], label="its test score")
    ax.set_xlabel("queries")
    ax.legend()
    ax.set_title(args.study)
    fig.tight_layout()
    from gnn.fileio import write_with

    write_with(args.plot, lambda path: fig.savefig(path, format="png"))
    print(f"wrote {args.plot}")
    return 0
