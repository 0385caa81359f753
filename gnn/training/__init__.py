"""Pipelines that build the graph model: the dataset, its splits and tasks, training and evaluation.

Nothing in the library imports these (tests/test_layering.py checks it)."""
