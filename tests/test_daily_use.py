"""Living with sslkit: the Python API, TensorBoard and CSV logs, `sslkit ls`, messages that say what is true."""

from __future__ import annotations

import csv
import importlib.machinery
import json
import os
import sys
import types
from pathlib import Path

import pytest
import torch

import sslkit
from sslkit import rundir
from sslkit.cli import main
from sslkit.registry import load_registry

SETTINGS = {
    "data": "digits",
    "epochs": 2,
    "pool_size": 512,
    "eval": ["linear"],
    "eval_options": {"linear": {"c_grid": [0.1, 1.0]}},
    "tsne_points": 0,
}


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> sslkit.RunResult:
    return sslkit.run(**SETTINGS, out=str(tmp_path_factory.mktemp("runs")), quiet=True)


def test_the_python_api_runs_what_the_command_line_runs(result: sslkit.RunResult) -> None:
    assert result.results["linear"]["accuracy"] > 0.5
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert saved["config"]["pretext"] == "fixmatch" and saved["config"]["epochs"] == 2
    # every option the run was built with, defaults included: a later change of a default shows between runs
    options = saved["options"]
    assert options["pretext"]["threshold"] == 0.95 and options["pretext"]["balance"] is True
    assert options["eval"]["linear"]["c_grid"] == [0.1, 1.0] and "data" in options and "encoder" in options
    assert set(result.baselines) == {"random_init", "pixels"}


def test_load_run_gives_the_features_the_run_evaluated(result: sslkit.RunResult) -> None:
    trained = sslkit.load_run(result.run_dir)
    assert not trained.encoder.training and trained.feature_dim == trained.encoder.feature_dim
    registry = load_registry()
    bundle = registry.build("dataset", "digits", Path("."), False)
    test = trained.features(bundle.test.images)
    assert test.shape == (len(bundle.test), trained.feature_dim) and test.dtype == torch.float32
    floats = trained.features(bundle.test.images[:10].float() / 255)  # float images in [0, 1] work too
    torch.testing.assert_close(floats, test[:10])
    # the run's own linear probe, refitted on these features, scores exactly what the run reported
    budget = sslkit.data.split_budget(bundle.train.labels, 100, 0)
    labeled = bundle.train.subset(budget.labeled)
    features = {"labeled": trained.features(labeled.images), "test": test}
    ctx = sslkit.EvalContext(
        trained.encoder,
        None,
        trained.info,
        labeled,
        bundle.test,
        features.__getitem__,
        torch.device("cpu"),
        None,
        0,
    )
    probe = registry.build("evaluator", "linear", options={"c_grid": [0.1, 1.0]})
    assert probe.evaluate(ctx).metrics["accuracy"] == result.results["linear"]["accuracy"]
    assert isinstance(sslkit.load_encoder(result.run_dir), torch.nn.Module)


def test_every_run_logs_tensorboard_events_and_a_csv_of_its_steps(result: sslkit.RunResult) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with (result.run_dir / "steps.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == list(range(1, len(rows) + 1)) and len(
        rows
    ) == 8  # 2 epochs x 4 steps
    assert {"loss", "supervised", "unlabeled", "mask", "lr", "images_per_s"} <= set(rows[0])
    events = EventAccumulator(str(result.run_dir / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"step/loss", "step/lr", "step/images_per_s", "epoch/loss", "eval/linear/accuracy"} <= tags
    assert len(events.Scalars("step/loss")) == 8
    (final,) = events.Scalars("eval/linear/accuracy")
    assert final.value == pytest.approx(result.results["linear"]["accuracy"])


def test_ls_lists_runs_newest_first_with_their_status(
    result: sslkit.RunResult, tmp_path: Path, capsys
) -> None:
    runs = result.run_dir.parent
    killed = runs / "20000101-000000-killed"
    running = runs / "20000101-000001-running"
    for path in (killed, running):
        path.mkdir(exist_ok=True)
        (path / "config.json").write_text(
            json.dumps({"config": {"data": "mnist", "pretext": "simclr", "seed": 1}})
        )
    (running / "run.lock").write_text(str(os.getppid()))  # held by a live process
    os.utime(killed / "config.json", (1, 1))  # the oldest
    os.utime(running / "config.json", (2, 2))
    assert main(["ls", str(runs)]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if "killed" in ln or "running" in ln or "finished" in ln]
    assert "finished" in lines[0] and result.run_dir.name in lines[0]
    assert "killed" in lines[-1] and "20000101-000000-killed" in lines[-1]
    assert any("running" in ln for ln in lines)
    assert main(["ls", str(tmp_path / "nothing")]) == 2


def test_resuming_a_finished_run_does_nothing_and_says_so(result: sslkit.RunResult, capsys) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in result.run_dir.iterdir() if p.is_file()}
    assert main(["run", "--resume", str(result.run_dir)]) == 0
    assert "has finished" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in result.run_dir.iterdir() if p.is_file()} == before
    page = result.run_dir / "report.html"
    kept = page.read_text()
    page.unlink()  # killed while the page was being written: resuming writes it
    assert main(["run", "--resume", str(result.run_dir)]) == 0
    assert (
        page.exists() and len(page.read_text()) > 0.5 * len(kept) and result.run_dir.name in page.read_text()
    )


