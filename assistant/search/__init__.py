"""The MAD agent: propose, evaluate, score, learn (``mad search``).

* :mod:`~assistant.search.samplers`: who proposes: the agent (mutation and crossover of the best results, ranked
  by the predictor) and the baselines (random, regularized evolution, Optuna's TPE), all Optuna samplers;
* :mod:`~assistant.search.predictor`: the graph transformer with a regression head over graph tokens;
* :mod:`~assistant.search.study`: a search is an Optuna study (storage, resume, status, curves);
* :mod:`~assistant.search.executors`: where evaluations run (a local process pool, or Ray);
* spaces: :mod:`~assistant.search.nas_bench_graph` (NAS-Bench-Graph's cells, written in MAD's IR);
* :mod:`~assistant.search.cli`: the ``mad search`` command.

A pipeline, like the training ones: library code never imports it.
"""
