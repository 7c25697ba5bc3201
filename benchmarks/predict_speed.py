"""How fast a finished run labels new files: `sslkit predict` on N PNG files (decoding, the run's preprocessing,
the classifier; the whole command with its start-up), and the classifier alone on decoded images, PyTorch eager
against the exported ONNX model under onnxruntime, on the same CPU in the same process.

The files are the run's own test images (its data set's test split, through `sslkit.build.load_data`) written as
PNGs into a temporary folder, so the command's accuracy can be printed beside the run's test accuracy.

    python benchmarks/predict_speed.py runs/RUN_DIR --files 10000
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("--files", type=int, default=10_000)
    p.add_argument("--batch", type=int, default=512)
    args = p.parse_args()

    import onnxruntime
    import torch
    from PIL import Image

    from sslkit import build, load_run
    from sslkit.data.images import find_images, load_images
    from sslkit.export import export_onnx
    from sslkit.registry import load_registry

    run = load_run(args.run_dir)
    registry = load_registry()
    cfg, record = build.saved_config(args.run_dir, registry)
    # the record: a --select run's picks are reused, not chosen again
    test = build.load_data(registry, cfg, record).bundle.test
    n = min(args.files, len(test))
    work = Path(tempfile.mkdtemp(prefix="sslkit-predict-"))
    for i in range(n):
        array = test.images[i].permute(1, 2, 0).squeeze(-1).numpy()
        Image.fromarray(array).save(work / f"{i:05d}-{int(test.labels[i])}.png")

    command = [
        sys.executable,
        "-m",
        "sslkit",
        "predict",
        str(args.run_dir),
        str(work),
        "--out",
        str(work / "p.csv"),
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    rows = list(csv.DictReader((work / "p.csv").open()))
    right = sum(run.classes.index(r["class"]) == int(Path(r["path"]).stem.split("-")[1]) for r in rows)

    images, _ = load_images(find_images(work), run.info.image_size, run.info.mode, None)
    session = onnxruntime.InferenceSession(
        str(export_onnx(run.classifier, work / "model.onnx")), providers=["CPUExecutionProvider"]
    )
    batches = [images[i : i + args.batch] for i in range(0, len(images), args.batch)]
    sides = {
        "pytorch eager": lambda: [run.predict(b) for b in batches],
        "onnxruntime": lambda: [session.run(None, {"images": b.numpy()}) for b in batches],
    }
    rates = {}
    for name, fn in sides.items():
        fn()  # warm-up
        start = time.perf_counter()
        fn()
        rates[name] = len(images) / (time.perf_counter() - start)

    print(f"run {args.run_dir} ({run.info.name}, {run.info.image_size} px {run.info.mode}), {n:,} PNG files")
    print(
        f"sslkit predict, the whole command: {n / seconds:,.0f} files/s ({seconds:.1f} s), accuracy {right / n:.4f}"
    )
    print(
        f"classifier on decoded images, batch {args.batch}, torch threads {torch.get_num_threads()}: "
        + ", ".join(f"{k} {v:,.0f} images/s" for k, v in rates.items())
        + f"; onnxruntime / eager {rates['onnxruntime'] / rates['pytorch eager']:.2f}x"
    )
    print(f"reproduce: python benchmarks/predict_speed.py {args.run_dir} --files {args.files}")


if __name__ == "__main__":
    main()
