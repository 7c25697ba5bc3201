"""``sslkit bench SUITE.toml``: a grid of ordinary runs (methods x datasets x label budgets x seeds), resumable.

A suite file (see ``benchmarks/README.md``)::

    name = "fashion100"              # optional, default: the file's stem
    datasets = ["fashion-mnist"]
    labels = [100]                   # label budgets; "all" keeps every label
    seeds = [0, 1, 2]                # each seed is a label draw (and the model's seed)
    tsne_points = 0                  # t-SNE in each cell's report.html (0: skip)

    [defaults]                       # any `sslkit run` setting, for every cell
    eval = ["linear", "knn"]

    [methods.rotation]               # one method: settings that override the defaults
    pretext = "rotation"
    epochs = 5
    reference = 0.77                 # optional published/earlier number, shown beside ours
    reference_note = "RotNet, MNIST-100 notebook"

Each cell is a run directory ``OUT/<method>-<data>-<labels>-s<seed>``. A cell with ``results.json`` is done and
skipped; one with ``config.json`` only was killed and is resumed. The suite ends with a table (mean +- sample std
over seeds) and writes ``OUT/results.csv`` and ``OUT/results.json``.
"""

from __future__ import annotations

import csv
import fnmatch
import json
import os
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sslkit import build, rundir
from sslkit.config import RunConfig, names_list, parse_labels, read_toml
from sslkit.errors import UsageError
from sslkit.registry import Registry, load_registry
from sslkit.runner import run
from sslkit.util import atomic_write_text, log

GRID_KEYS = ("data", "labels", "labels_per_class", "seed", "out")  # set by the grid, not by a method
SUITE_KEYS = ("name", "description", "datasets", "labels", "seeds", "tsne_points", "defaults", "methods")


@dataclass
class Cell:
    name: str
    method: str
    cfg: RunConfig
    reference: float | None = None
    reference_note: str = ""

    @property
    def labels(self) -> str:
        return str(self.cfg.labels)


@dataclass
class Suite:
    name: str
    path: Path
    cells: list[Cell]
    tsne_points: int = 0
    description: str = ""


@dataclass
class SuiteResult:
    out: Path
    cells: list[dict[str, Any]] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------- parsing


def load_suite(path: Path) -> Suite:
    raw = read_toml(path)
    where = str(path)
    unknown = set(raw) - set(SUITE_KEYS)
    if unknown:
        raise UsageError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}; a suite has {', '.join(SUITE_KEYS)}"
        )
    name = str(raw.get("name", path.stem))
    datasets = _list(raw, "datasets", where, str)
    budgets = raw.get("labels", [100])
    if not isinstance(budgets, list) or not budgets:
        raise UsageError(
            f'{where}: labels must be a non-empty list of label budgets, e.g. [100] or [100, "all"]'
        )
    for b in budgets:
        try:
            usable = parse_labels(b) != 0  # a cell without labels would have nothing to evaluate
        except UsageError:
            usable = False
        if not usable:
            raise UsageError(f'{where}: label budget {b!r} must be a positive integer or "all"')
    seeds = _list(raw, "seeds", where, int, default=[0])
    tsne_points = raw.get("tsne_points", 0)
    if isinstance(tsne_points, bool) or not isinstance(tsne_points, int) or tsne_points < 0:
        raise UsageError(f"{where}: tsne_points must be an integer >= 0 (0 skips t-SNE), got {tsne_points!r}")
    defaults = raw.get("defaults", {})
    methods = raw.get("methods", {})
    if not isinstance(defaults, dict):
        raise UsageError(f"{where}: [defaults] must be a table of `sslkit run` settings")
    defaults = _underscored(defaults)
    if not isinstance(methods, dict) or not methods:
        raise UsageError(f"{where}: a suite needs at least one [methods.NAME] table")
    _no_grid_keys(defaults, f"{where} [defaults]")

    cells = []
    asked_options = set(defaults.get("eval_options", {}))  # evaluators some eval_options name
    for method, settings in methods.items():
        if not isinstance(settings, dict):
            raise UsageError(f"{where}: methods.{method} must be a table of settings")
        if not method.replace("-", "").replace("_", "").replace("+", "").isalnum():
            raise UsageError(
                f"{where}: method name {method!r} may hold only letters, digits, '-', '_' and '+'"
            )
        settings = _underscored(settings)
        asked_options |= set(settings.get("eval_options", {}))
        reference = settings.pop("reference", None)
        note = str(settings.pop("reference_note", ""))
        if reference is not None and (isinstance(reference, bool) or not isinstance(reference, (int, float))):
            raise UsageError(f"{where}: methods.{method}.reference must be a number, got {reference!r}")
        _no_grid_keys(settings, f"{where} [methods.{method}]")
        for data in datasets:
            for budget in budgets:
                for seed in seeds:
                    values = {"tsne_points": tsne_points, **defaults, **settings, "data": data, "seed": seed}
                    values["eval_options"] = _eval_options(defaults, settings, values)
                    values["labels"] = budget
                    cfg = RunConfig.from_dict(values, source=f"{where} [methods.{method}]")
                    label = "all" if budget == "all" else str(budget)
                    cell = f"{method}-{data}-{label}-s{seed}".replace("/", "_").replace(":", "_")
                    twin = next((c for c in cells if c.name == cell), None)
                    if twin is not None:  # one directory, trained twice, counted twice in the mean
                        raise UsageError(
                            f"{where}: two cells are named {cell} ({twin.method} and {method}, "
                            f"{twin.cfg.data} and {data}); remove the repeated seed or label budget, or rename "
                            "a method"
                        )
                    cells.append(Cell(cell, method, cfg, reference, note))
    _check_eval_options(asked_options, cells, where)
    return Suite(name, path, cells, tsne_points, str(raw.get("description", "")))


