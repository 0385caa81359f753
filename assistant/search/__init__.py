"""The MAD agent: propose, evaluate, score, learn (``mad search``).

* :mod:`~assistant.search.samplers`: who proposes: the agent (from a seed or the predictor's best guesses, it
  climbs through the one-edit neighbours of its best result, ranked by the predictor) and the baselines (random,
  regularized evolution, Optuna's TPE), all Optuna samplers;
* :mod:`~assistant.search.predictor`: a head (trees or ridge) refitted on the results, over fixed features (the
  graph transformer's, read from graph tokens, or what a space knows of a candidate);
* :mod:`~assistant.search.study`: a search is an Optuna study (storage, resume, status, curves);
* :mod:`~assistant.search.executors`: where evaluations run (a local process pool, or Ray);
* spaces: :mod:`~assistant.search.nas_bench_graph` (NAS-Bench-Graph's cells, written in MAD's IR, scored by its
  tables) and :mod:`~assistant.search.mnist1d` (1-D CNNs and MLPs, trained for real on MNIST-1D);
* :mod:`~assistant.search.cli`: the ``mad search`` command.

A pipeline, like the training ones: library code never imports it.
"""
