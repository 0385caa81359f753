"""``set_kv_heads``: multi-head, grouped-query or multi-query attention.

Changing the number of key/value heads reshapes the k/v projections and every
reshape between them and the attention product.  Those shapes are fixed when
transformers traces the attention, so the graph is re-derived from its source
config with ``num_key_value_heads`` changed, and the edits already recorded in
the graph (``meta["edits"]``) are replayed on it.  Graphs that did not come from
a Hugging Face config are refused with that reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from gnn.edits.ops.base import Edit, register
from gnn.edits.target import EditError


@register("set_kv_heads")
@dataclass
class SetKVHeads(Edit):
    """Set ``num_key_value_heads``: the head count is MHA, 1 is MQA, a divisor in between is GQA."""

    kv_heads: int = 1

    def __post_init__(self):
        if not isinstance(self.kv_heads, int) or isinstance(self.kv_heads, bool) or self.kv_heads < 1:
            raise EditError(f"`kv_heads` must be a positive integer, got {self.kv_heads!r}")
        if self.target.to_dict():
            raise EditError("`set_kv_heads` applies to the whole model; give no target")

    def apply(self, graph, roles):
        from gnn.edits.engine import apply_program
        from gnn.errors import MadError
        from gnn.importers.hf import HFOptions, import_hf, load_config

        source = graph.meta.get("source") or ""
        if "model_type" not in graph.meta or source.startswith(("torch:", "onnx")) or source.endswith(".onnx"):
            raise EditError("`set_kv_heads` needs a graph imported from a Hugging Face config (its k/v reshapes "
                            "are re-derived from the config); this graph came from " + (source or "elsewhere"))
        overrides = dict(graph.meta.get("overrides") or {})
        try:
            config = load_config(source, overrides)
        except MadError as e:
            raise EditError(f"cannot re-read the source config `{source}`: {e}") from None
        text = getattr(config, "get_text_config", lambda: config)()
        heads = getattr(text, "num_attention_heads", None)
        if getattr(text, "num_key_value_heads", None) is None or not isinstance(heads, int):
            raise EditError(f"`{graph.meta['model_type']}` has no num_key_value_heads setting; its attention is fixed")
        if heads % self.kv_heads:
            raise EditError(f"`kv_heads` must divide the {heads} attention heads, got {self.kv_heads}")
        shapes = graph.meta.get("example_inputs", {})
        ids = shapes.get("input_ids") or [1, 16]
        options = HFOptions(overrides={**overrides, "num_key_value_heads": self.kv_heads},
                            batch_size=ids[0], seq_len=ids[1])
        fresh = import_hf(source, options)
        earlier = graph.meta.get("edits", [])
        if earlier:
            fresh = apply_program(fresh, earlier, validate_result=False).graph
        graph.__dict__.update(fresh.copy().__dict__)
        graph.meta["overrides"] = options.overrides
        return {}
