"""Bounded work (issue 23): a config estimated over the limit is refused before anything is built or traced, with
the estimate and how to lift the limit; the estimate counts every stack of every sub-config."""

from __future__ import annotations

import time

import pytest

from gnn.errors import SourceError
from gnn.importers import budget
from gnn.importers.hf import HFOptions, import_hf, traced_config
from tests.assistant.ui.test_cli import LLAMA_SET, assert_refused, mad


@pytest.mark.parametrize("spec, overrides, blocks", [
    ("hf:llama", {}, {"llama.num_hidden_layers": 32}),
    ("hf:bart", {}, {"bart.encoder_layers": 12, "bart.decoder_layers": 12}),
    ("hf:t5", {"num_decoder_layers": 3}, {"t5.num_layers": 6, "t5.num_decoder_layers": 3}),
    ("hf:llava", {}, {"llama.num_hidden_layers": 32, "clip_vision_model.num_hidden_layers": 24}),
    ("hf:swin", {}, {"swin.depths": 12}),  # stages' depths, not the stage count as well
])
def test_the_estimate_counts_every_stack(spec, overrides, blocks):
    est = budget.estimate(traced_config(spec, overrides))
    assert est.layers == blocks
    assert est.ops == budget.BASE_OPS + budget.OPS_PER_LAYER * sum(blocks.values())


def test_the_estimate_errs_high_on_a_real_trace():
    small = {"hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2}
    for layers in (1, 3):
        overrides = {**small, "num_hidden_layers": layers}
        graph = import_hf("hf:llama", HFOptions(overrides=overrides, seq_len=8))
        assert len(graph.nodes) <= budget.estimate(traced_config("hf:llama", overrides)).ops


def test_a_huge_depth_is_refused_at_once_with_the_estimate_and_the_way_out(tmp_path, capsys):
    out = tmp_path / "g.json"
    start = time.perf_counter()
    code, _, err = mad(capsys, "import", "hf:llama", "--set", "num_hidden_layers=5000", "-o", out)
    assert time.perf_counter() - start < 10  # a full trace would take many minutes
    assert_refused(code, err, "`hf:llama` is estimated at 750,200 ops (5,000 blocks, about 17 minutes to trace)",
                   "over the limit of 40,000", "--set num_hidden_layers=N, now 5,000", "--max-ops 750200",
                   "MAD_MAX_OPS=750200")
    assert list(tmp_path.iterdir()) == []


def test_the_limit_is_lifted_by_the_flag_and_by_the_environment(tmp_path, capsys, monkeypatch):
    code, _, err = mad(capsys, "summary", *LLAMA_SET, "hf:llama", "--max-ops", "100")
    assert_refused(code, err, "over the limit of 100", "--max-ops 500")
    code, out, err = mad(capsys, "summary", *LLAMA_SET, "hf:llama", "--max-ops", "500")
    assert code == 0, err
    monkeypatch.setenv("MAD_MAX_OPS", "100")
    code, _, err = mad(capsys, "summary", *LLAMA_SET, "hf:llama")
    assert_refused(code, err, "over the limit of 100")
    monkeypatch.setenv("MAD_MAX_OPS", "lots")
    code, _, err = mad(capsys, "summary", *LLAMA_SET, "hf:llama")
    assert_refused(code, err, "MAD_MAX_OPS='lots' is not a positive whole number of ops (default 40,000)")
    code, _, err = mad(capsys, "summary", *LLAMA_SET, "hf:llama", "--max-ops", "0")
    assert_refused(code, err, "--max-ops must be a positive integer")


def test_the_app_refuses_it_and_keeps_the_session_graph():
    from assistant.ui.chat import Session
    from tests.app.conftest import TINY_LLAMA

    s = Session()
    try:
        s.load("hf:llama", TINY_LLAMA)
        graph = s.graph
        with pytest.raises(SourceError, match="estimated at 750,200 ops"):
            s.load("hf:llama", "num_hidden_layers=5000")
        assert s.graph is graph
    finally:
        s.close()


def test_an_insertion_over_the_limit_is_refused_and_the_graph_kept(monkeypatch):
    from gnn.edits.engine import apply_program
    from gnn.errors import EditError
    from gnn.ir.serialize import to_json
    from tests.conftest import TINY

    graph = import_hf("hf:llama", HFOptions(overrides=TINY["llama"], seq_len=8))
    before = to_json(graph)
    program = {"edits": [{"op": "insert_layers", "count": 5000}]}
    with pytest.raises(EditError, match=r"inserting 5,000 blocks would make the graph [\d,]+ ops, over the limit "
                                        r"of 40,000; insert fewer \(`count`\), or raise the limit \(MAD_MAX_OPS="):
        apply_program(graph, program)
    assert to_json(graph) == before
    monkeypatch.setenv("MAD_MAX_OPS", "1000000")
    assert len(apply_program(graph, {"edits": [{"op": "insert_layers", "count": 3}]}).graph.nodes) > len(graph.nodes)
