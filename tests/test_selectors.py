"""Selectors (which pool images to label) and the label-free embedding they choose in, on generated data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sslkit_builtins.selectors.probcover import ProbCover
from sslkit_builtins.selectors.random_pick import RandomPick
from sslkit_builtins.selectors.typiclust import UNSURE_FROM, TypiClust, kmeans_labels
from torch import Tensor

from sslkit import UsageError
from sslkit.embedding import AUTO_SELECTOR, knn_graph, spectral_embedding
from sslkit.interfaces import KINDS, SelectionContext
from sslkit.registry import load_registry

SELECTORS = ("random", "typiclust", "probcover")
SIZES = [700, 400, 300, 200, 150, 100, 60, 40, 30, 20]  # 2,000 images of 10 classes, very unequal


def blobs(seed: int = 0) -> tuple[Tensor, np.ndarray]:
    """10 well-separated Gaussian blobs in 16 dims with the class sizes above."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(len(SIZES), 16, generator=g) * 8
    labels = torch.repeat_interleave(torch.arange(len(SIZES)), torch.tensor(SIZES))
    return centers[labels] + torch.randn(len(labels), 16, generator=g), labels.numpy()


def context(x: Tensor, n: int, labeled: list[int] = (), probabilities: Tensor | None = None, seed: int = 0):
    return SelectionContext(x, n, torch.tensor(list(labeled), dtype=torch.int64), probabilities, seed)


@pytest.fixture(scope="module")
def registry():
    return load_registry()


@pytest.fixture(scope="module")
def data() -> tuple[Tensor, np.ndarray]:
    return blobs()


def test_the_registry_lists_the_selectors_through_entry_points(registry) -> None:
    assert "selector" in KINDS
    assert set(SELECTORS) <= set(registry.names("selector"))
    assert AUTO_SELECTOR in registry.names("selector")
    for name in SELECTORS:
        entry = registry.get("selector", name)
        assert entry.provider.distribution == "sslkit"
        selector = registry.build("selector", name)
        assert selector.needs_classifier is False
    assert registry.check_options("selector", "probcover", {"delta": 1}) == {"delta": 1.0}
    with pytest.raises(UsageError, match="must be one of"):
        registry.check_options("selector", "typiclust", {"weight": "entropy"})


def test_random_picks_miss_a_class_that_typiclust_and_probcover_cover(registry, data) -> None:
    x, y = data
    covered = {}
    for name in SELECTORS:
        picks = registry.build("selector", name).select(context(x, 10))
        covered[name] = len(set(y[picks.numpy()].tolist()))
    assert covered["random"] < 10  # a person labeling 10 images at random misses the rare classes
    assert covered["typiclust"] == 10
    assert covered["probcover"] == 10


@pytest.mark.parametrize("name", SELECTORS)
def test_the_same_context_gives_the_same_picks(registry, data, name: str) -> None:
    x, _ = data
    first = registry.build("selector", name).select(context(x, 12, [3, 5], seed=4))
    again = registry.build("selector", name).select(context(x.clone(), 12, [3, 5], seed=4))
    assert first.dtype == torch.int64
    assert torch.equal(first, again)


@pytest.mark.parametrize("name", SELECTORS)
def test_picks_are_distinct_and_never_labeled(registry, data, name: str) -> None:
    x, y = data
    # one labeled image in each of the 5 largest classes: the next 5 picks go to the other classes
    labeled = [int(np.flatnonzero(y == c)[7]) for c in range(5)]
    picks = registry.build("selector", name).select(context(x, 5, labeled)).tolist()
    assert len(picks) == len(set(picks)) == 5
    assert not set(picks) & set(labeled)
    if name != "random":
        assert sorted(set(y[picks].tolist())) == [5, 6, 7, 8, 9]
    # more picks than clusters, and a pool almost all labeled: still distinct, still unlabeled
    many = registry.build("selector", name).select(context(x, 40, labeled)).tolist()
    assert len(set(many)) == 40 and not set(many) & set(labeled)
    small = x[:30]
    rest = registry.build("selector", name).select(context(small, 3, list(range(27)))).tolist()
    assert sorted(rest) == [27, 28, 29]


