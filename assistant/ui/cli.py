"""The ``mad`` command line.

    mad import SOURCE [--set K=V]... -o GRAPH.json [--onnx OUT.onnx] [--explorer OUT.json]
    mad summary SOURCE [--set K=V]... [--json]
    mad validate SOURCE
    mad export GRAPH.json [--onnx OUT.onnx] [--explorer OUT.json] [--weights W.safetensors]
    mad edit SOURCE [--set K=V]... (--program JSON_OR_FILE | --request TEXT) -o OUT.json [--onnx OUT.onnx]
             [--peft-config OUT.json] [--emit-code OUT.py] [--emit-config OUT.json] [--no-check] [--llm PATH_OR_ID]
    mad roles SOURCE [--json]
    mad describe SOURCE [--set K=V]... [--json]
    mad ask SOURCE [--set K=V]... "QUESTION"
    mad train llm|gnn [OPTIONS]    (python -m assistant.training.train_llm / python -m gnn.training.train; --help lists OPTIONS)
    mad diff A [B] [--set K=V]... [--set-a K=V]... [--set-b K=V]... [--program JSON_OR_FILE] [--json]
    mad search [--space nas-bench-graph:DATASET] [--strategy mad|tpe|evolution|random] [--queries N]
               [--storage DB] [--executor local|ray --workers N] [--status] [--plot PNG]   (--help lists all)
    mad types

Bad input ends with one line on stderr (what was wrong, what is accepted) and
exit status 2; a graph that fails validation exits 1.  Nothing is written at an
output path unless the whole command succeeds.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import warnings


def _quiet() -> None:
    """Library chatter (deprecations, tracing notes) is not for the command's user."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' weight-loading bars too
    warnings.filterwarnings("ignore")
    import logging

    for name in ("torch", "torch.onnx", "torch._export", "torch.export", "onnxscript", "transformers"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _add_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="hf:<model_type>, hf:<org>/<name>, a config folder, an .onnx file or a graph .json")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE", default=[],
                   help="override a Hugging Face config setting (repeatable; values parsed as JSON)")
    p.add_argument("--head", help="Hugging Face head: causal-lm, seq2seq-lm, masked-lm, speech-seq2seq, "
                                  "image-text-to-text, image-classification, ctc, base (default: by model type)")
    p.add_argument("--seq-len", type=int, default=16, help="dummy text length for tracing (default 16)")
    p.add_argument("--batch-size", type=int, default=1, help="dummy batch size for tracing (default 1)")
    _add_limit(p)


def _add_limit(p: argparse.ArgumentParser) -> None:
    from gnn.importers.budget import MAX_OPS

    p.add_argument("--max-ops", type=int, default=None, metavar="N",
                   help=f"refuse a config estimated over N ops before tracing it (default {MAX_OPS:,})")


