"""``sslkit report``: one self-contained HTML file (inline CSS, pictures as base64 PNG data URIs) for one or more
run directories: training curves, the evaluation table, confusion matrices, a t-SNE map of the test features with
its neighbourhood hit (beside the same score for raw pixels), GAN samples and reconstructions; with several runs, a
comparison table and overlaid curves first.

t-SNE costs about 15 s for 2,000 points on 2 CPU cores; ``tsne_points`` (a run's setting, or ``sslkit report
--tsne-points``) sets the number of test images it maps, 0 skips it."""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sslkit import rundir
from sslkit.config import RunConfig
from sslkit.errors import UsageError
from sslkit.report import plots
from sslkit.report.tsne import Held, compute
from sslkit.util import atomic_write_text, log, status

NEIGHBOURS = 10


@dataclass
class RunView:
    """What the report reads from one run directory."""

    path: Path
    record: dict[str, Any]
    history: list[dict[str, Any]]
    summary: dict[str, Any] | None  # results.json; None while the run is unfinished
    steps: list[dict[str, float]] = field(default_factory=list)  # steps.csv
    confusions: dict[str, dict[str, Any]] = field(default_factory=dict)  # evaluator -> details
    pictures: list[tuple[str, Path]] = field(default_factory=list)
    tsne: dict[str, Any] | None = None
    tsne_note: str = ""

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> dict[str, Any]:
        return self.record.get("config", {})

    @property
    def results(self) -> dict[str, dict[str, float]]:
        return (self.summary or {}).get("results", {})


def read_run(path: Path) -> RunView:
    view = RunView(
        path,
        rundir.read_run_config(path),
        rundir.read_history(path),
        rundir.read_json(path / rundir.RESULTS),
        rundir.read_steps(path),
    )
    for name in view.results or _eval_names(path):
        details = rundir.read_json(rundir.eval_details(path, name))
        if details and details.get("confusion_matrix"):
            view.confusions[name] = details
    for name, epoch, picture in rundir.latest_pictures(path):
        view.pictures.append((f"{name} (epoch {epoch})", picture))
    return view


def _eval_names(path: Path) -> list[str]:
    return rundir.evaluators_with_details(path)


def add_tsne(view: RunView, points: int, held: Held | None = None) -> None:
    if points == 0:
        view.tsne_note = "skipped (t-SNE points set to 0)"
        return
    if not (view.path / rundir.ENCODER).exists():
        view.tsne_note = "no encoder.safetensors yet: the run has not finished"
        return
    try:
        with status(f"t-SNE of {points} test images"):
            view.tsne = compute(view.path, points, NEIGHBOURS, held)
    except (UsageError, ValueError, OSError, RuntimeError) as exc:
        view.tsne_note = f"not computed: {exc}"


def write_report(
    run_dirs: list[Path], out: Path, tsne_points: int | None = None, held: Held | None = None
) -> Path:
    """Write the report for ``run_dirs`` to ``out`` and return ``out``; ``held``: the one run's own config, data
    and encoder, in memory (at the end of ``sslkit run``), else what the report needs is read from disk."""
    if not run_dirs:
        raise UsageError("no run directory given; pass one or more directories made by `sslkit run`")
    views = [read_run(Path(d)) for d in run_dirs]
    for view in views:
        points = view.config.get("tsne_points", RunConfig.tsne_points) if tsne_points is None else tsne_points
        add_tsne(view, points, held)
    body = []
    if len(views) > 1:
        body.append(_comparison(views))
    body.extend(_run_section(v, i, len(views) > 1) for i, v in enumerate(views))
    title = "sslkit report: " + (views[0].name if len(views) == 1 else f"{len(views)} runs")
    page = PAGE.format(
        title=_e(title),
        css=CSS,
        heading=_e(title),
        stamp=dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        body="\n".join(body),
    )
    out = Path(out)
    atomic_write_text(out, page)
    return out


def write_run_report(
    run_dir: Path, tsne_points: int | None = None, quiet: bool = False, held: Held | None = None
) -> Path:
    """A finished run's own ``report.html``; says where it is."""
    out = write_report([run_dir], run_dir / rundir.REPORT, tsne_points, held)
    if not quiet:
        log(f"report: {out}")
    return out