def _underscored(settings: dict) -> dict:
    """A suite's settings with ``-`` in their names read as ``_`` (``eval-options`` as ``eval_options``), as
    ``sslkit run``'s flags are."""
    return {key.replace("-", "_"): value for key, value in settings.items()}


def _check_eval_options(asked: set[str], cells: list[Cell], where: str) -> None:
    """Options ``asked`` for an evaluator that no cell runs are a typo, not a setting to drop (where every cell
    names its evaluators; a recipe's choice is checked by ``sslkit run``'s own rule)."""
    if any(c.cfg.eval is None for c in cells):
        return
    run = {name for c in cells for name in names_list(c.cfg.eval)}
    unused = sorted(asked - run)
    if unused:
        raise UsageError(
            f"{where}: eval_options for {', '.join(unused)}, which no cell evaluates (its evaluators: "
            f"{', '.join(sorted(run))}); fix the name or add it to eval"
        )


def _eval_options(defaults: dict, settings: dict, values: dict) -> dict:
    """Per-evaluator options: the method's over the defaults', kept only for the evaluators the cell runs."""
    merged = {**defaults.get("eval_options", {}), **settings.get("eval_options", {})}
    evals = values.get("eval")
    if evals is None:  # the method's recipe decides (build.resolve)
        return merged
    evals = names_list(evals)
    return {name: opts for name, opts in merged.items() if name in evals}


def _list(raw: dict, key: str, where: str, kind: type, default: list | None = None) -> list:
    value = raw.get(key, default)
    if value is None:
        raise UsageError(f"{where}: missing {key} = [...]")
    if not isinstance(value, list) or not value or not all(isinstance(v, kind) for v in value):
        raise UsageError(f"{where}: {key} must be a non-empty list of {kind.__name__}, got {value!r}")
    return value


def _no_grid_keys(settings: dict, where: str) -> None:
    clash = [k for k in settings if k.replace("-", "_") in GRID_KEYS]
    if clash:
        raise UsageError(
            f"{where}: {', '.join(clash)} set by the grid; use the suite's top-level datasets/labels/seeds"
        )


# ------------------------------------------------------------------------------------------- running


def cell_state(run_dir: Path) -> str:
    if (run_dir / rundir.RESULTS).exists():
        return "done"
    if (run_dir / rundir.CONFIG).exists():
        return "killed"
    return "new"