@pytest.mark.parametrize("name", SELECTORS)
def test_more_picks_than_unlabeled_images_is_a_one_line_error(registry, name: str) -> None:
    x = torch.randn(20, 4, generator=torch.Generator().manual_seed(0))
    with pytest.raises(UsageError, match="cannot select 19 images") as info:
        registry.build("selector", name).select(context(x, 19, [0, 1]))
    assert "\n" not in str(info.value) and "at most 18" in str(info.value)
    assert registry.build("selector", name).select(context(x, 0)).tolist() == []


def test_typiclust_weighs_by_uncertainty_when_probabilities_are_given(data) -> None:
    x, y = data
    big = np.flatnonzero(y == 0)
    # the classifier is sure everywhere except on half of the largest class (still a dense region)
    unsure = big[x[big, 0].numpy() > float(x[big, 0].median())]
    probabilities = torch.tensor([0.98, 0.01, 0.01]).repeat(len(x), 1)
    probabilities[unsure] = torch.tensor([0.4, 0.35, 0.25])
    plain = TypiClust().select(context(x, 10)).tolist()
    weighted = TypiClust(weight="margin").select(context(x, 10, probabilities=probabilities)).tolist()
    pick_in_big = [p for p in weighted if y[p] == 0]
    assert len(pick_in_big) == 1 and pick_in_big[0] in set(unsure.tolist())
    assert len(set(y[weighted].tolist())) == 10  # still one per class: dense and unsure, not outliers
    assert TypiClust(weight="none").select(context(x, 10, probabilities=probabilities)).tolist() == plain
    # auto: under UNSURE_FROM labels per class (none here), typicality alone
    assert TypiClust().select(context(x, 10, probabilities=probabilities)).tolist() == plain
    # from UNSURE_FROM labels per class on, auto weighs by the margins
    labeled = np.flatnonzero(y != 0)[: UNSURE_FROM * probabilities.shape[1]].tolist()
    auto, margin, none = (
        TypiClust(weight=w).select(context(x, 10, labeled, probabilities)).tolist()
        for w in ("auto", "margin", "none")
    )
    assert auto == margin != none
    with pytest.raises(UsageError, match="needs the classifier's probabilities"):
        TypiClust(weight="margin").select(context(x, 10))
    with pytest.raises(UsageError, match="weight must be one of auto, none, margin, got 'classes'"):
        TypiClust(weight="classes")  # type: ignore[arg-type]  # the rule deleted: refused, not read as "none"


def test_probcover_picks_its_radius_from_pseudo_label_purity(data) -> None:
    x, y = data
    selector = ProbCover()
    picks = selector.select(context(x, 10))
    delta = selector.last_delta
    assert delta is not None and 0 < delta < 2
    # the largest radius whose balls are pure w.r.t. k-means pseudo-labels around >= 95 % of the images
    unit = torch.nn.functional.normalize(x, dim=1)
    pseudo = torch.from_numpy(kmeans_labels(unit.numpy(), 10, 0, 30))
    distances = torch.cdist(unit, unit)

    def pure(radius: float) -> float:
        inside = distances < radius
        return float((inside & (pseudo[None, :] != pseudo[:, None])).any(1).logical_not().float().mean())

    assert pure(delta * 0.999) >= 0.95 > pure(delta * 1.02)
    assert len(set(y[picks.numpy()].tolist())) == 10
    # a radius given as an option is used as is
    fixed = ProbCover(delta=0.05)
    fixed.select(context(x, 3))
    assert fixed.last_delta == 0.05
    with pytest.raises(UsageError, match="delta"):
        ProbCover(delta=3.0)


def test_probcover_clusters_into_the_labels_classes_where_the_context_knows_them(data) -> None:
    x, _ = data
    known = ProbCover()
    known.select(SelectionContext(x, 3, classes=10))
    fixed, unknown = ProbCover(pseudo_classes=10), ProbCover()
    fixed.select(context(x, 3))
    unknown.select(context(x, 3))  # one cluster a pick (3): coarser clusters, a wider radius
    assert known.last_delta == fixed.last_delta != unknown.last_delta
    with pytest.raises(ValueError, match="classes must be >= 1"):
        SelectionContext(x, 3, classes=0)