def _add_exports(p: argparse.ArgumentParser) -> None:
    p.add_argument("--onnx", metavar="OUT.onnx", help="also write ONNX (random weights unless --weights)")
    p.add_argument("--explorer", metavar="OUT.json", help="also write Model Explorer graph JSON")
    p.add_argument("--weights", metavar="W.safetensors", help="weights for the ONNX file (a safetensors state dict)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mad", description="MAD: model architecture design with validated graphs")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("import", help="import a model as a graph and write it")
    _add_source(p)
    p.add_argument("-o", "--output", required=True, metavar="GRAPH.json", help="graph JSON to write")
    _add_exports(p)

    p = sub.add_parser("summary", help="parameters, layers, FLOPs, ops and an outline")
    _add_source(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--depth", type=int, default=3, help="outline depth (default 3)")

    p = sub.add_parser("validate", help="check structure, ops, shapes and dtypes")
    _add_source(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = sub.add_parser("export", help="write a graph as ONNX and/or Model Explorer JSON")
    p.add_argument("source", help="a graph .json (or any SOURCE)")
    _add_exports(p)

    p = sub.add_parser("edit", help="apply an edit program and write the edited graph")
    _add_source(p)
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--program", metavar="JSON_OR_FILE",
                     help='an edit program, e.g. \'{"edits": [{"op": "remove_layers", "target": {"layers": [-1]}}]}\', or a file holding one')
    how.add_argument("--request", metavar="TEXT", help='a request in words, e.g. "add LoRA to the last layer": the '
                                                      "language model turns it into a program (or asks back)")
    p.add_argument("--llm", metavar="PATH_OR_ID", help="the language model for --request (default: SmolLM2-135M-Instruct)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.json", help="edited graph JSON to write")
    p.add_argument("--peft-config", metavar="OUT.json", help="also write the equivalent peft LoraConfig (add_lora)")
    p.add_argument("--emit-code", metavar="OUT.py", help="also write a snippet, `def edit(model)` on transformers/peft/"
                                                         "torch, that makes the same change on your loaded model")
    p.add_argument("--emit-config", metavar="OUT.json", help="also write the edited config.json (edits a config "
                                                             "expresses: depth, key/value heads, activation)")
    p.add_argument("--no-check", action="store_true", help="skip proving --emit-code/--emit-config (by default they "
                                                           "are run on the rebuilt model and must give MAD's graph)")
    _add_exports(p)

    p = sub.add_parser("roles", help="list the structural roles found in a graph (attn.q, mlp.down, ...)")
    _add_source(p)
    p.add_argument("--json", action="store_true", help="print {role: [module paths]} as JSON")
    p.add_argument("--labeler", choices=["auto", "rules", "learned"], default="auto",
                   help="rules (names, classes, structure) or learned (the graph transformer, no names; prints "
                        "confidences); auto: learned when the graph has no module paths")

    p = sub.add_parser("describe", help="describe an architecture: kind, depth, width, attention, norm, "
                                        "activation, positions, parameters, methods with papers (all read off the graph)")
    _add_source(p)
    p.add_argument("--json", action="store_true", help="print the facts as JSON")

    p = sub.add_parser("ask", help="answer a question about an architecture from its graph")
    _add_source(p)
    p.add_argument("question", help='e.g. "how many KV heads?"')

    p = sub.add_parser("train", help="train the language model's adapter (llm) or the graph model (gnn)")
    p.add_argument("what", choices=["llm", "gnn"])
    p.add_argument("options", nargs=argparse.REMAINDER, help="passed on; `mad train llm --help` lists them")

    p = sub.add_parser("search", help="architecture search as an Optuna study: run, resume, --status, --plot",
                       add_help=False)
    p.add_argument("options", nargs=argparse.REMAINDER, help="passed on; `mad search --help` lists them")

    p = sub.add_parser("diff", help="compare two architectures block by block (two sources, or a source and its edit)")
    p.add_argument("source", help="A: any SOURCE")
    p.add_argument("other", nargs="?", help="B: any SOURCE (leave out with --program: B is A edited)")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE", default=[],
                   help="a config setting for both (repeatable; values parsed as JSON)")
    p.add_argument("--set-a", action="append", metavar="KEY=VALUE", default=[], help="a config setting for A only")
    p.add_argument("--set-b", action="append", metavar="KEY=VALUE", default=[], help="a config setting for B only")
    p.add_argument("--program", metavar="JSON_OR_FILE", help="B is A (or B) after this edit program")
    p.add_argument("--seq-len", type=int, default=16, help="dummy text length for tracing (default 16)")
    p.add_argument("--batch-size", type=int, default=1, help="dummy batch size for tracing (default 1)")
    _add_limit(p)
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")

    sub.add_parser("types", help="list the Hugging Face model types hf:<type> accepts")
    return parser


def _load(args):
    from gnn.sources import load, parse_overrides

    options = {}
    if getattr(args, "head", None):
        options["head"] = args.head
    if hasattr(args, "seq_len"):
        if args.seq_len < 1 or args.batch_size < 1:
            from gnn.errors import SourceError

            raise SourceError("--seq-len and --batch-size must be positive integers")
        options.update(seq_len=args.seq_len, batch_size=args.batch_size)
    if getattr(args, "max_ops", None) is not None:
        if args.max_ops < 1:
            from gnn.errors import SourceError

            raise SourceError("--max-ops must be a positive integer")
        options["max_ops"] = args.max_ops
    return load(args.source, parse_overrides(getattr(args, "overrides", [])), **options)