def run_cell(cell: Cell, run_dir: Path, quiet: bool = False) -> None:
    """Run (or resume) one cell in this process and record its wall time in ``bench.json``."""
    t0 = time.perf_counter()
    if cell_state(run_dir) == "killed":
        run(RunConfig(), resume=run_dir, quiet=quiet)
    else:
        run(cell.cfg, run_dir=run_dir, quiet=quiet)
    record = {"wall_seconds": round(time.perf_counter() - t0, 2), "threads": _threads()}
    atomic_write_text(run_dir / rundir.BENCH, json.dumps(record, indent=2))


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def run_suite(
    suite_path: Path,
    out: Path | None = None,
    jobs: int = 1,
    only: str | None = None,
    cell: str | None = None,
) -> SuiteResult:
    """Run every unfinished cell of the suite (``jobs`` at a time), then summarize all finished cells.

    ``only`` keeps cells whose method or cell name matches one of its comma-separated glob patterns; ``cell``
    runs exactly one cell in this process (what ``--jobs`` subprocesses do)."""

    suite = load_suite(Path(suite_path))
    out = Path(out) if out else Path("benchmarks") / "results" / suite.name
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {jobs}")
    cells = suite.cells
    if cell is not None:
        cells = [c for c in cells if c.name == cell]
        if not cells:
            raise UsageError(f"suite {suite.name} has no cell {cell!r}")
        run_cell(cells[0], out / cell)
        return SuiteResult(out)
    if only:
        patterns = names_list(only)
        cells = [
            c
            for c in cells
            if any(fnmatch.fnmatch(c.method, p) or fnmatch.fnmatch(c.name, p) for p in patterns)
        ]
        if not cells:
            methods = ", ".join(sorted({c.method for c in suite.cells}))
            raise UsageError(f"--only {only!r} matches no cell; the suite's methods: {methods}")
    registry = load_registry()
    for c in cells:  # every name and option checked before the first cell starts
        build.resolve(registry, c.cfg)
    out.mkdir(parents=True, exist_ok=True)

    todo = []
    for c in cells:
        state = cell_state(out / c.name)
        if state == "done":
            _warn_if_changed(registry, c, out / c.name)
            log(f"[dim]skip[/] {c.name} (finished: results.json present)")
        else:
            todo.append(c)
    log(
        f"[bold]bench[/] {suite.name}: {len(cells)} cells, {len(cells) - len(todo)} finished, "
        f"{len(todo)} to run ({jobs} at a time) -> {out}"
    )
    failed = _run_parallel(suite, todo, out, jobs) if jobs > 1 else _run_serial(suite, todo, out)
    result = summarize(suite, suite.cells, out)  # the suite's files hold every cell, whichever --only ran
    if only:  # the table: the groups of the cells asked for (each over all its finished seeds)
        groups = {(c.method, c.cfg.data, c.labels) for c in cells}
        names = {c.name for c in cells}
        result.summary = [r for r in result.summary if (r["method"], r["data"], r["labels"]) in groups]
        result.cells = [r for r in result.cells if r["cell"] in names]
    result.failed = failed
    print_summary(suite, result)
    if failed:
        log(
            f"[red]{len(failed)} cell(s) failed[/]: {', '.join(failed)} (see their bench.log or bench-error.txt)"
        )
    return result


def _warn_if_changed(registry: Registry, cell: Cell, run_dir: Path) -> None:
    saved = (rundir.read_json(run_dir / rundir.CONFIG) or {}).get("config")
    if not saved:
        return
    resolved = build.resolve(registry, cell.cfg)  # as the run recorded it: encoder and recipe filled in
    want = {k: v for k, v in resolved.to_dict().items() if k != "out"}
    changed = sorted(k for k, v in want.items() if k in saved and saved[k] != v)  # new settings: no change
    if changed:
        log(
            f"[yellow]warning[/] {cell.name} was run with other settings ({', '.join(changed)}); "
            f"delete {run_dir} to rerun it with the suite's"
        )


def _run_serial(suite: Suite, todo: list[Cell], out: Path) -> list[str]:
    failed = []
    for i, c in enumerate(todo, 1):
        run_dir = out / c.name
        verb = "resume" if cell_state(run_dir) == "killed" else "run"
        log(f"[bold][{i}/{len(todo)}][/] {verb} {c.name}")
        try:
            run_cell(c, run_dir)
        except Exception as exc:  # one failing cell must not stop the suite
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "bench-error.txt").write_text(traceback.format_exc())
            log(f"[red]failed[/] {c.name}: {exc}")
            failed.append(c.name)
    return failed


