"""The graph core's promise end to end: `mad import hf:llama --set ...` round-trips through JSON,
ONNX (checker + onnxruntime) and the rebuilt fx module, all computing the original model's logits."""

import numpy as np
import onnx
import onnxruntime as ort
import torch
from safetensors.torch import save_file

from assistant.ui.cli import run
from gnn.exporters.fx import to_graph_module
from gnn.ir.serialize import from_json
from tests.conftest import TINY, real_model, state_of


def test_llama_round_trip(tmp_path, capsys):
    model = real_model("llama")
    state = {k: v.contiguous() for k, v in state_of(model).items()}
    save_file(state, tmp_path / "w.safetensors")
    sets = [a for k, v in TINY["llama"].items() for a in ("--set", f"{k}={v}")]
    code = run(["import", "hf:llama", *sets, "--seq-len", "8", "-o", str(tmp_path / "g.json"),
                "--onnx", str(tmp_path / "g.onnx"), "--weights", str(tmp_path / "w.safetensors")])
    assert code == 0, capsys.readouterr().err
    ids = torch.randint(0, 100, (1, 8), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = model(input_ids=ids).logits

    graph = from_json((tmp_path / "g.json").read_text())
    got = to_graph_module(graph, weights=state)(input_ids=ids)["logits"]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)

    onnx.checker.check_model(onnx.load(tmp_path / "g.onnx"), full_check=True)
    (logits,) = ort.InferenceSession(str(tmp_path / "g.onnx")).run(["logits"], {"input_ids": ids.numpy()})
    np.testing.assert_allclose(logits, expected.numpy(), atol=1e-5)
