"""The ``sslkit`` command line: ``run``, ``eval``, ``predict``, ``export``, ``plugins``, ``ls``, ``report`` and
``bench``."""

from __future__ import annotations

import argparse
import difflib
import shlex
import sys
from pathlib import Path
from typing import Any

from sslkit import __version__
from sslkit.config import ON_NAN, RunConfig, parse_assignments, read_settings
from sslkit.errors import Interrupted, UsageError
from sslkit.interfaces import KINDS, OPTIMIZERS

EXAMPLES = """\
examples:
  sslkit run --data digits                                    # offline quick start: fixmatch, seconds on a CPU
  sslkit run --data imagefolder --data-opt path=photos        # your own images: class folders + unlabeled/
  sslkit suggest runs/RUN_DIR --n 20                          # which images to label next (to-label.csv)
  sslkit predict runs/RUN_DIR new-photos/ --out labels.csv    # a run's classifier on any image files
  sslkit run --pretext rotation --encoder convnet --data fashion-mnist --labels 100
  sslkit run --pretext simclr --data fashion-mnist --pretext-opt temperature=0.5 --eval linear,knn
  sslkit run --pretext rotation --encoder resnet18 --data svhn --labels 732
  sslkit run --config suite.toml --epochs 5                   # flags override the file
  sslkit run --resume runs/20261124-101500-digits-rotation-convnet
  sslkit plugins                                              # everything installed, by kind
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage dump
        raise UsageError(f"{message}{self._suggest(message)} (see `{self.prog} --help`)")

    def _suggest(self, message: str) -> str:
        """Did-you-mean for a mistyped flag: ``--pretxt`` -> ``--pretext``."""
        if "unrecognized arguments:" not in message:
            return ""
        parsers = [self] + [
            sub
            for action in self._actions
            if isinstance(action, argparse._SubParsersAction)
            for sub in action.choices.values()
        ]
        known = sorted({s for parser in parsers for action in parser._actions for s in action.option_strings})
        for word in message.split(":", 1)[1].split():
            hint = difflib.get_close_matches(word.split("=")[0], known, n=1)
            if hint:
                return f" (did you mean {hint[0]}?)"
        return ""


def _off(group: argparse._ArgumentGroup, setting: str, help: str) -> None:
    """``--no-SETTING``: turns a setting that defaults to on off (left unset otherwise, so a config file decides)."""
    flag = "--no-" + setting.replace("_", "-")
    group.add_argument(flag, dest=setting, action="store_const", const=False, help=help)


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
    _off(
        g,
        "pretrain",
        "skip the recipe's pretraining stage (fixmatch on fashion-mnist starts from 1 epoch of rotation)",
    )
    g.add_argument(
        "--data",
        help="dataset: digits, mnist, fashion-mnist, svhn, ..., or imagefolder (your own images, with "
        "--data-opt path=DIR); `sslkit plugins --kind dataset` lists them (default digits)",
    )
    g.add_argument(
        "--labels",
        help="labeled images, balanced over classes and seeded, or 'all', or 0 (a label-free run, to pick the "
        "images to label with `sslkit suggest`) (default: 100 from a labeled data set; every label of a folder "
        "that brings its own unlabeled images)",
    )
    g.add_argument("--labels-per-class", type=int, help="labeled images per class instead of --labels")
    g.add_argument(
        "--select",
        metavar="STRATEGY",
        help="choose the --labels images with a selector (auto, typiclust, probcover, random) from the pixels "
        "alone, then reveal their labels: the labeling loop simulated on a labeled data set",
    )
    g.add_argument(
        "--select-from",
        metavar="RUN_DIR",
        help="with --select, the next round of that run's selection: its picks stay labeled and the rest is chosen "
        "with its encoder's features and classifier (this run trains from scratch unless --init is given too)",
    )
    g.add_argument("--pool-size", type=int, help="pretrain on a seeded random subset of the unlabeled pool")
    g.add_argument(
        "--eval",
        help="comma-separated evaluators (default: the method's recipe, see `sslkit plugins METHOD`; else linear)",
    )
    _off(g, "baselines", "skip scoring the frozen-feature evaluators on a random-init encoder and raw pixels")
    g = p.add_argument_group("training (defaults: the pretext's recipe; `sslkit plugins PRETEXT` shows it)")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float, help="peak learning rate (warm-up, then cosine decay)")
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--optimizer", choices=OPTIMIZERS)
    g.add_argument(
        "--seed", type=int, help="seeds the label draw, the model and every augmentation (default 0)"
    )
    g.add_argument("--device", help="auto (cuda if present), cpu, cuda, cuda:N")
    _off(
        g,
        "amp",
        "full precision (default: bfloat16 autocast on CUDA, and for training on CPUs with native bfloat16)",
    )
    g.add_argument("--compile", action="store_const", const=True, help="torch.compile the pretext's modules")
    g.add_argument(
        "--sync-batchnorm",
        action="store_const",
        const=True,
        help="under torchrun on GPUs: batch-norm statistics over all ranks",
    )
    g.add_argument(
        "--checkpoint-every",
        type=float,
        help=f"seconds between mid-epoch checkpoints (default {RunConfig.checkpoint_every:g})",
    )
    g.add_argument("--on-nan", choices=ON_NAN, help=f"when the loss diverges (default {RunConfig.on_nan})")
    g = p.add_argument_group("data and output")
    g.add_argument(
        "--data-root", help="where datasets live (default $SSLKIT_DATA, else ~/.cache/sslkit/data)"
    )
    _off(g, "download", "never download; fail if the data is not under the data root")
    g.add_argument("--out", help="parent of the run directory (default runs)")
    g.add_argument(
        "--wandb", metavar="PROJECT", help="also log to this Weights & Biases project (pip install wandb)"
    )
    g.add_argument(
        "--tsne-points",
        type=int,
        help=f"test images in the report's t-SNE map (default {RunConfig.tsne_points}; 0 skips it)",
    )
    g = p.add_argument_group('plugin options (KEY=VALUE, values parsed as TOML: 0.5, true, "text")')
    g.add_argument(
        "--pretext-opt", action="append", default=[], metavar="KEY=VALUE", help="e.g. temperature=0.5"
    )
    g.add_argument("--encoder-opt", action="append", default=[], metavar="KEY=VALUE", help="e.g. width=64")
    g.add_argument("--data-opt", action="append", default=[], metavar="KEY=VALUE", help="e.g. image_size=64")
    g.add_argument("--eval-opt", action="append", default=[], metavar="EVAL.KEY=VALUE", help="e.g. knn.k=20")


# The commands that work on a finished run: (one-line help, description, examples).
ON_A_RUN: dict[str, tuple[str, ...]] = {
    "eval": (
        "evaluate a finished run's encoder again, with other evaluators",
        "Score a finished run's saved encoder with any evaluators, on the label draw it was trained with; the "
        "metrics are merged into its results.json and report.html.",
        "example:\n  sslkit eval runs/20261124-101500-mnist-fixmatch-convnet --eval knn,finetune --eval-opt knn.k=50",
    ),
    "predict": (
        "label image files with a finished run's classifier (CSV: path, class, confidence)",
        "Decode the images as the run prepared its own (colour mode, size, normalization) and write one CSV row "
        "per image: path, class, confidence, then the runner-up classes.",
        "examples:\n  sslkit predict runs/RUN photos/ --out labels.csv\n  sslkit predict runs/RUN 'new/*.jpg' --top-k 3",
    ),
    "suggest": (
        "which images to label next: a CSV to fill in and a contact sheet (HTML)",
        "Pick N unlabeled images of a finished run's pool worth labeling: with no labels yet, typical images that "
        "cover the pool's clusters; later, typical images of the clusters (in the run's features) holding the fewest "
        "labels, and (auto, from 10 labels a class) where its classifier is unsure in dense regions. Writes OUT "
        "(path,label[,guess,confidence]; the images already labeled come first, with their labels) and OUT with "
        ".html, thumbnails to label by eye. Filled in, the CSV goes back in as --data-opt labels=OUT.",
        "examples:\n  sslkit run --data imagefolder --data-opt path=photos      # no labels yet: label-free\n"
        "  sslkit suggest runs/RUN --n 20 --out photos/to-label.csv\n"
        "  sslkit run --data imagefolder --data-opt path=photos --data-opt labels=to-label.csv",
    ),
    "export": (
        "write a finished run's classifier as a deployable model (ONNX)",
        "One graph from uint8 images (N, C, H, W) at the run's size through normalization, encoder and classifier "
        'to class probabilities; class names and image size in its metadata. Needs pip install "sslkit[export]".',
    ),
}


def _on_a_run(sub: Any, name: str) -> argparse.ArgumentParser:
    """The subcommand ``name`` of :data:`ON_A_RUN`, with the run directory as its first argument."""
    summary, description, *epilog = ON_A_RUN[name]
    p = sub.add_parser(
        name,
        help=summary,
        description=description,
        epilog=epilog[0] if epilog else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory made by `sslkit run`")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sslkit",
        description="Many images, few labels: train a classifier from a handful of labels and a pile of unlabeled "
        "images (self- and semi-supervised methods), label the pile, choose which images to label next, and "
        "compare methods on benchmarks.",
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
    p.add_argument(
        "--config",
        help="TOML file of settings, or a run's config.json (to rerun or vary it); flags override it",
    )
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run where it stopped")
    _run_flags(p)

    p = _on_a_run(sub, "eval")
    p.add_argument("--eval", help="comma-separated evaluators (default: those of the run); `sslkit plugins`")
    p.add_argument(
        "--eval-opt",
        action="append",
        default=[],
        metavar="EVAL.KEY=VALUE",
        help="an evaluator option, e.g. knn.k=50",
    )
    p.add_argument("--device", help="auto (cuda if present), cpu, cuda, cuda:N (default: the run's)")

    p = _on_a_run(sub, "predict")
    p.add_argument(
        "paths", nargs="+", metavar="PATH", help="image files, folders (searched recursively), globs"
    )
    p.add_argument("--out", help="CSV file to write (default: standard output)")
    p.add_argument("--top-k", type=int, default=2, help="classes per image, best first (default 2)")
    p.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda, cuda:N")

    p = _on_a_run(sub, "suggest")
    p.add_argument(
        "--n",
        type=int,
        default=20,
        help="images to pick (default 20). With no labels yet ask for about two a kind of image you expect: "
        "look-alike kinds share a cluster (on Fashion-MNIST ten typical picks saw 8 of its 10 classes, twenty all 10)",
    )
    p.add_argument("--out", default="to-label.csv", help="the CSV to write (default to-label.csv)")
    p.add_argument(
        "--strategy", default="auto", help="a selector: auto (recommended), typiclust, probcover, random"
    )
    p.add_argument("--seed", type=int, help="the selector's seed (default: the run's)")
    p.add_argument("--device", default="cpu", help="where to compute the run's features (cpu, cuda, auto)")

    p = _on_a_run(sub, "export")
    p.add_argument("--format", default="onnx", help="onnx (the only format so far)")
    p.add_argument("--out", help="model file (default RUN_DIR/model.onnx)")

    p = sub.add_parser(
        "plugins",
        help="list installed datasets, encoders, pretexts and evaluators",
        description="Everything installed in the `sslkit` entry-point group, with each component's options "
        "(defaults from its factory's signature), plugins that failed to load and name conflicts.",
    )
    p.add_argument("name", nargs="?", metavar="NAME", help="one component in detail: its options and recipe")
    p.add_argument("--kind", choices=KINDS, help="only this kind")
    p.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the traceback (file and line) of each plugin that failed to load",
    )

    p = sub.add_parser(
        "ls",
        help="list runs: data, method, labels, seed, status, best accuracy, wall time",
        description="One table of the run directories under RUNS (default runs), newest first. Status: "
        "finished, running (a live process holds it) or killed (resume it with `sslkit run --resume`).",
    )
    p.add_argument("runs", nargs="?", default="runs", metavar="RUNS", help="folder of run directories")

    p = sub.add_parser(
        "report",
        help="write one HTML report for one or more run directories",
        description="One HTML page for one run (its settings, curves, results, t-SNE map, confusion matrix) or a "
        "comparison of several (their results side by side). Self-contained: open it in any browser.",
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="directories made by `sslkit run`")
    p.add_argument(
        "-o", "--output", help="HTML file (default RUN_DIR/report.html, or report.html for several)"
    )
    p.add_argument(
        "--tsne-points",
        type=int,
        help=f"test images in the t-SNE map (default: the run's --tsne-points, {RunConfig.tsne_points}; 0 skips it)",
    )

    p = sub.add_parser(
        "bench",
        help="run a benchmark suite (a TOML grid), resumable",
        description="Run every cell of a suite (methods x datasets x label budgets x seeds), skipping finished "
        "cells and resuming killed ones, then print mean +- std over seeds beside each method's reference.",
        epilog="example:\n  sslkit bench benchmarks/mnist100.toml --jobs 2 --only fixmatch,supervised*",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("suite", metavar="SUITE.toml", help="a suite file, e.g. benchmarks/mnist100.toml")
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
    for name, command in sub.choices.items():
        if name != "plugins":  # its --debug shows where plugins failed
            command.add_argument(
                "--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks"
            )
    return parser


def config_from_args(args: argparse.Namespace) -> RunConfig:
    values: dict[str, Any] = read_settings(args.config) if args.config else {}
    source = args.config or "command line"
    cfg = RunConfig.from_dict(values, source=source)
    flags: dict[str, Any] = {}
    for key in (
        "pretext",
        "encoder",
        "init",
        "pretrain",
        "data",
        "labels_per_class",
        "select",
        "select_from",
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
        "tsne_points",
        "wandb",
    ):
        value = getattr(args, key, None)
        if value is not None:
            flags[key] = value
    if args.labels is not None:
        flags["labels"] = args.labels
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


def merge_eval_options(base: dict[str, dict[str, Any]], items: list[str]) -> dict[str, dict[str, Any]]:
    merged = {k: dict(v) for k, v in base.items()}
    for key, value in parse_assignments(items, "--eval-opt").items():
        name, dot, option = key.partition(".")
        if not dot or not option:
            raise UsageError(f"--eval-opt expects EVALUATOR.KEY=VALUE (e.g. knn.k=20), got {key!r}")
        merged.setdefault(name, {})[option] = value
    return merged


def cmd_run(args: argparse.Namespace) -> int:
    from sslkit.registry import load_registry
    from sslkit.runner import run

    registry = load_registry()
    if getattr(args, "debug", False):
        print_broken(registry)

    if args.resume:
        given = [
            k
            for k, v in vars(args).items()
            if k not in ("command", "resume", "debug") and v not in (None, [])
        ]
        if given:  # refused rather than silently ignored: a resumed run keeps the settings it started with
            negated = {name: f"no-{name}" for name in ("amp", "download", "baselines", "pretrain")}
            flags = ", ".join("--" + negated.get(g, g.replace("_", "-")) for g in given)
            raise UsageError(f"--resume continues a run with its own settings; drop {flags}")
        result = run(RunConfig(), resume=Path(args.resume), registry=registry)
    else:
        result = run(config_from_args(args), registry=registry)
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


def finished_run(path: str) -> Path:
    from sslkit import rundir

    run_dir = Path(path)
    rundir.read_run_config(run_dir)  # one line when it is no run directory
    if rundir.status(run_dir) != "finished":
        raise UsageError(f"{run_dir} has not finished; `sslkit run --resume {run_dir}` finishes it first")
    return run_dir


def cmd_predict(args: argparse.Namespace) -> int:
    import glob

    from sslkit import rundir
    from sslkit.build import load_run
    from sslkit.data.images import find_images

    if args.top_k < 1:
        raise UsageError(f"--top-k must be at least 1, got {args.top_k}")
    run = load_run(finished_run(args.run_dir), args.device)
    run.classifier  # noqa: B018  (a run without a classifier stops here, before any decoding)
    paths: list[Path] = []
    for given in args.paths:
        # an existing path is taken as given: "photo [1].jpg" is a file, not a pattern
        literal = Path(given).exists() or not glob.has_magic(given)
        matches = [given] if literal else sorted(glob.glob(given, recursive=True))
        absent = [m for m in matches if not Path(m).exists()]
        if not matches or absent:
            raise UsageError(f"no such file or folder: {absent[0] if absent else given}")
        paths += find_images(*map(Path, matches))
    if not paths:
        raise UsageError(
            f"no image files in {', '.join(args.paths)}; give image files or folders holding them"
        )
    kept, probs, skipped = run.predict_files(paths)  # unreadable files are skipped, named on stderr
    if not kept:
        raise UsageError(f"none of the {len(paths)} image files could be decoded (the first: {skipped[0]})")
    text = rundir.predictions_csv([str(p) for p in kept], probs, run.classes, args.top_k)
    if args.out:
        from sslkit.util import atomic_write_text

        atomic_write_text(Path(args.out), text)
        print(f"{len(kept)} predictions written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_suggest(args: argparse.Namespace) -> int:
    from sslkit.suggest import suggest

    if args.n < 1:
        raise UsageError(f"--n must be a positive number of images, got {args.n}")
    made = suggest(finished_run(args.run_dir), args.n, Path(args.out), args.strategy, args.seed, args.device)
    print(
        f"{args.n} images to label ({made.strategy}): fill in the label column of {made.csv}; thumbnails: {made.sheet}"
    )
    if made.next_options is not None:
        texts = [
            f"{key}={str(v).lower() if isinstance(v, bool) else v}" for key, v in made.next_options.items()
        ]
        print(
            f"then: sslkit run --data {made.data} {' '.join(f'--data-opt {shlex.quote(t)}' for t in texts)}"
        )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from sslkit import rundir
    from sslkit.build import load_run
    from sslkit.export import FORMATS, export_onnx

    if args.format not in FORMATS:
        raise UsageError(f"unknown export format {args.format!r}; supported: {', '.join(FORMATS)}")
    if args.out and Path(args.out).suffix != f".{args.format}":
        raise UsageError(f"--out {args.out} would hold an {args.format} model; name it *.{args.format}")
    run_dir = finished_run(args.run_dir)
    run = load_run(run_dir, "cpu")
    out = export_onnx(run.classifier, Path(args.out) if args.out else run_dir / rundir.MODEL_ONNX)
    print(
        f"wrote {out} (input 'images' uint8 (N, {run.info.in_chans}, {run.info.image_size}, "
        f"{run.info.image_size}); output 'probabilities' (N, {len(run.classes)}))"
    )
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from rich.table import Table

    from sslkit.registry import conflict_message, load_registry
    from sslkit.util import stdout

    registry = load_registry()
    if args.name:
        return _plugin_detail(registry, args.name, args.kind)
    table = Table(title="sslkit plugins")
    for col in ("kind", "name", "summary", "options", "provided by"):
        table.add_column(col, overflow="fold")
    for entry in registry.entries():
        if args.kind and entry.kind != args.kind:
            continue
        opts = ", ".join(o.describe() for o in entry.options.values())
        prov = entry.provider
        table.add_row(
            entry.kind, entry.name, entry.component.summary, opts, f"{prov.distribution} {prov.version}"
        )
    for broken in registry.broken:
        prov = broken.provider
        table.add_row(
            "[red]broken[/]",
            prov.plugin,
            f"[red]{broken.error}[/]",
            "",
            f"{prov.distribution} {prov.version}",
        )
    for (kind, name), providers in registry.conflicts.items():
        table.add_row("[red]conflict[/]", name, f"[red]{conflict_message(kind, name, providers)}[/]", "", "")
    stdout.print(table)
    if getattr(args, "debug", False):
        print_broken(registry)
    elif registry.broken:
        stdout.print("`sslkit plugins --debug` shows where each broken plugin failed")
    return 0


def print_broken(registry: Any) -> None:
    """Each broken plugin's traceback, with file and line, on stderr (``--debug``)."""
    for broken in registry.broken:
        print(
            f"sslkit: plugin {broken.provider} is broken: {broken.error}\n{broken.traceback}", file=sys.stderr
        )