def _run_parallel(suite: Suite, todo: list[Cell], out: Path, jobs: int) -> list[str]:
    """Each cell in its own ``sslkit bench --cell`` process with cores/jobs threads; output to ``bench.log``."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // jobs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    pending, running, failed, done = list(todo), {}, [], 0
    try:
        while pending or running:
            while pending and len(running) < jobs:
                c = pending.pop(0)
                run_dir = out / c.name
                run_dir.mkdir(parents=True, exist_ok=True)
                cmd = [
                    sys.executable,
                    "-m",
                    "sslkit",
                    "bench",
                    str(suite.path),
                    "--out",
                    str(out),
                    "--cell",
                    c.name,
                ]
                logfile = open(run_dir / "bench.log", "ab")  # noqa: SIM115 (closed when the process ends)
                proc = subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT, env=env)
                running[proc] = (c, logfile, time.perf_counter())
                log(f"start {c.name} (pid {proc.pid}, {threads} threads)")
            time.sleep(0.5)
            for proc in [p for p in running if p.poll() is not None]:
                c, logfile, t0 = running.pop(proc)
                logfile.close()
                done += 1
                status = "done" if proc.returncode == 0 else f"[red]failed (exit {proc.returncode})[/]"
                if proc.returncode != 0:
                    failed.append(c.name)
                log(f"[bold][{done}/{len(todo)}][/] {status} {c.name} in {time.perf_counter() - t0:.0f} s")
    except KeyboardInterrupt:
        for proc, (_cell, logfile, _) in running.items():
            proc.terminate()
            proc.wait()
            logfile.close()
        raise
    return failed


# ------------------------------------------------------------------------------------------- summary


def summarize(suite: Suite, cells: list[Cell], out: Path) -> SuiteResult:
    """Per-cell records and, per method x data x labels x evaluator metric, mean and sample std over seeds."""
    result = SuiteResult(out)
    groups: dict[tuple, dict[str, Any]] = {}
    for c in cells:
        run_dir = out / c.name
        summary = rundir.read_json(run_dir / rundir.RESULTS)
        bench = rundir.read_json(run_dir / rundir.BENCH) or {}
        recorded = (rundir.read_json(run_dir / rundir.CONFIG) or {}).get("config", {})
        encoder = c.cfg.encoder or recorded.get("encoder", "(the pretext's recipe)")
        record = {
            "cell": c.name,
            "method": c.method,
            "pretext": c.cfg.pretext,
            "encoder": encoder,
            "data": c.cfg.data,
            "labels": c.labels,
            "seed": c.cfg.seed,
            "status": "done" if summary else cell_state(run_dir),
            "run_dir": str(run_dir),
            "results": (summary or {}).get("results", {}),
            "train_seconds": (summary or {}).get("train_seconds"),
            "wall_seconds": bench.get("wall_seconds"),
        }
        result.cells.append(record)
        if not summary:
            continue
        for evaluator, metrics in record["results"].items():
            for metric, value in metrics.items():
                key = (c.method, c.cfg.data, c.labels, evaluator, metric)
                g = groups.setdefault(
                    key, {"cell": c, "encoder": encoder, "values": [], "seeds": [], "walls": []}
                )
                g["values"].append(float(value))
                g["seeds"].append(c.cfg.seed)
                if record["wall_seconds"] is not None:
                    g["walls"].append(record["wall_seconds"])
    for (method, data, labels, evaluator, metric), g in groups.items():
        values, c = g["values"], g["cell"]
        result.summary.append(
            {
                "method": method,
                "pretext": c.cfg.pretext,
                "encoder": g["encoder"],
                "data": data,
                "labels": labels,
                "evaluator": evaluator,
                "metric": metric,
                "mean": statistics.fmean(values),
                "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                "n": len(values),
                "seeds": g["seeds"],
                "values": values,
                "reference": c.reference if metric == "accuracy" else None,
                "reference_note": c.reference_note if metric == "accuracy" else "",
                "wall_seconds_mean": statistics.fmean(g["walls"]) if g["walls"] else None,
            }
        )
    payload = {"suite": suite.name, "file": str(suite.path), "cells": result.cells, "summary": result.summary}
    rundir.write_json(out / rundir.RESULTS, payload)
    _write_csv(out / "results.csv", result.summary)
    return result


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = [
        "method",
        "pretext",
        "encoder",
        "data",
        "labels",
        "evaluator",
        "metric",
        "mean",
        "std",
        "n",
        "values",
        "reference",
        "wall_seconds_mean",
    ]
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "values": ";".join(f"{v:.6g}" for v in row["values"])})
    os.replace(tmp, path)


def print_summary(suite: Suite, result: SuiteResult) -> None:
    """Each evaluator's first metric (accuracy) per method; every metric is in results.csv."""
    from rich.console import Console
    from rich.table import Table

    first: dict[tuple, str] = {}
    for row in result.summary:
        first.setdefault((row["method"], row["evaluator"]), row["metric"])
    table = Table(title=f"{suite.name}: test accuracy, mean ± std over seeds (all metrics: results.csv)")
    for col in ("method", "data/labels", "evaluator", "ours", "n", "ref", "s/cell"):
        left = col in ("method", "data/labels", "evaluator")
        table.add_column(col, justify="left" if left else "right", no_wrap=col in ("ours", "method"))
    for row in result.summary:
        if first[(row["method"], row["evaluator"])] != row["metric"]:
            continue
        evaluator = row["evaluator"] if row["metric"] == "accuracy" else f"{row['evaluator']} {row['metric']}"
        table.add_row(
            row["method"],
            f"{row['data']}/{row['labels']}",
            evaluator,
            f"{row['mean']:.4f} ± {row['std']:.4f}",
            str(row["n"]),
            f"{row['reference']:.2f}" if row["reference"] is not None else "",
            f"{row['wall_seconds_mean']:.0f}" if row["wall_seconds_mean"] is not None else "",
        )
    unfinished = [c["cell"] for c in result.cells if c["status"] != "done"]
    Console().print(table)
    if unfinished:
        Console().print(f"unfinished cells: {', '.join(unfinished)}")
