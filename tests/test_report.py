"""The HTML report, built from a real tiny run on the bundled digits."""

from __future__ import annotations

import base64
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sslkit.cli import main
from sslkit.report import tsne
from sslkit.report.html import read_run
from sslkit.report.tsne import neighbourhood_hit

FAST_RUN = ["--data", "digits", "--epochs", "1", "--device", "cpu", "--eval-opt", "linear.c_grid=[1.0]"]


class Tags(HTMLParser):
    """Every tag with its attributes, and the visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(path: Path) -> Tags:
    tags = Tags()
    tags.feed(path.read_text())
    return tags


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    # the report written at the end of the run maps 300 test images, from the encoder and data the run holds:
    # nothing is rebuilt from disk
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            tsne, "load_run", lambda run_dir: pytest.fail("the run's report rebuilt the run from disk")
        )
        assert main(["run", *FAST_RUN, "--tsne-points", "300", "--out", str(out)]) == 0
    (path,) = out.iterdir()
    return path


def test_run_writes_a_complete_self_contained_report(run_dir: Path) -> None:
    report = run_dir / "report.html"
    assert report.exists()
    page = parse(report)
    text = report.read_text()
    # self-contained: no scripts or stylesheets fetched, no remote addresses at all
    assert "http://" not in text and "https://" not in text
    assert not any(tag in ("script", "link", "iframe") for tag, _ in page.tags)
    images = [attrs for tag, attrs in page.tags if tag == "img"]
    for attrs in images:
        src = attrs["src"]
        assert src.startswith("data:image/png;base64,"), src[:40]
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    alts = {attrs["alt"] for attrs in images}
    assert {"training curves", "confusion matrix (linear)", "t-SNE maps"} <= alts
    # the evaluation table holds the numbers of results.json
    results = json.loads((run_dir / "results.json").read_text())["results"]["linear"]
    for metric, value in results.items():
        assert metric in text and f"{value:.4f}" in text
    # the t-SNE section reports both neighbourhood hits, for 300 images
    tsne = json.loads((run_dir / "tsne.json").read_text())
    assert len(tsne["labels"]) == 300 and tsne["points"] == 300
    hits = tsne["neighbourhood_hit"]
    assert f"{hits['features']:.3f}" in text and f"{hits['pixels']:.3f}" in text
    # raw 8x8 digit pixels cluster well: far above the 0.1 of a random map
    assert hits["pixels"] > 0.7
    # beside each score, the baselines; a one-epoch run's curves come from its per-step log
    assert "random init" in text and "raw pixels" in text
    view = read_run(run_dir)
    assert len(view.steps) > 1 and len(view.history) == 1
    assert view.history[0]["lr"] == pytest.approx(
        max(s["lr"] for s in view.steps), rel=1e-5
    )  # peak, not last


def test_neighbourhood_hit_by_hand() -> None:
    # points on a line; k=2 neighbours each:
    # 0:(1,2)->a,b 1/2 | 1:(0,2)->a,b 1/2 | 2:(1,0)->a,a 0/2 | 10:(11,12)->b,a 1/2 | 11:(10,12)->b,a 1/2
    # 12:(11,10)->b,b 0/2  => mean (0.5+0.5+0+0.5+0.5+0)/6 = 1/3
    points = np.array([[0.0, 0], [1, 0], [2, 0], [10, 0], [11, 0], [12, 0]])
    labels = np.array([0, 0, 1, 1, 1, 0])
    assert neighbourhood_hit(points, labels, k=2) == pytest.approx(1 / 3)
    # against brute force on random points
    rng = np.random.default_rng(0)
    pts, lab = rng.normal(size=(200, 2)), rng.integers(0, 4, 200)
    d = ((pts[:, None] - pts[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nn = np.argsort(d, axis=1)[:, :10]
    assert neighbourhood_hit(pts, lab, k=10) == pytest.approx((lab[nn] == lab[:, None]).mean())


def test_neighbourhood_hit_never_counts_a_point_as_its_own_neighbour() -> None:
    # three points on one spot, labels a, b, c, and a far point: each of the three has the other two at distance 0
    points = np.array([[0.0, 0], [0, 0], [0, 0], [9, 9]])
    labels = np.array([0, 1, 1, 0])
    # k=1: point 0 finds a 1 (miss); points 1, 2 find each other or point 0; point 3's nearest is one of the three
    hit = neighbourhood_hit(points, labels, k=1)
    assert hit <= 0.75  # counting oneself would give 1.0 to the three stacked points
    assert neighbourhood_hit(points[:3], np.array([0, 1, 2]), k=1) == 0.0


def test_several_runs_get_a_comparison_table_and_overlaid_curves(run_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "second-run"
    shutil.copytree(run_dir, other)
    summary = json.loads((other / "results.json").read_text())
    summary["results"]["linear"]["accuracy"] = 0.123456
    (other / "results.json").write_text(json.dumps(summary))
    out = tmp_path / "both.html"
    assert main(["report", str(run_dir), str(other), "-o", str(out), "--tsne-points", "0"]) == 0
    text = out.read_text()
    assert "Comparison" in text and run_dir.name in text and "second-run" in text
    assert "0.1235" in text  # the edited accuracy, beside the real one in bold
    first = json.loads((run_dir / "results.json").read_text())["results"]["linear"]["accuracy"]
    assert f"<b>{first:.4f}</b>" in text
    assert 'alt="overlaid curves"' in text  # the same pretext: its losses are comparable
    config = json.loads((other / "config.json").read_text())
    config["config"]["pretext"] = "simclr"  # another pretext's loss is not on the same scale: no overlay
    (other / "config.json").write_text(json.dumps(config))
    assert main(["report", str(run_dir), str(other), "-o", str(out), "--tsne-points", "0"]) == 0
    assert 'alt="overlaid curves"' not in out.read_text()
    # --tsne-points 0 skipped the map computation, but the cached map of the first run is not reused:
    # both runs say t-SNE was skipped
    assert text.count("t-SNE skipped") == 2


def test_gan_samples_and_reconstructions_are_embedded(run_dir: Path, tmp_path: Path) -> None:
    gan = tmp_path / "gan-run"
    shutil.copytree(run_dir, gan)
    pictures = {}
    names = [
        "picture-samples-epoch2.png",
        "picture-samples-epoch10.png",
        "picture-reconstructions-epoch1.png",
    ]
    for i, name in enumerate(names):
        Image.fromarray(np.full((16, 16), 40 * (i + 1), dtype=np.uint8)).save(gan / name)
        pictures[name] = base64.b64encode((gan / name).read_bytes()).decode()
    out = tmp_path / "gan.html"
    assert main(["report", str(gan), "-o", str(out), "--tsne-points", "0"]) == 0
    text = out.read_text()
    assert pictures["picture-samples-epoch10.png"] in text  # the latest epoch, not the lexically last one
    assert pictures["picture-samples-epoch2.png"] not in text
    assert pictures["picture-reconstructions-epoch1.png"] in text
    assert "samples (epoch 10)" in text


def test_unfinished_run_is_reported_and_bad_dir_is_a_usage_error(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    killed = tmp_path / "killed"
    shutil.copytree(run_dir, killed)
    for name in ("results.json", "eval-linear.json", "encoder.safetensors", "tsne.json"):
        (killed / name).unlink()
    out = tmp_path / "killed.html"
    assert main(["report", str(killed), "-o", str(out)]) == 0
    text = out.read_text()
    assert "has not finished" in text and "Pretext training" in text
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "not an sslkit run directory" in err and "Traceback" not in err
    assert main(["report", str(run_dir), "--tsne-points", "-1"]) == 2


def test_shares_in_zero_one_are_plotted_apart_from_the_losses() -> None:
    from sslkit.report.plots import curve_keys

    records = [{"epoch": 1, "loss": 0.6, "supervised": 0.1, "mask": 0.5, "accuracy": 0.9, "lr": 0.03}]
    losses, rates = curve_keys(records)
    assert "mask" in rates and "accuracy" in rates
    assert "mask" not in losses and "supervised" in losses


def test_tsne_legend_names_every_class_even_one_starting_with_an_underscore(monkeypatch) -> None:
    from sslkit.report import plots

    legends = []
    monkeypatch.setattr(plots, "to_uri", lambda fig: legends.append(fig.legends[0]) or "")
    points = [[0.0, 0.0], [1.0, 1.0], [2.0, 0.5]]
    plots.tsne_maps({"features": points}, [0, 1, 1], ["_other", "cat"], {"features": 1.0}, 1)
    assert [t.get_text() for t in legends[0].get_texts()] == ["_other", "cat"]
