"""torchrun on CPU with gloo: two processes on this machine."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch
from ddp_worker import INFO, build, fixed_probs, fixed_views, freematch

from sslkit.interfaces import Batch
from sslkit.registry import load_registry

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(args: list[str], **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    port = str(_free_port())
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", port]
    return subprocess.Popen(
        cmd + args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw
    )


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _ok(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    return out


def test_gathered_negatives_and_freematch_means_equal_one_process_with_the_whole_batch(
    tmp_path: Path,
) -> None:
    batch = 16
    _ok(_torchrun([str(HERE / "ddp_worker.py"), str(tmp_path / "rank0.pt"), str(batch)]))
    two = torch.load(tmp_path / "rank0.pt", weights_only=True)

    pretext = build(load_registry(), INFO)
    v1, v2 = fixed_views(batch)
    pretext.views = lambda x: (v1, v2)
    pretext.losses(Batch(v1))["loss"].backward()
    assert torch.allclose(two["loss"], pretext.losses(Batch(v1))["loss"].detach(), atol=1e-6)
    for name, p in pretext.named_parameters():
        assert torch.allclose(two["grads"][name], p.grad, rtol=1e-4, atol=1e-6), name

    # FreeMatch's running means move by the whole step's batch, so rank 0 thresholds as one process would
    fixmatch = freematch(load_registry(), INFO)
    masks = [fixmatch.adaptive_pseudo_labels(probs)[1] for probs in fixed_probs(batch)]
    for name, value in two["means"].items():
        assert torch.allclose(value, getattr(fixmatch, name), atol=1e-7), name
    assert all(
        torch.equal(half, whole[: batch // 2]) for half, whole in zip(two["masks"], masks, strict=True)
    )


def test_two_process_runs_write_one_run_directory_and_resume_after_a_kill(tmp_path: Path) -> None:
    common = ["-m", "sslkit", "run", "--data", "digits", "--labels", "100", "--seed", "1"]
    out = _ok(_torchrun([*common, "--pretext", "simclr", "--epochs", "1", "--out", str(tmp_path / "a")]))
    (run_dir,) = (tmp_path / "a").iterdir()
    assert json.loads((run_dir / "results.json").read_text())["results"]["linear"]["accuracy"] > 0.3
    assert out.count("run directory:") == 1  # evaluated once, by rank 0

    killed = tmp_path / "b"
    proc = _torchrun([*common, "--epochs", "6", "--checkpoint-every", "0.2", "--out", str(killed)])
    deadline = time.monotonic() + 120
    while not list(killed.glob("*/checkpoint.pt")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    # torchrun starts each worker in its own session: kill them all, as a preemption would
    workers = _children(proc.pid)
    for pid in [proc.pid, *workers]:
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    (run_dir,) = killed.iterdir()
    assert not (run_dir / "results.json").exists(), "the run ended before the kill: make it longer"
    _ok(_torchrun(["-m", "sslkit", "run", "--resume", str(run_dir)]))
    epochs = [json.loads(x)["epoch"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4, 5, 6]
    assert (run_dir / "results.json").exists()


def test_gan_pretexts_refuse_torchrun_and_say_why(tmp_path: Path) -> None:
    proc = _torchrun(
        ["-m", "sslkit", "run", "--data", "digits", "--pretext", "dcgan", "--out", str(tmp_path)]
    )
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0
    assert "pretext DCGAN does not run under torchrun: its two backward passes" in out
    assert "run it as one process" in out


def test_each_rank_draws_its_own_augmentations_and_one_process_keeps_its_stream(monkeypatch) -> None:
    from sslkit.engine import loop
    from sslkit.engine.loop import Schedule, Trainer

    registry = load_registry()
    pretext = build(registry, INFO)
    pool = torch.zeros(64, 1, 28, 28, dtype=torch.uint8)
    schedule = Schedule(epochs=1, batch_size=16, lr=0.1, weight_decay=0.0, optimizer="sgd", warmup_epochs=0)

    def draws_after_trainer(rank: int, world: int) -> torch.Tensor:
        monkeypatch.setattr(loop.dist, "rank", lambda: rank)
        monkeypatch.setattr(loop.dist, "world_size", lambda: world)
        monkeypatch.setattr(loop.dist, "wrap", lambda model, *a, **k: model)
        torch.manual_seed(5)  # what every rank's global stream holds once the model is built
        Trainer(pretext, pool, None, schedule, torch.device("cpu"), seed=3, show_progress=False)
        return torch.rand(4)

    rank0, rank1 = draws_after_trainer(0, 2), draws_after_trainer(1, 2)
    assert not torch.equal(rank0, rank1)
    single = draws_after_trainer(0, 1)
    torch.manual_seed(5)
    assert torch.equal(single, torch.rand(4))  # a single process draws what it always drew
