"""The ``sslkit`` command line: ``run``, ``eval``, ``plugins``, ``report`` and ``bench``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sslkit import __version__
from sslkit.config import RunConfig, parse_assignments, read_toml
from sslkit.errors import UsageError

EXAMPLES = """\
examples:
  sslkit run --data digits                                    # offline quick start: fixmatch, seconds on a CPU
  sslkit run --pretext rotation --encoder convnet --data fashion-mnist --labels 100
  sslkit run --pretext simclr --data fashion-mnist --pretext-opt temperature=0.5 --eval linear,knn
  sslkit run --pretext rotation --encoder resnet18 --data svhn --labels 732
  sslkit run --config suite.toml --epochs 5                   # flags override the file
  sslkit run --resume runs/20261124-101500-digits-rotation-convnet
  sslkit plugins                                              # everything installed, by kind
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _run_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what to run")
    g.add_argument("--pretext", help="pretext task or method (default fixmatch); `sslkit plugins` lists them")
    g.add_argument(
        "--encoder",
        help="encoder: convnet, resnet18, timm:NAME, ... (default: the pretext's recipe, else convnet)",
    )
    g.add_argument(
        "--init",
        metavar="RUN_DIR",
        help="start from another run's trained encoder (e.g. rotation -> fixmatch)",
    )
    g.add_argument("--data", help="dataset: digits, mnist, fashion-mnist, svhn, ... (default digits)")
    g.add_argument(
        "--labels", help="labeled images, balanced over classes and seeded, or 'all' (default 100)"
    )
    g.add_argument("--labels-per-class", type=int, help="labeled images per class instead of --labels")
    g.add_argument("--pool-size", type=int, help="pretrain on a seeded random subset of the unlabeled pool")
    g.add_argument("--eval", help="comma-separated evaluators (default linear)")
    g.add_argument(
        "--no-baselines",
        dest="baselines",
        action="store_const",
        const=False,
        help="skip scoring the frozen-feature evaluators on a random-init encoder and raw pixels",
    )
    g = p.add_argument_group("training (defaults come from the pretext's recipe)")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float, help="peak learning rate (warm-up, then cosine decay)")
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--optimizer", choices=["sgd", "adamw", "adam"])
    g.add_argument(
        "--seed", type=int, help="seeds the label draw, the model and every augmentation (default 0)"
    )
    g.add_argument("--device", help="auto (cuda if present), cpu, cuda, cuda:N")
    g.add_argument("--no-amp", dest="amp", action="store_const", const=False, help="full precision on CUDA")
    g.add_argument("--compile", action="store_const", const=True, help="torch.compile the pretext's modules")
    g.add_argument(
        "--sync-batchnorm",
        action="store_const",
        const=True,
        help="under torchrun on GPUs: batch-norm statistics over all ranks",
    )
    g.add_argument(
        "--checkpoint-every", type=float, help="seconds between mid-epoch checkpoints (default 300)"
    )
    g.add_argument("--on-nan", choices=["stop", "lower-lr"], help="when the loss diverges (default stop)")
    g = p.add_argument_group("data and output")
    g.add_argument(
        "--data-root", help="where datasets live (default $SSLKIT_DATA, else ~/.cache/sslkit/data)"
    )
    g.add_argument(
        "--no-download",
        dest="download",
        action="store_const",
        const=False,
        help="never download; fail if the data is not under the data root",
    )
    g.add_argument("--out", help="parent of the run directory (default runs)")
    g = p.add_argument_group('plugin options (KEY=VALUE, values parsed as TOML: 0.5, true, "text")')
    g.add_argument(
        "--pretext-opt", action="append", default=[], metavar="KEY=VALUE", help="e.g. temperature=0.5"
    )
    g.add_argument("--encoder-opt", action="append", default=[], metavar="KEY=VALUE", help="e.g. width=64")
    g.add_argument("--data-opt", action="append", default=[], metavar="KEY=VALUE", help="e.g. image_size=64")
    g.add_argument("--eval-opt", action="append", default=[], metavar="EVAL.KEY=VALUE", help="e.g. knn.k=20")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sslkit",
        description="Self-supervised pretraining with few labels: pretrain an encoder on a pretext task, "
        "then measure its features with a handful of labels.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    parser.add_argument("--version", action="version", version=f"sslkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser(
        "run",
        help="pretrain, evaluate and write a run directory",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", help="TOML file of settings; flags override it")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run where it stopped")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks")
    _run_flags(p)

    p = sub.add_parser("eval", help="evaluate a finished run's encoder again, with other evaluators")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--eval", help="comma-separated evaluators (default: those of the run)")
    p.add_argument("--eval-opt", action="append", default=[], metavar="EVAL.KEY=VALUE")
    p.add_argument("--device")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)

    p = sub.add_parser("plugins", help="list installed datasets, encoders, pretexts and evaluators")
    p.add_argument("--kind", choices=["dataset", "encoder", "pretext", "evaluator"])
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)

    p = sub.add_parser("report", help="write one HTML report for one or more run directories")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument(
        "-o", "--output", help="HTML file (default RUN_DIR/report.html, or report.html for several)"
    )
    p.add_argument(
        "--tsne-points",
        type=int,
        help="test images in the t-SNE map (default 2000 or $SSLKIT_TSNE_POINTS; 0 skips t-SNE)",
    )
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)

    p = sub.add_parser("bench", help="run a benchmark suite (a TOML grid), resumable")
    p.add_argument("suite", metavar="SUITE.toml")
    p.add_argument("--out", help="where the suite's run directories go (default benchmarks/results/SUITE)")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="cells run at once, each a process with cores/JOBS threads (default 1)",
    )
    p.add_argument(
        "--only", metavar="PATTERNS", help="comma-separated method or cell-name globs, e.g. rotation,sgan"
    )
    p.add_argument("--cell", help=argparse.SUPPRESS)  # one cell in this process: what --jobs subprocesses run
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    return parser


