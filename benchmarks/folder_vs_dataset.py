"""A data set written out as a person's folder of image files against the same data set read by its own loader:
does `sslkit run --data imagefolder` reach what `--data mnist` reaches on the same labels, do the pool's
predictions match the hidden truth, and does `sslkit predict` on the folder's test/ agree with the run's own test
accuracy? Also times `sslkit predict` on the test files and the exported ONNX model under onnxruntime against
PyTorch eager.

The folder: the run's own label draw (``--labels``, ``--seed``: the labeled images `sslkit run --data D` would
pick) as PNG files in ``train/<class>/``, every other training image in ``unlabeled/`` (PNG and JPEG, quality 95,
alternating, 1,000 per sub-folder), the test split as PNGs in ``test/<class>/``. Both runs use sslkit's defaults
(fixmatch); the folder's run finds every label the folder gives and its default recipe, told only what a person
knows of their images: ``flips=false`` where the data set's images must not be mirrored (digits).

    python benchmarks/folder_vs_dataset.py --data mnist --seed 0
    python benchmarks/folder_vs_dataset.py --data fashion-mnist --seed 0 --keep /tmp/fashion-folder
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_folder(data: str, labels: int, seed: int, folder: Path) -> tuple[dict[str, str], bool]:
    """Write the folder; returns each unlabeled file's (relative path) hidden class name, and whether the data
    set's images may be flipped left to right (what a person knows of their own images: not digits)."""
    from PIL import Image

    from sslkit.build import load_data
    from sslkit.config import RunConfig
    from sslkit.registry import load_registry

    cfg = RunConfig.from_dict({"data": data, "labels": labels, "seed": seed, "download": False}, "benchmark")
    loaded = load_data(load_registry(), cfg)
    bundle = loaded.bundle
    names = [c.replace("/", "-") for c in bundle.info.classes]
    pool = {int(n[6:-1]) for n in loaded.pool_names}  # pool names are train[i]
    truth: dict[str, str] = {}
    images, targets = bundle.train.images[:, 0].numpy(), bundle.train.labels.tolist()
    for i, (image, y) in enumerate(zip(images, targets)):
        if i not in pool:
            path = folder / "train" / names[y] / f"{i:05d}.png"
        else:
            rel = f"unlabeled/{i // 1000:02d}/{i:05d}.{'png' if i % 2 else 'jpg'}"
            truth[rel] = names[y]
            path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path, quality=95)
    for i, (image, y) in enumerate(zip(bundle.test.images[:, 0].numpy(), bundle.test.labels.tolist())):
        path = folder / "test" / names[y] / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
    return truth, bundle.info.flips


def run(argv: list[str], out: Path) -> tuple[Path, float]:
    """``sslkit run ARGV --out OUT``: its run directory and wall time."""
    command = [sys.executable, "-m", "sslkit", "run", *argv, "--out", str(out), "--tsne-points", "0"]
    print("+", shlex.join(command[2:]), flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True)
    (run_dir,) = sorted(out.iterdir())[-1:]
    return run_dir, time.perf_counter() - start


def pool_accuracy(run_dir: Path, truth: dict[str, str]) -> float:
    """The share of the run's pool predictions that name the hidden class."""
    rows = list(csv.DictReader((run_dir / "predictions.csv").open()))
    return sum(row["class"].replace("/", "-") == truth[row["path"]] for row in rows) / len(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="mnist")
    p.add_argument("--labels", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", type=Path, help="write the folder and runs here instead of a temporary folder")
    p.add_argument("--skip-dataset-run", action="store_true", help="only the folder's run")
    p.add_argument(
        "--run-args",
        default="",
        help="more `sslkit run` arguments for both runs, e.g. a shorter schedule: "
        "'--epochs 2 --no-pretrain --pretext-opt graph=pixels' (both runs then train the same recipe)",
    )
    args = p.parse_args()
    extra = shlex.split(args.run_args)

    from sslkit import load_run
    from sslkit.data.images import load_images
    from sslkit.export import export_onnx

    work = args.keep or Path(tempfile.mkdtemp(prefix="sslkit-folder-"))
    folder = work / f"{args.data}-folder"
    start = time.perf_counter()
    truth, flips = write_folder(args.data, args.labels, args.seed, folder)
    print(f"wrote {folder}: {len(truth)} unlabeled files ({time.perf_counter() - start:.0f} s)", flush=True)

    rows = []
    if not args.skip_dataset_run:
        run_dir, seconds = run(
            ["--data", args.data, "--labels", str(args.labels), "--seed", str(args.seed), *extra],
            work / "runs",
        )
        head = json.loads((run_dir / "results.json").read_text())["results"]["head"]["accuracy"]
        rows.append((f"--data {args.data}", head, None, seconds))
    folder_args = ["--data", "imagefolder", "--data-opt", f"path={folder}", "--data-opt", "image_size=28"]
    folder_args += [] if flips else ["--data-opt", "flips=false"]
    run_dir, seconds = run([*folder_args, "--seed", str(args.seed), *extra], work / "folder-runs")
    result = json.loads((run_dir / "results.json").read_text())["results"]["head"]["accuracy"]
    rows.append(("--data imagefolder", result, pool_accuracy(run_dir, truth), seconds))

    # sslkit predict on the folder's test/ against the folder's own labels, and its speed
    files = sorted((folder / "test").rglob("*.png"))
    command = [
        sys.executable,
        "-m",
        "sslkit",
        "predict",
        str(run_dir),
        str(folder / "test"),
        "--out",
        str(work / "test.csv"),
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    predict_seconds = time.perf_counter() - start
    predicted = list(csv.DictReader((work / "test.csv").open()))
    agree = sum(Path(r["path"]).parent.name == r["class"].replace("/", "-") for r in predicted) / len(
        predicted
    )

    # the ONNX model against PyTorch eager on the same images, one thread budget
    trained = load_run(run_dir)
    batch, _ = load_images(files[:4096], trained.info.image_size, trained.info.mode, None)
    path = export_onnx(trained.classifier, work / "model.onnx")
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    timings = {}
    for name, fn in {
        "pytorch eager": lambda: trained.predict(batch, batch_size=512),
        "onnxruntime": lambda: [
            session.run(None, {"images": batch[i : i + 512].numpy()}) for i in range(0, len(batch), 512)
        ],
    }.items():
        fn()
        start = time.perf_counter()
        fn()
        timings[name] = len(batch) / (time.perf_counter() - start)

    print(f"\n{args.data}, {args.labels} labels, seed {args.seed}:")
    print(f"{'run':<22} {'test (head)':>11} {'pool predictions':>17} {'wall':>8}")
    for name, test, pool, seconds in rows:
        print(f"{name:<22} {test:>11.4f} {'' if pool is None else f'{pool:.4f}':>17} {seconds:>7.0f}s")
    print(
        f"sslkit predict on test/ ({len(predicted)} files): accuracy {agree:.4f} (the run's own: {result:.4f}), "
        f"{len(predicted) / predict_seconds:,.0f} files/s including start-up ({predict_seconds:.1f} s)"
    )
    print(
        "classifier images/s on 4,096 test images: "
        + ", ".join(f"{k} {v:,.0f}" for k, v in timings.items())
        + f" (onnxruntime / eager {timings['onnxruntime'] / timings['pytorch eager']:.2f}x)"
    )
    more = f" --run-args {shlex.quote(args.run_args)}" if args.run_args else ""
    print(
        f"reproduce: python benchmarks/folder_vs_dataset.py --data {args.data} --labels {args.labels} "
        f"--seed {args.seed}{more}"
    )


if __name__ == "__main__":
    main()
