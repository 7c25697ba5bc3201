"""The spine: discovery through entry points, config layering, a real end-to-end run, the linear probe's maths."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sslkit.build import cpu_has_bfloat16
from sslkit.cli import main
from sslkit.config import RunConfig
from sslkit.errors import UsageError
from sslkit.registry import load_registry

ROOT = Path(__file__).resolve().parent.parent


def test_builtins_are_found_through_the_entry_point_group(registry) -> None:
    assert {"rotation"} <= set(registry.names("pretext"))
    assert {"convnet", "resnet18", "timm"} <= set(registry.names("encoder"))
    assert {"digits", "mnist", "fashion-mnist", "svhn"} <= set(registry.names("dataset"))
    assert "linear" in registry.names("evaluator")
    assert registry.get("pretext", "rotation").provider.distribution == "sslkit"


def test_core_never_imports_a_plugin_by_name() -> None:
    for path in (ROOT / "sslkit").rglob("*.py"):
        assert "sslkit_builtins" not in path.read_text(), f"{path} names the built-in plugin package"


def test_unknown_name_lists_the_available_ones_and_suggests(registry) -> None:
    with pytest.raises(
        Exception, match=r"unknown pretext 'rotatoin'; available: .*rotation.*did you mean 'rotation'"
    ):
        registry.get("pretext", "rotatoin")


def test_third_party_distribution_is_installed_discovered_run_and_removed(tmp_path, monkeypatch) -> None:
    """The example package in examples/sslkit-jigsaw, really installed (into a folder put on sys.path)."""
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(ROOT / "examples" / "sslkit-jigsaw"),
        ],
        check=True,
        capture_output=True,
    )
    monkeypatch.syspath_prepend(str(target))
    importlib.invalidate_caches()
    try:
        registry = load_registry()
        entry = registry.get("pretext", "jigsaw")
        assert (entry.provider.distribution, entry.provider.version) == ("sslkit-jigsaw", "0.1.0")
        code = main(
            [
                "run",
                "--pretext",
                "jigsaw",
                "--data",
                "digits",
                "--epochs",
                "1",
                "--out",
                str(tmp_path / "runs"),
            ]
        )
        assert code == 0
        (run_dir,) = (tmp_path / "runs").iterdir()
        assert json.loads((run_dir / "config.json").read_text())["config"]["pretext"] == "jigsaw"
    finally:
        sys.modules.pop("sslkit_jigsaw", None)
    monkeypatch.undo()
    importlib.invalidate_caches()
    assert "jigsaw" not in load_registry().names("pretext")


def test_jigsaw_tiles_move_as_the_permutation_says() -> None:
    sys.path.insert(0, str(ROOT / "examples" / "sslkit-jigsaw"))
    try:
        from sslkit_jigsaw import PERMUTATIONS, shuffle_tiles
    finally:
        sys.path.pop(0)
        sys.modules.pop("sslkit_jigsaw", None)
    image = torch.zeros(1, 1, 4, 4)
    for tile, (r, c) in enumerate([(0, 0), (0, 2), (2, 0), (2, 2)]):
        image[0, 0, r : r + 2, c : c + 2] = tile
    k = 5
    out = shuffle_tiles(image, torch.tensor([k]))
    for pos, (r, c) in enumerate([(0, 0), (0, 2), (2, 0), (2, 2)]):
        assert torch.all(out[0, 0, r : r + 2, c : c + 2] == PERMUTATIONS[k][pos])


def test_digits_quick_start_end_to_end(tmp_path, capsys) -> None:
    """The quick start as the README gives it: fixmatch by default, beating its own random initialization; its
    classifier scored at the end of the run and again by `sslkit eval`."""
    code = main(["run", "--data", "digits", "--out", str(tmp_path / "runs")])
    assert code == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    names = {p.name for p in run_dir.iterdir()}
    assert {"config.json", "metrics.jsonl", "checkpoint.pt", "encoder.safetensors", "results.json"} <= names
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data"]["labeled"] == 100 and config["versions"]["torch"]
    assert config["config"]["pretext"] == "fixmatch" and config["config"]["encoder"] == "convnet"
    assert config["training_precision"] == ("bfloat16" if cpu_has_bfloat16() else "float32")
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == config["schedule"]["epochs"]
    summary = json.loads((run_dir / "results.json").read_text())
    accuracy = summary["results"]["linear"]["accuracy"]
    random_init = summary["baselines"]["random_init"]["linear"]["accuracy"]
    assert accuracy > random_init + 0.05, (accuracy, random_init)
    # the core writes each evaluator's confusion matrix: a header of predicted classes, one row per true class
    header, *rows = (run_dir / "confusion-linear.csv").read_text().splitlines()
    assert header.split(",")[1:] == [str(c) for c in range(10)] and len(rows) == 10
    details = json.loads((run_dir / "eval-linear.json").read_text())
    assert [list(map(int, r.split(",")[1:])) for r in rows] == details["confusion_matrix"]
    assert details["artifacts"]["confusion_matrix"] == "confusion-linear.csv"
    out = capsys.readouterr().out
    assert "accuracy" in out and "random init" in out and "raw pixels" in out
    # the recipe's evaluators include fixmatch's own classifier, which `sslkit eval` rebuilds from the checkpoint
    assert config["config"]["eval"] == ["head", "linear"]
    head = summary["results"]["head"]["accuracy"]
    assert main(["eval", str(run_dir), "--eval", "head"]) == 0
    assert json.loads((run_dir / "results.json").read_text())["results"]["head"]["accuracy"] == head


def test_config_file_values_are_overridden_by_flags(tmp_path) -> None:
    from sslkit.cli import build_parser, config_from_args

    cfg_file = tmp_path / "run.toml"
    cfg_file.write_text(
        'data = "fashion-mnist"\nlabels = 50\nepochs = 3\n[pretext_options]\naugment = false\n'
    )
    args = build_parser().parse_args(
        [
            "run",
            "--config",
            str(cfg_file),
            "--epochs",
            "1",
            "--pretext-opt",
            "augment=true",
            "--eval-opt",
            "linear.folds=3",
        ]
    )
    cfg = config_from_args(args)
    assert (cfg.data, cfg.labels, cfg.epochs) == ("fashion-mnist", 50, 1)
    assert cfg.pretext_options == {"augment": True}
    assert cfg.eval_options == {"linear": {"folds": 3}}
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


def test_rotation_lowers_its_loss_on_real_fashion_mnist(fashion) -> None:
    from sslkit.engine.loop import Schedule, Trainer

    torch.manual_seed(0)
    registry = load_registry()
    encoder = registry.build("encoder", "convnet", 1, 28, options={"width": 16, "feature_dim": 128})
    pretext = registry.build("pretext", "rotation", encoder, fashion.info)
    pool = fashion.train.images[:1536]
    trainer = Trainer(
        pretext,
        pool,
        None,
        Schedule(2, 64, 0.05, 5e-4, "sgd", 0.1, 0),
        torch.device("cpu"),
        0,
        show_progress=False,
    )
    history = trainer.fit()
    assert history[1]["loss"] < history[0]["loss"] < np.log(4) + 0.05
    assert history[1]["accuracy"] > 0.4  # chance is 0.25


@pytest.mark.parametrize(
    "n, d", [(120, 8), (30, 200)]
)  # more features than samples: solved in the rows' span
def test_linear_probe_matches_scikit_learn(n: int, d: int) -> None:
    from sklearn.linear_model import LogisticRegression

    from sslkit.probe import fit_logistic

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    w, b = fit_logistic(x, y, 3, c=0.5, max_iter=1000)
    ref = LogisticRegression(C=0.5, tol=1e-12, max_iter=10_000).fit(x.numpy(), y.numpy())
    ours = torch.softmax(x @ w + b, 1).numpy()
    assert np.abs(ours - ref.predict_proba(x.numpy())).max() < 1e-4


def test_python_dash_m_sslkit_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sslkit", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "run" in out and "plugins" in out and "sslkit run --data digits" in out


def test_plugins_command_lists_kind_name_and_distribution(capsys) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "rotation" in out and "convnet" in out and "sslkit" in out


def test_epochs_zero_evaluates_the_encoder_as_built(tmp_path) -> None:
    """No pretraining (e.g. pretrained timm weights): even with every label used and so no unlabeled pool."""
    out = tmp_path / "runs"
    argv = ["run", "--data", "digits", "--labels", "all", "--epochs", "0", "--eval", "knn", "--out", str(out)]
    assert main(argv) == 0
    (run_dir,) = out.iterdir()
    assert not (run_dir / "metrics.jsonl").exists() and not (run_dir / "checkpoint.pt").exists()
    results = json.loads((run_dir / "results.json").read_text())
    assert (
        results["labeled"] == 1300 and results["results"]["knn"]["accuracy"] > 0.5
    )  # random convnet features


def test_convnet_stages_and_convs_reshape_it(registry) -> None:
    reference = registry.build("encoder", "convnet", 1, 28)  # 2 stages of 3 convs, pooled twice, flattened
    convs = [m for m in reference.trunk if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 32, 64, 64, 64] and reference.feature_dim == 64 * 7 * 7
    fixmatch = registry.build(
        "encoder", "convnet", 1, 28, options={"width": 16, "pool": "avg", "stages": 3, "convs": 2}
    )
    convs = [m for m in fixmatch.trunk if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 16, 32, 32, 64, 64]
    # average pooling reads the last stage's 7x7 map whole: no max-pool after it
    assert fixmatch.feature_map(torch.zeros(2, 1, 28, 28)).shape == (2, 64, 7, 7)
    assert fixmatch(torch.zeros(2, 1, 28, 28)).shape == (2, fixmatch.feature_dim) == (2, 64)
    with pytest.raises(UsageError, match="stages and convs"):
        registry.build("encoder", "convnet", 1, 8, options={"stages": 4})