def test_probcover_counts_coverage_on_a_sample_when_the_pool_is_large(data) -> None:
    x, y = data
    sampled = ProbCover(witnesses=300)
    picks = sampled.select(context(x, 10))
    assert sampled.last_witnesses == 300
    assert len(set(y[picks.numpy()].tolist())) == 10
    assert torch.equal(picks, ProbCover(witnesses=300).select(context(x, 10)))
    with pytest.raises(UsageError, match="give a smaller delta") as info:  # huge balls, a tiny memory budget
        ProbCover(delta=1.9, max_edges=1000).select(context(x, 3))
    assert "\n" not in str(info.value)


def test_kmeans_keeps_the_lowest_inertia_of_its_runs_and_finds_every_blob(data) -> None:
    x, truth = data[0].numpy(), data[1]

    def blobs_found(labels: np.ndarray) -> int:  # blobs that are the majority of a cluster of their own
        return len({int(np.bincount(labels[truth == b]).argmax()) for b in range(len(SIZES))})

    single = [blobs_found(kmeans_labels(x, len(SIZES), seed, 30, runs=1)) for seed in range(10)]
    best = [blobs_found(kmeans_labels(x, len(SIZES), seed, 30)) for seed in range(10)]
    assert min(single) < len(SIZES)  # one run from one start sometimes merges two blobs...
    assert best == [len(SIZES)] * 10  # ...the lowest inertia of ten never does


def test_random_is_uniform_over_the_unlabeled_pool(data) -> None:
    x, _ = data
    counts = torch.zeros(len(x))
    for seed in range(50):
        counts[RandomPick().select(context(x, 100, list(range(100)), seed=seed))] += 1
    assert counts[:100].sum() == 0
    assert counts[100:].mean() == pytest.approx(5000 / 1900)
    assert counts[100:].max() < 12


def test_knn_graph_finds_the_nearest_rows_but_never_the_row_itself() -> None:
    x = torch.tensor([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.1, 0.99], [1.0, 0.0]])
    indices, sims = knn_graph(x, 2)
    assert indices.shape == sims.shape == (5, 2)
    assert all(i not in row for i, row in enumerate(indices.tolist()))
    assert set(indices[0].tolist()) == {4, 1}  # the duplicate row first, the row itself excluded
    assert indices[2, 0] == 3 and sims[0, 0] == pytest.approx(1.0)
    with pytest.raises(UsageError, match="k < N"):
        knn_graph(x, 5)


def moons(n: int, noise: float, seed: int) -> tuple[Tensor, np.ndarray]:
    """Two interleaved half-moons (scikit-learn's layout), centred, on the plane z = 3 of 3-d space: cosine
    similarity between such rows follows their distance in the plane."""
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=g) * math.pi
    upper = torch.arange(n) % 2 == 0
    xy = torch.where(
        upper[:, None],
        torch.stack([t.cos(), t.sin()], 1),
        torch.stack([1 - t.cos(), 0.5 - t.sin()], 1),
    )
    xy = xy - torch.tensor([0.5, 0.25]) + noise * torch.randn(n, 2, generator=g)
    return torch.cat([xy, torch.full((n, 1), 3.0)], 1), upper.long().numpy()


def purity(clusters: np.ndarray, labels: np.ndarray) -> float:
    return sum(np.bincount(labels[clusters == c]).max() for c in np.unique(clusters)) / len(labels)


@pytest.mark.parametrize("n", [400, 3000])  # the dense solver, and ARPACK (two separate components)
def test_spectral_embedding_separates_moons_that_kmeans_on_coordinates_cannot(n: int) -> None:
    x, labels = moons(n, 0.05, seed=1)
    raw = kmeans_labels(x.numpy(), 2, 0, 30)
    assert purity(raw, labels) < 0.8
    embedding = spectral_embedding(x, dims=2, k=10)
    assert embedding.shape == (n, 2) and embedding.dtype == torch.float32
    assert torch.allclose(embedding.norm(dim=1), torch.ones(n), atol=1e-5)
    assert purity(kmeans_labels(embedding.numpy(), 2, 0, 30), labels) > 0.95
    assert torch.equal(embedding, spectral_embedding(x, dims=2, k=10))