def config_from_args(args: argparse.Namespace) -> RunConfig:
    values: dict[str, Any] = read_toml(args.config) if args.config else {}
    source = args.config or "command line"
    cfg = RunConfig.from_dict(values, source=source)
    flags: dict[str, Any] = {}
    for key in (
        "pretext",
        "encoder",
        "init",
        "data",
        "labels_per_class",
        "pool_size",
        "epochs",
        "batch_size",
        "lr",
        "weight_decay",
        "optimizer",
        "seed",
        "device",
        "data_root",
        "out",
        "amp",
        "compile",
        "sync_batchnorm",
        "download",
        "checkpoint_every",
        "on_nan",
        "baselines",
    ):
        value = getattr(args, key, None)
        if value is not None:
            flags[key] = value
    if args.labels is not None:
        flags["labels"] = parse_labels(args.labels)
        if args.labels_per_class is None:
            flags["labels_per_class"] = None
    elif args.labels_per_class is not None:
        flags["labels"] = None
    if args.eval is not None:
        flags["eval"] = args.eval
    for kind in ("pretext", "encoder", "data"):
        opts = parse_assignments(getattr(args, f"{kind}_opt"), f"--{kind}-opt")
        if opts:
            flags[f"{kind}_options"] = {**getattr(cfg, f"{kind}_options"), **opts}
    if args.eval_opt:
        flags["eval_options"] = merge_eval_options(cfg.eval_options, args.eval_opt)
    cfg.update(flags, source="command line")
    return cfg


def parse_labels(text: str) -> int | None:
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"--labels must be a positive integer or 'all', got {text!r}") from None
    if value < 1:
        raise UsageError(f"--labels must be a positive integer or 'all', got {text!r}")
    return value


def merge_eval_options(base: dict[str, dict[str, Any]], items: list[str]) -> dict[str, dict[str, Any]]:
    merged = {k: dict(v) for k, v in base.items()}
    for key, value in parse_assignments(items, "--eval-opt").items():
        name, dot, option = key.partition(".")
        if not dot or not option:
            raise UsageError(f"--eval-opt expects EVALUATOR.KEY=VALUE (e.g. knn.k=20), got {key!r}")
        merged.setdefault(name, {})[option] = value
    return merged


