"""Run by tests/test_distributed.py under torchrun: one SimCLR step through DistributedDataParallel on this
rank's half of a fixed batch, with fixed views, and FreeMatch's thresholds moved by three steps of this rank's half
of fixed pool probabilities; rank 0 saves the loss, the averaged gradients, the running means and its masks."""

from __future__ import annotations

import sys

import torch

from sslkit.engine import distributed as dist
from sslkit.interfaces import Batch, DataInfo
from sslkit.registry import load_registry

INFO = DataInfo("fixed", [str(i) for i in range(10)], 1, 28, (0.5,), (0.25,), flips=False)


def build(registry, info):
    torch.manual_seed(0)
    encoder = registry.build("encoder", "convnet", 1, 28, options={"width": 8, "batch_norm": False})
    return registry.build("pretext", "simclr", encoder, info, options={"hidden": 0, "temperature": 0.5})


def fixed_views(batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.rand(batch, 1, 28, 28, generator=gen), torch.rand(batch, 1, 28, 28, generator=gen)


FREEMATCH_MEANS = ("confidence", "class_confidence", "label_histogram")  # fixmatch's running-mean buffers


def freematch(registry, info):
    encoder = registry.build("encoder", "convnet", 1, 28, options={"width": 8})
    return registry.build(
        "pretext", "fixmatch", encoder, info, options={"threshold": "freematch", "graph": "none"}
    )


def fixed_probs(batch: int, steps: int = 3) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(2)
    return [(4 * torch.randn(batch, len(INFO.classes), generator=gen)).softmax(1) for _ in range(steps)]


def main(out: str, batch: int) -> None:
    torch.set_num_threads(1)
    dist.init(torch.device("cpu"))
    registry = load_registry()
    pretext = build(registry, INFO)
    v1, v2 = fixed_views(batch)
    part = slice(dist.rank() * batch // 2, (dist.rank() + 1) * batch // 2)
    pretext.views = lambda x: (v1[part], v2[part])  # the same views a single process sees, split by rank
    model = dist.wrap(pretext, torch.device("cpu"))
    loss = model(Batch(v1[part]))["loss"]
    loss.backward()
    fixmatch = freematch(registry, INFO)
    masks = [fixmatch.adaptive_pseudo_labels(probs[part])[1] for probs in fixed_probs(batch)]
    if dist.rank() == 0:
        grads = {n: p.grad for n, p in pretext.named_parameters() if p.grad is not None}
        means = {name: getattr(fixmatch, name) for name in FREEMATCH_MEANS}
        torch.save({"loss": loss.detach(), "grads": grads, "means": means, "masks": masks}, out)
    del model, loss  # DDP holds the process group: freed here, not by the interpreter's teardown (an abort)
    dist.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
