"""The drawn graph on the Llama-3-8B shape (issue 21: it must draw folded in ≤ 2 s) and on a graph of over 50,000
ops (it must stay responsive there: folded by default, each click a bounded drawing).

    python -m bench.drawing        # -> bench/results/drawing.json and the table in docs/benchmarks.md

Times, from the imported graph (import itself is bench.run's), the app's drawing (gnn.exporters.drawing:
DOT of the cut, then Graphviz's layout to SVG) folded as a first view shows it, with one block opened, and
with one block's attention opened down to its ops; side by side in the same run, the text outline it
replaces (assistant.ui.graph_view.render) and the Model Explorer JSON written for "Open in Model Explorer".
Each is the best of 3 runs (the first one also builds the graph's hierarchy, cached after).  The 50k-op graph is
a Llama of 480 layers (narrow widths: the drawing reads ops and shapes, not sizes), imported the same way.
"""

from __future__ import annotations

import json
import pathlib
import time

from bench.run import LLAMA3_8B

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _best(fn, n: int = 3) -> tuple[float, object]:
    times, out = [], None
    for _ in range(n):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


MODELS = {"Llama-3-8B shape": LLAMA3_8B,
          "50k ops (Llama, 480 layers)": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=480,
                                              num_attention_heads=4, num_key_value_heads=2, vocab_size=100)}


def measure(name: str, overrides: dict) -> dict:
    from assistant.ui.graph_view import render
    from gnn.exporters.drawing import default_open, to_dot, to_svg
    from gnn.exporters.explorer import to_explorer
    from gnn.importers.hf import HFOptions, import_hf

    t = time.perf_counter()
    graph = import_hf("hf:llama", HFOptions(overrides=overrides, max_ops=100_000))  # past the default limit
    imported = time.perf_counter() - t
    first = default_open(graph)
    t = time.perf_counter()
    to_svg(to_dot(graph, first))
    cold = time.perf_counter() - t  # with the hierarchy built for the first time
    last = f"model.layers.{overrides['num_hidden_layers'] - 1}"
    cuts = {"folded": first, "one block open": first | {"model.layers", last},
            "attention ops open": first | {"model.layers", last, f"{last}.self_attn", f"ops:{last}.self_attn"}}
    rows = {}
    for cut, opened in cuts.items():
        dot_s, dot = _best(lambda: to_dot(graph, opened))
        svg_s, svg = _best(lambda: to_svg(dot))
        rows[cut] = {"dot_s": round(dot_s, 3), "layout_s": round(svg_s, 3), "total_s": round(dot_s + svg_s, 3),
                     "boxes": dot.count(" [id="), "svg_kb": round(len(svg) / 1024, 1)}
    outline_s, _ = _best(lambda: render(graph))
    explorer_s, _ = _best(lambda: json.dumps(to_explorer(graph)))
    return {"model": name, "ops": len(graph.nodes), "import_s": round(imported, 2), "first_draw_s": round(cold, 3),
            "cuts": rows, "outline_html_s": round(outline_s, 3), "explorer_json_s": round(explorer_s, 3),
            "folded_vs_outline": round(rows["folded"]["total_s"] / outline_s, 2)}


def main() -> dict:
    res = {"target_s": 2.0, "models": [measure(name, o) for name, o in MODELS.items()]}
    out = ROOT / "bench" / "results" / "drawing.json"
    out.write_text(json.dumps(res, indent=2) + "\n")
    from bench.run import RESULTS as MAIN
    from bench.run import write_doc

    write_doc(json.loads(MAIN.read_text()))
    print(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
