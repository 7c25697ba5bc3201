"""How soon a run on an image folder has its data: the imports and the registry, then ``build.load_data`` (the
listing, a ``stat`` of every file for the cache key, the cache read; or the decoding on a first run).

    python benchmarks/folder_start.py FOLDER [--image-size 28]   # run it twice: the second is the cached start
"""

from __future__ import annotations

import argparse
import time

start = time.perf_counter()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder")
    p.add_argument("--image-size", type=int, default=28)
    args = p.parse_args()

    from sslkit.build import load_data, resolve
    from sslkit.config import RunConfig
    from sslkit.registry import load_registry

    registry = load_registry()
    options = {"path": args.folder, "image_size": args.image_size}
    cfg = resolve(
        registry, RunConfig.from_dict({"data": "imagefolder", "data_options": options}, "benchmark")
    )
    ready = time.perf_counter()
    data = load_data(registry, cfg)
    done = time.perf_counter()
    print(
        f"imports and registry {ready - start:.2f} s, load_data {done - ready:.2f} s "
        f"({len(data.labeled):,} labeled, {len(data.pool):,} unlabeled, {len(data.bundle.test):,} test images); "
        f"{done - start:.2f} s in all"
    )
    print(f"reproduce: python benchmarks/folder_start.py {args.folder} --image-size {args.image_size}")


if __name__ == "__main__":
    main()