def test_spectral_embedding_refuses_more_dimensions_than_rows() -> None:
    with pytest.raises(UsageError, match="dims"):
        spectral_embedding(torch.randn(10, 3), dims=9)


def test_a_folder_of_a_few_images_is_embedded_in_fewer_directions() -> None:
    from sslkit.labeling import SPECTRAL_DIMS, selection_space

    images = torch.randint(0, 256, (10, 1, 8, 8), dtype=torch.uint8)
    assert SPECTRAL_DIMS > 8 and selection_space(images, torch.randn(10, 4)).shape == (10, 8)


def test_a_supervised_run_without_labels_trains_the_label_free_method_instead(tmp_path, capsys) -> None:
    from sslkit.cli import main

    args = ["run", "--data", "digits", "--pretext", "supervised", "--labels", "0", "--epochs", "1"]
    assert main([*args, "--pool-size", "300", "--tsne-points", "0", "--out", str(tmp_path)]) == 0
    assert "no labels yet: training rotation (label-free, instead of supervised)" in capsys.readouterr().err


def test_run_select_records_its_picks_and_a_saved_run_reuses_them(tmp_path, monkeypatch, capsys) -> None:
    """`sslkit run --select` on digits: the selector sees pixels only, exactly the picks' labels are revealed and
    recorded; eval and suggest rebuild the run from the recorded picks instead of choosing again."""
    import json

    from sslkit import build
    from sslkit.cli import main

    out = tmp_path / "runs"
    args = [
        "run",
        "--data",
        "digits",
        "--labels",
        "10",
        "--select",
        "auto",
        "--epochs",
        "1",
        "--tsne-points",
        "0",
        "--no-baselines",
    ]
    assert main([*args, "--out", str(out)]) == 0
    (run_dir,) = out.iterdir()
    data = json.loads((run_dir / "config.json").read_text())["data"]
    assert data["selected_by"] == AUTO_SELECTOR and data["labeled"] == 10 and len(set(data["selected"])) == 10
    assert data["classes_seen"] <= 10
    monkeypatch.setattr(build, "selected_budget", lambda *a: pytest.fail("the picks were chosen again"))
    # eval checks the rebuilt labels' digest against the record
    assert main(["eval", str(run_dir), "--eval", "linear"]) == 0
    assert main(["suggest", str(run_dir), "--n", "5", "--out", str(tmp_path / "next.csv")]) == 0
    rows = (tmp_path / "next.csv").read_text().splitlines()[1:]
    known, picked = rows[:10], rows[10:]
    assert len(picked) == 5 and {r.split(",")[0] for r in picked}.isdisjoint(r.split(",")[0] for r in known)
    assert sorted(int(r.split(",")[0][6:-1]) for r in known) == sorted(data["selected"])  # train[i]
    # a next round: its picks stay labeled, five more are chosen with its model; this run trains from scratch
    monkeypatch.undo()
    assert (
        main([*args[:4], "15", *args[5:], "--select-from", str(run_dir), "--out", str(tmp_path / "round2")])
        == 0
    )
    (second,) = (tmp_path / "round2").iterdir()
    data2 = json.loads((second / "config.json").read_text())["data"]
    assert set(data["selected"]) < set(data2["selected"]) and len(set(data2["selected"])) == 15
    assert data2["selected_rounds"] == [10, 5] and data2["labeled"] == 15
    assert "round 2: the 10 images" in capsys.readouterr().err
    assert json.loads((second / "config.json").read_text())["init"] is None
    assert main([*args, "--select-from", str(run_dir), "--out", str(tmp_path / "round3")]) == 2
    assert "more labels (--labels above 10)" in capsys.readouterr().err
    assert (
        main(["run", "--data", "digits", "--select-from", str(run_dir), "--out", str(tmp_path / "r4")]) == 2
    )
    assert "give --select STRATEGY too" in capsys.readouterr().err
    record = json.loads((run_dir / "config.json").read_text())
    record["config"]["data"] = "mnist"  # a run on other data: its picks are not indices into this one
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "config.json").write_text(json.dumps(record))
    assert main([*args, "--select-from", str(tmp_path / "elsewhere"), "--out", str(tmp_path / "r5")]) == 2
    assert "trained on mnist (1,300 images), this run selects in digits (1,300)" in capsys.readouterr().err
