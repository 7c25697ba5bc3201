"""``sslkit bench``: a tiny real suite on the bundled digits (rotation, 1 epoch, 2 seeds, linear probe)."""

from __future__ import annotations

import csv
import json
import shutil
import statistics
import time
from pathlib import Path

import pytest

from sslkit.bench import load_suite
from sslkit.cli import main

TINY = """
name = "tiny"
datasets = ["digits"]
labels = [100]
seeds = [0, 1]

[defaults]
epochs = 1
pool_size = 600
device = "cpu"
eval = ["linear"]
eval_options = { linear = { c_grid = [1.0] } }

[methods.rotation]
pretext = "rotation"
reference = 0.77
"""
CELLS = ["rotation-digits-100-s0", "rotation-digits-100-s1"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("bench")
    suite = root / "tiny.toml"
    suite.write_text(TINY)
    assert main(["bench", str(suite), "--out", str(root / "out")]) == 0
    return suite, root / "out"


def copy_out(finished: tuple[Path, Path], tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(finished[1], out)
    return out


def test_suite_writes_cells_and_mean_std(finished: tuple[Path, Path]) -> None:
    _, out = finished
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == CELLS
    accs = [
        json.loads((out / c / "results.json").read_text())["results"]["linear"]["accuracy"] for c in CELLS
    ]
    for c, seed in zip(CELLS, (0, 1)):
        record = json.loads((out / c / "config.json").read_text())
        assert record["config"]["seed"] == seed
        assert record["data"]["pool"] == 600  # pool_size: a subset of the 1,200 unlabeled digits
    with (out / "results.csv").open() as fh:
        rows = {(r["evaluator"], r["metric"]): r for r in csv.DictReader(fh)}
    row = rows[("linear", "accuracy")]
    assert float(row["mean"]) == pytest.approx((accs[0] + accs[1]) / 2)
    assert float(row["std"]) == pytest.approx(abs(accs[0] - accs[1]) / 2**0.5)  # sample std of two values
    assert row["n"] == "2" and float(row["reference"]) == 0.77
    assert ("linear", "train_accuracy") in rows
    summary = json.loads((out / "results.json").read_text())
    assert [c["cell"] for c in summary["cells"]] == CELLS
    assert all(c["status"] == "done" and c["wall_seconds"] > 0 for c in summary["cells"])
    (acc,) = [r for r in summary["summary"] if r["metric"] == "accuracy"]
    assert acc["values"] == accs and acc["std"] == pytest.approx(statistics.stdev(accs))


def test_second_invocation_skips_finished_cells(
    finished: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = copy_out(finished, tmp_path)
    stamps = {c: (out / c / "results.json").stat().st_mtime_ns for c in CELLS}
    t0 = time.perf_counter()
    assert main(["bench", str(finished[0]), "--out", str(out)]) == 0
    assert time.perf_counter() - t0 < 10
    err = capsys.readouterr().err
    assert all(f"skip {c}" in err for c in CELLS) and "0 to run" in err
    assert {c: (out / c / "results.json").stat().st_mtime_ns for c in CELLS} == stamps


def test_killed_cell_is_resumed(
    finished: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = copy_out(finished, tmp_path)
    killed = out / CELLS[1]
    config = (killed / "config.json").read_text()
    for name in ("results.json", "bench.json", "report.html"):
        (killed / name).unlink()
    assert main(["bench", str(finished[0]), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"skip {CELLS[0]}" in err and f"resume {CELLS[1]}" in err
    assert (killed / "results.json").exists() and (killed / "report.html").exists()
    assert (killed / "config.json").read_text() == config  # the same run continued, not a new one
    assert len((killed / "metrics.jsonl").read_text().splitlines()) == 1  # its finished epoch was not redone


def test_parallel_jobs_run_cells_in_subprocesses(finished: tuple[Path, Path], tmp_path: Path) -> None:
    out = copy_out(finished, tmp_path)
    (out / CELLS[0] / "results.json").unlink()  # killed after training: the subprocess only evaluates
    assert main(["bench", str(finished[0]), "--out", str(out), "--jobs", "2"]) == 0
    assert (out / CELLS[0] / "results.json").exists()
    assert "resumed at epoch" in (out / CELLS[0] / "bench.log").read_text()
    assert json.loads((out / CELLS[0] / "bench.json").read_text())["threads"] >= 1


def test_bad_suites_fail_before_any_cell_runs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cases = {
        "typo.toml": (
            TINY.replace('pretext = "rotation"', 'pretext = "rotatoin"'),
            "did you mean 'rotation'",
        ),
        "grid.toml": (
            TINY.replace('pretext = "rotation"', 'pretext = "rotation"\nseed = 3'),
            "set by the grid",
        ),
        "key.toml": ("seed = [0]\n" + TINY, "unknown key(s) seed"),
        "setting.toml": (TINY.replace("epochs = 1", "epochz = 1"), "unknown setting 'epochz'"),
        "labels.toml": (TINY.replace("labels = [100]", "labels = [0]"), "must be a positive integer"),
        "twice.toml": (TINY.replace("seeds = [0, 1]", "seeds = [0, 1, 1]"), "two cells are named"),
        "evaltypo.toml": (
            TINY.replace("linear = { c_grid", "linaer = { c_grid"),
            "eval_options for linaer, which no cell evaluates",
        ),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        assert main(["bench", str(tmp_path / name), "--out", str(tmp_path / "out")]) == 2, name
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (name, err)
    assert not (tmp_path / "out").exists()
    (tmp_path / "ok.toml").write_text(TINY)
    assert main(["bench", str(tmp_path / "ok.toml"), "--only", "simclr"]) == 2
    assert "matches no cell" in capsys.readouterr().err


def test_eval_options_merge_per_evaluator_and_follow_eval(tmp_path: Path) -> None:
    text = TINY.replace(
        "eval_options = { linear = { c_grid = [1.0] } }",
        "eval_options = { linear = { c_grid = [1.0] }, finetune = { steps = 5 } }",
    )
    text += '\n[methods.tuned]\npretext = "rotation"\neval = ["linear", "finetune"]\n'
    text += "eval_options = { linear = { folds = 3 } }\n"
    (tmp_path / "s.toml").write_text(text)
    cells = {c.method: c.cfg for c in load_suite(tmp_path / "s.toml").cells}
    assert cells["rotation"].eval_options == {"linear": {"c_grid": [1.0]}}  # finetune is not run there
    assert cells["tuned"].eval_options == {"linear": {"folds": 3}, "finetune": {"steps": 5}}
    (tmp_path / "h.toml").write_text(
        text.replace("eval_options = { linear = { folds", "eval-options = { linear = { folds")
    )
    hyphen = {c.method: c.cfg for c in load_suite(tmp_path / "h.toml").cells}
    assert hyphen["tuned"].eval_options == cells["tuned"].eval_options  # spelled as sslkit run's flag


def test_only_prints_its_cells_but_the_suites_files_keep_every_cell(
    finished: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = copy_out(finished, tmp_path)
    assert main(["bench", str(finished[0]), "--out", str(out), "--only", "*-s0"]) == 0
    summary = json.loads((out / "results.json").read_text())
    assert [c["cell"] for c in summary["cells"]] == CELLS
    (acc,) = [r for r in summary["summary"] if r["metric"] == "accuracy"]
    assert acc["n"] == 2


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parent.parent / "benchmarks").glob("*.toml")), ids=lambda p: p.stem
)
def test_shipped_suites_parse(path: Path) -> None:
    suite = load_suite(path)
    assert suite.name == path.stem and suite.cells
    assert len({c.name for c in suite.cells}) == len(suite.cells)
