import pytest
import torch

from gnn.errors import SourceError, UnsupportedOpError
from gnn.exporters.fx import to_graph_module
from gnn.importers.torch_module import import_module
from gnn.validate import validate


class TiedMLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(50, 16)
        self.block = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 16))
        self.norm = torch.nn.LayerNorm(16)
        self.head = torch.nn.Linear(16, 50, bias=False)
        self.head.weight = self.embed.weight  # tied, counted once

    def forward(self, ids):
        x = self.embed(ids)
        return self.head(self.norm(x + self.block(x)))


def test_meta_module_imports_without_weights():
    with torch.device("meta"):
        model = TiedMLP()
    graph = import_module(model, (torch.zeros(2, 5, dtype=torch.long, device="meta"),))
    assert graph.num_parameters == sum(p.numel() for p in model.parameters())
    assert graph.meta["tied_parameters"] == {"head.weight": "embed.weight"}
    assert validate(graph).ok
    assert graph.hierarchy["block.0"].module_class == "Linear"


def test_rebuilt_module_matches_the_original():
    torch.manual_seed(0)
    model = TiedMLP().eval()
    ids = torch.randint(0, 50, (2, 5))
    graph = import_module(model, (ids,))
    rebuilt = to_graph_module(graph, weights=model.state_dict())
    torch.testing.assert_close(rebuilt(ids)["output"], model(ids), atol=1e-5, rtol=0)


def test_untraceable_module_is_a_one_line_error():
    class DataDependent(torch.nn.Module):
        def forward(self, x):
            if x.sum() > 0:  # python control flow on values
                return x
            return -x

    with pytest.raises(SourceError, match="torch.export could not trace DataDependent"):
        import_module(DataDependent(), (torch.randn(3),))


def test_unsupported_op_is_named():
    class Eig(torch.nn.Module):
        def forward(self, x):
            return torch.linalg.eigh(x).eigenvalues

    with pytest.raises(UnsupportedOpError, match=r"unsupported op\(s\): `aten\._linalg_eigh"):
        import_module(Eig(), (torch.randn(4, 4),))