def _weights(path: str | None):
    if not path:
        return None
    from gnn.errors import SourceError
    from gnn.sources import PICKLE_SUFFIXES

    if os.path.splitext(path)[1].lower() in PICKLE_SUFFIXES:
        raise SourceError(f"refusing `{path}`: pickled weights run code when loaded; convert them to .safetensors")
    if not path.endswith(".safetensors") or not os.path.isfile(path):
        raise SourceError(f"--weights takes an existing .safetensors file, got `{path}`")
    from safetensors.torch import load_file

    return load_file(path)


def _exports(args, out: dict) -> dict:
    if args.onnx:
        out["onnx"] = args.onnx
    if args.explorer:
        out["explorer"] = args.explorer
    return out


def run(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    dispatch = _dispatch
    if argv[:1] == ["search"]:  # its options are its own (argparse's REMAINDER would not take a leading --flag)
        from assistant.search.cli import parser, run as dispatch

        args = parser().parse_args(argv[1:])
    else:
        args = build_parser().parse_args(argv)
    from gnn.errors import MadError

    try:
        return dispatch(args)
    except MadError as e:
        print(f"mad: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2


def _dispatch(args) -> int:
    from gnn import sources
    from gnn.errors import MadError
    from gnn.analysis.summary import format_summary, outline, summarize
    from gnn.validate import validate

    if args.command == "train":
        if args.what == "llm":
            from assistant.training.train_llm import main as train
        else:
            from gnn.training.train import main as train
        return train(args.options)
    if args.command == "types":
        from gnn.importers.hf import model_types

        print("\n".join(model_types()))
        return 0
    if args.command == "import":
        graph = _load(args)
        report = validate(graph)
        if not report.ok:
            print(f"mad: error: imported graph is invalid: {report.errors[0]}", file=sys.stderr)
            return 1
        written = sources.export(graph, _exports(args, {"json": args.output}), weights=_weights(args.weights))
        print(f"{graph.name}: {len(graph.nodes)} ops, {graph.num_parameters:,} parameters -> " + ", ".join(map(str, written)))
        return 0
    if args.command == "summary":
        graph = _load(args)
        s = summarize(graph)
        s["outline"] = outline(graph, max_depth=args.depth)
        print(json.dumps(s, indent=2) if args.json else format_summary(s))
        return 0
    if args.command == "validate":
        graph = _load(args)
        report = validate(graph)
        if args.json:
            print(json.dumps({"ok": report.ok, "errors": [str(e) for e in report.errors],
                              "warnings": [str(w) for w in report.warnings], "checked_nodes": report.checked_nodes}, indent=2))
        else:
            for issue in report.errors:
                print(f"error: {issue}")
            for issue in report.warnings[:20]:
                print(f"warning: {issue}")
            status = "ok" if report.ok else f"{len(report.errors)} error(s)"
            print(f"{graph.name}: {status}; {report.checked_nodes} nodes checked, {len(report.warnings)} warning(s)")
        return 0 if report.ok else 1
    if args.command == "export":
        outputs = _exports(args, {})
        if not outputs:
            from gnn.errors import MadError

            raise MadError("nothing to export; give --onnx OUT.onnx and/or --explorer OUT.json")
        graph = _load(args)
        report = validate(graph)
        if not report.ok:
            print(f"mad: error: graph is invalid, not exported: {report.errors[0]}", file=sys.stderr)
            return 1
        written = sources.export(graph, outputs, weights=_weights(args.weights))
        print("wrote " + ", ".join(map(str, written)))
        return 0
    if args.command == "roles":
        from gnn.roles import ROLES, label

        graph = _load(args)
        labeler = args.labeler
        if labeler == "auto":
            labeler = "rules" if any(node.module for node in graph.nodes) else "learned"
        roles = label(graph, labeler)
        found = {role: roles.paths(role) + [f"node {n}" for n, r in roles.nodes.items() if role in r]
                 for role in ROLES}
        found = {role: paths for role, paths in found.items() if paths}
        conf = {p.removeprefix("node "): roles.confidence.get(p.removeprefix("node ")) for ps in found.values() for p in ps}
        if args.json:
            if labeler == "learned":
                found = {role: {p: conf[p.removeprefix("node ")] for p in paths} for role, paths in found.items()}
            print(json.dumps(found, indent=2))
        else:
            for role, paths in found.items():
                more = f" (+{len(paths) - 2} more)" if len(paths) > 2 else ""
                shown = [p + (f" ({conf[p.removeprefix('node ')]:.2f})" if conf.get(p.removeprefix("node ")) else "")
                         for p in paths[:2]]
                scores = [conf[p.removeprefix("node ")] for p in paths if conf.get(p.removeprefix("node "))]
                low = f"  min confidence {min(scores):.2f}" if scores else ""
                print(f"{role:16s} {len(paths):4d}  {', '.join(shown)}{more}{low}")
        return 0
    if args.command == "describe":
        from assistant.describe import describe
        from assistant.facts import facts

        found = facts(_load(args))  # a graph without names: its modules rebuilt from the learned labeler
        print(json.dumps(found.to_dict(), indent=2) if args.json else describe(found))
        return 0
    if args.command == "ask":
        from assistant.ask import ask
        from assistant.facts import facts

        text, key = ask(facts(_load(args)), args.question)
        print(text)
        return 0 if key else 1
    if args.command == "diff":
        from assistant.compare import compare
        from gnn.edits import apply_program

        if args.other is None and args.program is None:
            raise MadError("mad diff needs B: a second SOURCE, or --program (B is A after the edit)")
        program = _read_program(args.program) if args.program is not None else None
        a = _load(argparse.Namespace(**{**vars(args), "overrides": args.overrides + args.set_a}))
        if args.other is None:
            b, b_name = a, f"{args.source} edited"
        else:
            b = _load(argparse.Namespace(**{**vars(args), "source": args.other,
                                            "overrides": args.overrides + args.set_b}))
            b_name = args.other
        if program is not None:
            b, b_name = apply_program(b, program).graph, b_name if args.other is None else f"{args.other} edited"
        found = compare(a, b, args.source, b_name)
        print(json.dumps(found.to_dict(), indent=2, default=str) if args.json else found.text())
        return 0
    if args.command == "edit":
        from gnn.edits import apply_program
        from gnn.errors import MadError

        program = _read_program(args.program) if args.program is not None else None  # a bad program fails first
        graph = _load(args)
        if program is None:
            from assistant.interpret import Assistant

            outcome = Assistant(args.llm, log=lambda m: print(m, file=sys.stderr)).interpret(graph, args.request)
            if not outcome.done:
                label_ = {"ask": "question", "refuse": "cannot do that", "failed": "error"}[outcome.action]
                print(f"{label_}: {outcome.message}")
                return 1
            if outcome.reading is not None:
                print(f"reading: {outcome.reading.text}")
            print("program: " + json.dumps(outcome.program))
            program, result = outcome.program, outcome.result
        else:
            result = apply_program(graph, program)
        outputs = _exports(args, {"json": args.output})
        extras = dict(result.extras)
        if args.peft_config:
            if "peft_config" not in result.extras:
                raise MadError("--peft-config: this program makes no peft config (add_lora does)")
            outputs["peft_config"] = args.peft_config
        proved = ""
        if args.emit_code or args.emit_config:
            from gnn.edits.recipe import check, recipe

            made = recipe(graph, program)
            if args.emit_config and made.config is None:
                raise MadError(f"--emit-config: no config.json for this program: {made.no_config}; --emit-code "
                               "gives a snippet")
            if not args.no_check:
                check(graph, program, made)
                proved = " (checked: run on the rebuilt model, it gives MAD's graph)"
            if args.emit_code:
                outputs["code"], extras["code"] = args.emit_code, made.code
            if args.emit_config:
                outputs["config"], extras["config"] = args.emit_config, made.config
        written = sources.export(result.graph, outputs, weights=_weights(args.weights), extras=extras)
        print(result.diff)
        if proved:
            print("code/config" + proved)
        print("wrote " + ", ".join(map(str, written)))
        return 0
    raise AssertionError(args.command)


def _read_program(text: str) -> str:
    """The --program value: JSON itself, or the path of a file holding it."""
    from gnn.errors import MadError
    from gnn.fileio import check_size

    if text.lstrip().startswith(("{", "[")):
        return text
    path = pathlib.Path(text)
    if not path.is_file():
        raise MadError(f"--program is neither JSON nor an existing file: `{text[:80]}`")
    check_size(path)
    return path.read_text()


def main(argv: list[str] | None = None) -> None:
    _quiet()
    try:
        code = run(argv)
        sys.stdout.flush()
    except BrokenPipeError:  # `mad summary ... | head`: the reader left, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)


if __name__ == "__main__":
    main()