def cmd_run(args: argparse.Namespace) -> int:
    from sslkit.run import run

    if args.resume:
        given = [
            k
            for k, v in vars(args).items()
            if k not in ("command", "resume", "debug") and v not in (None, [])
        ]
        if given:  # refused rather than silently ignored: a resumed run keeps the settings it started with
            negated = {"amp": "no-amp", "download": "no-download", "baselines": "no-baselines"}
            flags = ", ".join("--" + negated.get(g, g.replace("_", "-")) for g in given)
            raise UsageError(f"--resume continues a run with its own settings; drop {flags}")
        result = run(RunConfig(), resume=Path(args.resume))
    else:
        result = run(config_from_args(args))
    if result.results:  # under torchrun only rank 0 evaluates
        print_results(result.results, result.run_dir, result.baselines)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from sslkit.evaluate import evaluate_saved_run

    results = evaluate_saved_run(
        Path(args.run_dir), args.eval, merge_eval_options({}, args.eval_opt), args.device
    )
    print_results(results, Path(args.run_dir))
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from sslkit.registry import load_registry

    registry = load_registry()
    table = Table(title="sslkit plugins")
    for col in ("kind", "name", "summary", "options", "provided by"):
        table.add_column(col, overflow="fold")
    for entry in registry.entries():
        if args.kind and entry.kind != args.kind:
            continue
        opts = ", ".join(f"{k}={v!r}" for k, v in entry.component.options.items())
        prov = entry.provider
        table.add_row(
            entry.kind, entry.name, entry.component.summary, opts, f"{prov.distribution} {prov.version}"
        )
    for provider, error in registry.broken:
        table.add_row(
            "[red]broken[/]",
            provider.plugin,
            f"[red]{error}[/]",
            "",
            f"{provider.distribution} {provider.version}",
        )
    for conflict in registry.conflicts:
        table.add_row("[red]conflict[/]", "", f"[red]{conflict}[/]", "", "")
    Console().print(table)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from sslkit.report.html import write_report

    dirs = [Path(d) for d in args.run_dirs]
    output = (
        Path(args.output)
        if args.output
        else (dirs[0] / "report.html" if len(dirs) == 1 else Path("report.html"))
    )
    if args.tsne_points is not None and args.tsne_points < 0:
        raise UsageError(f"--tsne-points must be >= 0 (0 skips t-SNE), got {args.tsne_points}")
    write_report(dirs, output, tsne_points=args.tsne_points)
    print(output)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from sslkit.bench import run_suite

    result = run_suite(
        Path(args.suite), Path(args.out) if args.out else None, jobs=args.jobs, only=args.only, cell=args.cell
    )
    return 1 if result.failed else 0


def print_results(
    results: dict[str, dict[str, float]],
    run_dir: Path,
    baselines: dict[str, dict[str, dict[str, float]]] | None = None,
) -> None:
    """The results table; with ``baselines``, each metric beside the same evaluator on a random-init encoder and on
    raw pixels (same label draw)."""
    from rich.console import Console
    from rich.table import Table

    baselines = baselines or {}
    table = Table(title=f"results: {run_dir}")
    table.add_column("evaluator")
    table.add_column("metric")
    table.add_column("value", justify="right")
    columns = [("random_init", "random init"), ("pixels", "raw pixels")]
    columns = [(key, title) for key, title in columns if baselines.get(key)]
    for _, title in columns:
        table.add_column(title, justify="right")

    def cell(value: object) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    for name, metrics in results.items():
        for metric, value in metrics.items():
            extra = [baselines[key].get(name, {}).get(metric) for key, _ in columns]
            table.add_row(name, metric, cell(value), *("" if v is None else cell(v) for v in extra))
    Console().print(table)


COMMANDS = {
    "run": cmd_run,
    "eval": cmd_eval,
    "plugins": cmd_plugins,
    "report": cmd_report,
    "bench": cmd_bench,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        args = build_parser().parse_args(argv)
        if not args.command:
            build_parser().print_help()
            return 2
        return COMMANDS[args.command](args)
    except UsageError as exc:
        if debug:
            raise
        print(f"sslkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "sslkit: interrupted; `sslkit run --resume RUN_DIR` continues from the last checkpoint",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