# ------------------------------------------------------------------------------------------ sections


def _e(value: Any) -> str:
    return html.escape(str(value))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return _e(value)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return _e(value)


def _img(uri: str, alt: str, cls: str = "") -> str:
    return f'<img src="{uri}" alt="{_e(alt)}"{f" class={cls!r}" if cls else ""}>'


def _labels_text(cfg: dict[str, Any]) -> str:
    if cfg.get("labels_per_class"):
        return f"{cfg['labels_per_class']} per class"
    return "all" if cfg.get("labels") in (None, "all") else str(cfg["labels"])


def _options(opts: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in opts.items())


def _headline(view: RunView) -> list[tuple[str, str]]:
    """(evaluator, metric) pairs for the comparison table: each evaluator's first metric."""
    return [(name, next(iter(metrics))) for name, metrics in view.results.items() if metrics]


def _comparison(views: list[RunView]) -> str:
    columns: list[tuple[str, str]] = []
    for view in views:
        for pair in _headline(view):
            if pair not in columns:
                columns.append(pair)
    best = {}
    for col in columns:
        values = [v.results.get(col[0], {}).get(col[1]) for v in views]
        values = [x for x in values if isinstance(x, (int, float))]
        best[col] = max(values) if values else None
    head = ["run", "data", "pretext", "encoder", "labels", "seed", "epochs"]
    head += [f"{e}<br><small>{_e(m)}</small>" for e, m in columns]
    head += ["t-SNE hit<br><small>features / pixels</small>", "images/s", "train s"]
    rows = []
    for i, v in enumerate(views):
        cfg = v.config
        cells = [
            f'<a href="#run-{i}">{_e(v.name)}</a>',
            _e(cfg.get("data")),
            _e(cfg.get("pretext")),
            _e(cfg.get("encoder")),
            _e(_labels_text(cfg)),
            _e(cfg.get("seed")),
            _e(len(v.history)),
        ]
        for col in columns:
            x = v.results.get(col[0], {}).get(col[1])
            text = _fmt(x) if x is not None else "&ndash;"
            cells.append(f"<b>{text}</b>" if x is not None and x == best[col] and len(views) > 1 else text)
        hit = (v.tsne or {}).get("neighbourhood_hit")
        cells.append(f"{hit['features']:.3f} / {hit['pixels']:.3f}" if hit else "&ndash;")
        ips = [r["images_per_s"] for r in v.history if "images_per_s" in r]
        cells.append(f"{sum(ips) / len(ips):,.0f}" if ips else "&ndash;")
        seconds = (v.summary or {}).get("train_seconds")
        cells.append(f"{seconds:.1f}" if isinstance(seconds, (int, float)) else "unfinished")
        rows.append(cells)
    # losses of different pretexts are not comparable: overlay them only when every run trained the same one
    same = len({v.config.get("pretext") for v in views}) == 1
    curves = plots.overlaid_curves([(v.name, v.history) for v in views]) if same else None
    parts = ["<section><h2>Comparison</h2>", _table(head, rows, numeric_from=5)]
    parts.append("<p class=note>Best value per column in bold. Each evaluator's first metric is shown.</p>")
    if curves:
        parts.append(f"<h3>Pretext training, overlaid</h3><figure>{_img(curves, 'overlaid curves')}</figure>")
    parts.append("</section>")
    return "\n".join(parts)