def _plugin_detail(registry: Any, name: str, kind: str | None) -> int:
    """``sslkit plugins NAME``: what the component is, its options with types and defaults, a pretext's recipe."""
    from rich.table import Table

    from sslkit.interfaces import KINDS
    from sslkit.util import stdout

    entries, errors = [], []
    for k in [kind] if kind else KINDS:
        try:
            entries.append(registry.get(k, name))
        except UsageError as exc:
            errors.append(str(exc))
    if not entries:  # the kind whose names come closest says it
        raise UsageError(next((e for e in errors if "did you mean" in e), errors[-1]))
    for entry in entries:
        stdout.print(f"[bold]{entry.kind} {entry.name}[/]: {entry.component.summary}  ({entry.provider})")
        table = Table("option", "type", "default")
        for option in entry.options.values():
            shown = getattr(option.type, "__name__", None) or str(option.type).replace("typing.", "")
            table.add_row(option.name, shown, repr(option.default))
        stdout.print(table if entry.options else "no options")
        factory = entry.component.factory
        recipe = getattr(factory, "defaults", None)
        if entry.kind == "pretext" and recipe is not None:
            from sslkit.build import DEFAULT_EVAL, DEFAULT_RECIPE

            stdout.print("recipe (what --epochs, --batch-size, --lr, --eval, ... default to):")
            for key, value in {**DEFAULT_RECIPE, "eval": DEFAULT_EVAL, **recipe}.items():
                if key != "data":
                    stdout.print(f"  {key} = {value!r}")
            for data, special in recipe.get("data", {}).items():
                stdout.print(
                    f"  with --data {data}: " + ", ".join(f"{k} = {v!r}" for k, v in special.items())
                )
            if getattr(factory, "uses_labels", False):
                stdout.print("learns from the labeled split and the unlabeled pool together")
            if getattr(factory, "ddp_refusal", None):
                stdout.print(f"not under torchrun: {factory.ddp_refusal}")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    from rich.table import Table

    from sslkit import rundir
    from sslkit.util import stdout

    root = Path(args.runs)
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder of runs; pass the --out of your runs (default runs)")
    rows = []
    for path in root.iterdir():
        record = rundir.read_json(path / rundir.CONFIG) if path.is_dir() else None
        if not record or "config" not in record:
            continue
        cfg = record["config"]
        summary = rundir.read_json(path / rundir.RESULTS) or {}
        scores = [
            (m["accuracy"], name)
            for name, m in summary.get("results", {}).items()
            if isinstance(m.get("accuracy"), float)
        ]
        best = f"{max(scores)[0]:.4f} ({max(scores)[1]})" if scores else ""
        stages = (path, path / rundir.PRETRAIN)  # the recipe's pretraining stage counts too
        seconds = sum(r.get("seconds", 0) for d in stages for r in rundir.read_history(d))
        seconds += summary.get("eval_seconds", 0)
        # the labels as used: a folder's "all" as its count
        labels = record.get("data", {}).get("labeled", cfg.get("labels"))
        if cfg.get("labels_per_class") is not None:
            labels = f"{cfg['labels_per_class']}/class"
        rows.append(
            (
                (path / rundir.CONFIG).stat().st_mtime,
                [
                    path.name,
                    cfg.get("data", ""),
                    cfg.get("pretext", ""),
                    str(labels if labels is not None else "all"),
                    str(cfg.get("seed", "")),
                    rundir.status(path),
                    best,
                    f"{seconds:,.0f} s" if seconds else "",
                ],
            )
        )
    table = Table(title=f"runs in {root}")
    for col in ("run", "data", "method", "labels", "seed", "status", "best accuracy", "wall"):
        table.add_column(col, justify="right" if col in ("labels", "seed", "wall") else "left")
    for _, row in sorted(rows, key=lambda r: r[0], reverse=True):
        table.add_row(*row)
    stdout.print(table if rows else f"no runs under {root}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from sslkit import rundir
    from sslkit.report.html import write_report

    dirs = [Path(d) for d in args.run_dirs]
    output = (
        Path(args.output)
        if args.output
        else (dirs[0] / rundir.REPORT if len(dirs) == 1 else Path(rundir.REPORT))
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
    raw pixels (same label draw). Ends with where the report is and what to do next."""
    from rich.table import Table

    from sslkit import rundir
    from sslkit.util import stdout

    baselines = baselines or {}
    table = Table(title="results")
    table.add_column("evaluator")
    table.add_column("metric")
    table.add_column("value", justify="right")
    columns = [
        (key, title)
        for key, title in [("random_init", "random init"), ("pixels", "raw pixels")]
        if baselines.get(key)
    ]
    for _, title in columns:
        table.add_column(title, justify="right")

    def cell(value: object) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    for name, metrics in results.items():
        for metric, value in metrics.items():
            extra = [baselines[key].get(name, {}).get(metric) for key, _ in columns]
            table.add_row(name, metric, cell(value), *("" if v is None else cell(v) for v in extra))
    stdout.print(table)
    stdout.print(f"run directory: {run_dir}")
    if (run_dir / rundir.REPORT).exists():
        stdout.print(f"report:        {run_dir / rundir.REPORT}")
    stdout.print(
        f"next:          sslkit eval {run_dir} --eval knn,finetune   |   tensorboard --logdir {run_dir.parent}"
        "   |   sslkit ls"
    )


COMMANDS = {
    "run": cmd_run,
    "eval": cmd_eval,
    "predict": cmd_predict,
    "suggest": cmd_suggest,
    "export": cmd_export,
    "plugins": cmd_plugins,
    "ls": cmd_ls,
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
    except Interrupted as exc:
        print(f"sslkit: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("sslkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