def test_a_run_config_json_can_be_given_to_config(result: sslkit.RunResult, tmp_path: Path) -> None:
    argv = ["run", "--config", str(result.run_dir / "config.json"), "--epochs", "0", "--out", str(tmp_path)]
    assert main(argv) == 0
    (again,) = (p for p in tmp_path.iterdir() if (p / "config.json").exists())
    config = rundir.read_run_config(again)["config"]
    assert config["epochs"] == 0 and config["pool_size"] == 512 and config["eval"] == ["linear"]


def test_interrupting_before_any_checkpoint_names_the_resume_that_starts_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from sslkit.engine.loop import Trainer

    def interrupt(self):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "fit", interrupt)
        assert main(["run", "--data", "digits", "--epochs", "1", "--out", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    (run_dir,) = (p for p in tmp_path.iterdir() if (p / "config.json").exists())
    assert f"`sslkit run --resume {run_dir}` continues from the start (no checkpoint was written yet)" in err
    (run_dir / "metrics.jsonl").write_text('{"epoch": 1, "loss": 9.0}\n')  # logged just before the kill
    assert main(["run", "--resume", str(run_dir)]) == 0 and (run_dir / "results.json").exists()
    epochs = [json.loads(x)["epoch"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1]


def test_budgets_below_one_label_per_class_are_refused(tmp_path: Path, capsys) -> None:
    assert main(["run", "--data", "digits", "--labels", "5", "--out", str(tmp_path)]) == 2
    assert (
        "would leave 5 of the 10 classes without a single label; use --labels 10" in capsys.readouterr().err
    )


def test_did_you_mean_for_flags_settings_and_names(tmp_path: Path, capsys) -> None:
    assert main(["run", "--pretxt", "rotation"]) == 2
    assert "did you mean --pretext?" in capsys.readouterr().err
    config = tmp_path / "c.toml"
    config.write_text("epoch = 3\n")
    assert main(["run", "--config", str(config)]) == 2
    assert "unknown setting 'epoch' (did you mean 'epochs'?)" in capsys.readouterr().err
    assert main(["run", "--pretext", "SimCLR"]) == 2
    assert "did you mean 'simclr'?" in capsys.readouterr().err
    assert main(["bench", str(tmp_path / "nosuch.toml")]) == 2
    assert "--config" not in capsys.readouterr().err


def test_plugins_name_shows_a_pretexts_recipe(capsys) -> None:
    assert main(["plugins", "fixmatch"]) == 0
    out = capsys.readouterr().out
    assert "threshold" in out and "lr = 0.03" in out and "labeled split and the unlabeled pool" in out
    assert "eval = ['head', 'linear']" in out


class FakeWandb(types.ModuleType):
    """Records what sslkit sends to Weights & Biases."""

    def __init__(self) -> None:
        super().__init__("wandb")
        self.__spec__ = importlib.machinery.ModuleSpec("wandb", None)
        self.logged: list[dict] = []
        self.inits: list[dict] = []

    def init(self, **kwargs):
        self.inits.append(kwargs)
        return types.SimpleNamespace(log=lambda values, step: self.logged.append(values), finish=lambda: None)


def test_wandb_gets_the_same_scalars_when_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    argv = [
        "run",
        "--data",
        "digits",
        "--epochs",
        "1",
        "--pool-size",
        "256",
        "--no-baselines",
        "--tsne-points",
        "0",
    ]
    argv += ["--eval-opt", "linear.c_grid=[1.0]", "--wandb", "my-project", "--out", str(tmp_path)]
    monkeypatch.setitem(sys.modules, "wandb", None)  # not installed
    assert main(argv) == 2
    assert "pip install wandb" in capsys.readouterr().err
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    assert main(argv) == 0
    assert fake.inits[0]["project"] == "my-project" and fake.inits[0]["config"]["wandb"] == "my-project"
    tags = {tag for values in fake.logged for tag in values}
    assert {"step/loss", "step/lr", "epoch/loss", "eval/linear/accuracy"} <= tags
    assert len(fake.inits) == 2  # one session for training, one for all the final scores


def test_run_and_eval_choose_the_same_precision_explicitly() -> None:
    from sslkit import build
    from sslkit.config import RunConfig

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert build.amp_dtype(RunConfig(), cuda) == torch.bfloat16  # run and eval both ask this one function
    assert build.amp_dtype(RunConfig(amp=False), cuda) is None and build.amp_dtype(RunConfig(), cpu) is None
    # CPU training steps run in bfloat16 where the CPU multiplies it natively, and never under --no-amp
    native = torch.bfloat16 if build.cpu_has_bfloat16() else None
    assert build.amp_dtype(RunConfig(), cpu, training=True) == native
    assert build.amp_dtype(RunConfig(amp=False), cpu, training=True) is None
    ctx = sslkit.EvalContext(None, None, None, None, None, None, cpu, None, 0, torch.bfloat16)
    assert ctx.autocast().fast_dtype == torch.bfloat16 and not sslkit.autocast(cpu, None)._enabled