def _table(head: list[str], rows: list[list[str]], numeric_from: int = 99) -> str:
    th = "".join(f"<th{' class=num' if i >= numeric_from else ''}>{h}</th>" for i, h in enumerate(head))
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if i >= numeric_from else ''}>{c}</td>" for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _facts(view: RunView) -> str:
    cfg, rec = view.config, view.record
    data = rec.get("data", {})
    facts = [
        ("data", f"{cfg.get('data')} ({data.get('train', '?')} train, {data.get('test', '?')} test)"),
        ("labels", f"{_labels_text(cfg)} labeled, {data.get('pool', '?')} unlabeled in the pool"),
        ("pretext", f"{cfg.get('pretext')} {_options(cfg.get('pretext_options', {}))}".strip()),
        ("encoder", f"{cfg.get('encoder')} {_options(cfg.get('encoder_options', {}))}".strip()),
    ]
    sched = rec.get("schedule", {})
    if sched:
        facts.append(
            (
                "schedule",
                f"{sched.get('epochs')} epoch(s), batch {sched.get('batch_size')}, {sched.get('optimizer')} "
                f"lr {sched.get('lr')}, weight decay {sched.get('weight_decay')}",
            )
        )
    facts.append(("seed", str(cfg.get("seed"))))
    facts.append(("device", str(rec.get("device"))))
    if view.summary:
        ips = [r["images_per_s"] for r in view.history if "images_per_s" in r]
        speed = f", {sum(ips) / len(ips):,.0f} images/s" if ips else ""
        facts.append(("training time", f"{view.summary.get('train_seconds', 0):.1f} s{speed}"))
    else:
        facts.append(("status", f"unfinished: {len(view.history)} epoch(s) logged, no results.json yet"))
    versions = rec.get("versions", {})
    if versions:
        facts.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items())))
    if rec.get("git_commit"):
        facts.append(("git commit", str(rec["git_commit"])[:12]))
    facts.append(("directory", str(view.path.resolve())))
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts) + "</dl>"


def _classifier(view: RunView) -> str:
    """What the run's classifier is, its honest estimate where there is no test split, and what the pool's
    predictions look like (how many per class, how confident)."""
    record = (view.summary or {}).get("classifier")
    if not record:
        return ""
    parts = [
        f"<h3>Classifier</h3><p class=note>{_e(record['source'])}, saved as {rundir.CLASSIFIER} "
        f"(used by <code>sslkit predict</code> and <code>sslkit export</code>).</p>"
    ]
    estimate = record.get("estimate")
    if estimate:
        parts.append(f"<p class=note>Estimate: {_fmt(estimate['cv_accuracy'])}, {_e(estimate['what'])}.</p>")
    path = view.path / rundir.PREDICTIONS
    if path.exists():
        import csv

        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        counts: dict[str, list[float]] = {}
        for row in rows:
            counts.setdefault(row["class"], []).append(float(row["confidence"]))
        table = [
            [_e(name), f"{len(c):,}", _fmt(sum(c) / len(c)), f"{sum(v >= 0.9 for v in c) / len(c):.0%}"]
            for name, c in sorted(counts.items(), key=lambda item: -len(item[1]))
        ]
        parts.append(f"<p class=note>{rundir.PREDICTIONS}: {len(rows):,} pool images labeled.</p>")
        parts.append(_table(["predicted class", "images", "mean confidence", "confidence >= 0.9"], table, 1))
    return "\n".join(parts)


