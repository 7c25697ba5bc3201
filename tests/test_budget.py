"""Label budgets and validation splits: balanced, seeded, disjoint; `--labels all` parsed the same everywhere."""

from __future__ import annotations

import pytest
import torch

from sslkit import UsageError
from sslkit.cli import build_parser, config_from_args
from sslkit.config import RunConfig
from sslkit.data.budget import split_budget


def labels_with_counts(counts: list[int], seed: int = 0) -> torch.Tensor:
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))]


def test_budget_is_balanced_seeded_and_partitions_train() -> None:
    labels = labels_with_counts([50, 80, 30, 60])
    b = split_budget(labels, 42, seed=1)
    counts = torch.bincount(labels[b.labeled], minlength=4)
    assert counts.sum() == 42 and counts.max() - counts.min() <= 1  # 42 = 4 * 10 + 2
    assert torch.equal(torch.sort(torch.cat([b.labeled, b.unlabeled])).values, torch.arange(len(labels)))
    again = split_budget(labels, 42, seed=1)
    assert torch.equal(again.labeled, b.labeled) and again.digest == b.digest
    other = split_budget(labels, 42, seed=2)
    assert not torch.equal(other.labeled, b.labeled) and other.digest != b.digest


def test_labels_per_class_and_all() -> None:
    labels = labels_with_counts([20, 20, 20])
    b = split_budget(labels, None, seed=0, per_class=7)
    assert torch.bincount(labels[b.labeled]).tolist() == [7, 7, 7]
    everything = split_budget(labels, None, seed=0)
    assert torch.equal(everything.labeled, torch.arange(60)) and len(everything.unlabeled) == 0
    with pytest.raises(UsageError, match="class 1 has only 15 training images but the budget asks for 16"):
        split_budget(labels_with_counts([20, 15, 20]), None, seed=0, per_class=16)
    with pytest.raises(UsageError, match="class 'dog' has only 15"):  # named where the classes have names
        split_budget(
            labels_with_counts([20, 15, 20]), None, seed=0, per_class=16, names=["cat", "dog", "fox"]
        )
    with pytest.raises(UsageError, match="labels-per-class must be a positive"):
        split_budget(labels, None, seed=0, per_class=0)
    with pytest.raises(UsageError, match="more than the 60 training images"):
        split_budget(labels, 61, seed=0)


def test_budget_on_real_fashion_mnist(fashion) -> None:
    b = split_budget(fashion.train.labels, 100, seed=0)
    assert torch.bincount(fashion.train.labels[b.labeled]).tolist() == [10] * 10
    assert len(b.unlabeled) == 60_000 - 100 and len(b.digest) == 16


def test_labels_all_means_every_label_on_the_command_line_and_in_toml(tmp_path) -> None:
    parser = build_parser()
    cfg = config_from_args(parser.parse_args(["run", "--labels", "all"]))
    assert cfg.labels == "all" and cfg.labels_per_class is None
    cfg = config_from_args(parser.parse_args(["run", "--labels-per-class", "5"]))
    assert cfg.labels is None and cfg.labels_per_class == 5
    assert RunConfig.from_dict({"labels": "all"}).labels == "all"
    toml_cfg = RunConfig.from_dict({"labels_per_class": 4})  # replaces the default --labels 100
    assert toml_cfg.labels is None and toml_cfg.labels_per_class == 4
    with pytest.raises(UsageError, match="either --labels or --labels-per-class"):
        RunConfig.from_dict({"labels": 50, "labels_per_class": 4})
    with pytest.raises(UsageError, match="'all'"):
        config_from_args(parser.parse_args(["run", "--labels", "some"]))