def _run_section(view: RunView, index: int, several: bool) -> str:
    parts = [f'<section id="run-{index}">']
    if several:
        parts.append(f"<h2>{_e(view.name)}</h2>")
    parts.append(_facts(view))

    parts.append("<h3>Evaluation</h3>")
    if view.results:
        base = (view.summary or {}).get("baselines", {})
        extra = [
            (key, title)
            for key, title in (("random_init", "random init"), ("pixels", "raw pixels"))
            if base.get(key)
        ]
        rows = [
            [_e(name), _e(metric), _fmt(value)]
            + [_fmt(base[key].get(name, {}).get(metric, "")) for key, _ in extra]
            for name, m in view.results.items()
            for metric, value in m.items()
        ]
        parts.append(_table(["evaluator", "metric", "value", *(t for _, t in extra)], rows, numeric_from=2))
        if extra:
            parts.append(
                "<p class=note>Beside each score: the same evaluator, on the same label draw, on a randomly "
                "initialized encoder of the same architecture and on raw pixels: what training bought.</p>"
            )
    elif view.summary is None:
        parts.append("<p class=note>No results.json: the run has not finished its evaluation.</p>")
    elif not view.record.get("data", {}).get("labeled"):
        parts.append(
            "<p class=note>No labels yet: nothing to evaluate. <code>sslkit suggest</code> picks the "
            "images to label first.</p>"
        )
    else:
        parts.append(
            "<p class=note>No test split: no test accuracy is measured (nothing computed on the "
            "training labels is shown as one).</p>"
        )
    parts.append(_classifier(view))

    parts.append("<h3>Pretext training</h3>")
    curves = plots.run_curves(view.history, view.steps)
    if curves:
        parts.append(f"<figure>{_img(curves, 'training curves')}</figure>")
        last = view.history[-1]
        parts.append(
            f"<p class=note>{len(view.history)} epoch(s); last epoch: "
            + ", ".join(f"{k} {_short(v)}" for k, v in last.items() if k != "epoch")
            + "</p>"
        )
        warnings = [(r["epoch"], r["warning"]) for r in view.history if r.get("warning")]
        if warnings:
            parts.append(
                "<p class=warn>"
                + "<br>".join(f"epoch {epoch}: {_e(text)}" for epoch, text in warnings)
                + "</p>"
            )
    else:
        parts.append("<p class=note>No metrics.jsonl records yet.</p>")

    if view.confusions:
        parts.append("<h3>Confusion matrix</h3><div class=row>")
        for name, details in view.confusions.items():
            classes = details.get("classes") or [str(i) for i in range(len(details["confusion_matrix"]))]
            uri = plots.confusion(details["confusion_matrix"], classes, f"{name} evaluator, test split")
            parts.append(f"<figure>{_img(uri, f'confusion matrix ({name})', 'cm')}</figure>")
        parts.append("</div>")

    parts.append("<h3>t-SNE of the test features</h3>")
    if view.tsne:
        t = view.tsne
        hits = t["neighbourhood_hit"]
        uri = plots.tsne_maps(t["maps"], t["labels"], t["classes"], hits, t["k"])
        parts.append(f"<figure>{_img(uri, 't-SNE maps')}</figure>")
        parts.append(
            f"<p class=note>{len(t['labels'])} test images. Neighbourhood hit: the share of each point's "
            f"{t['k']} nearest neighbours in the 2-D map with its label, averaged: "
            f"<b>{hits['features']:.3f}</b> for the encoder's features, {hits['pixels']:.3f} for raw pixels. "
            f"Computed in {t.get('seconds', 0):.1f} s.</p>"
        )
    else:
        parts.append(f"<p class=note>t-SNE {_e(view.tsne_note)}.</p>")

    for caption, path in view.pictures:
        parts.append(f"<h3>{_e(caption[0].upper() + caption[1:])}</h3>")
        parts.append(f"<figure>{_img(plots.file_uri(path.read_bytes()), caption, 'pixelated')}</figure>")
    parts.append("</section>")
    return "\n".join(parts)


CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d232a;
       background: #f6f7f9; margin: 0; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 60px; }
header { border-bottom: 1px solid #d8dde3; margin-bottom: 8px; }
h1 { font-size: 24px; margin: 8px 0 2px; }
h2 { font-size: 20px; margin: 0 0 12px; }
h3 { font-size: 16px; margin: 26px 0 8px; color: #3b4754; }
.warn { color: #8a5300; background: #fff6e5; border-left: 3px solid #e0a030; padding: 6px 10px; font-size: 14px; }
.stamp { color: #6b7785; font-size: 13px; margin: 0 0 12px; }
section { background: #fff; border: 1px solid #e1e5ea; border-radius: 8px; padding: 18px 22px; margin: 18px 0; }
table { border-collapse: collapse; font-size: 14px; margin: 4px 0; }
th, td { padding: 5px 12px; border-bottom: 1px solid #e6e9ed; text-align: left; vertical-align: top; }
th { background: #f0f2f5; font-weight: 600; }
tbody tr:nth-child(even) { background: #fafbfc; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; font-size: 14px; }
dt { color: #6b7785; }
dd { margin: 0; overflow-wrap: anywhere; }
figure { margin: 6px 0; }
img { max-width: 100%; height: auto; }
img.pixelated { image-rendering: pixelated; width: 440px; max-width: 100%; border: 1px solid #e1e5ea; }
img.cm { max-width: 520px; }
.row { display: flex; flex-wrap: wrap; gap: 12px; }
.note { color: #55606c; font-size: 13.5px; }
a { color: #2a62b8; text-decoration: none; }
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
<main>
<header><h1>{heading}</h1><p class=stamp>written by sslkit on {stamp}</p></header>
{body}
</main>
</body>
</html>
"""
