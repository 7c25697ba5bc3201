"""Frozen features: one batched, no-grad pass per split, shared by every frozen-feature evaluator."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sslkit.errors import UsageError
from sslkit.interfaces import DataInfo, Split


def default_batch(device: torch.device) -> int:
    """Images per forward pass: on a CPU, batches whose activations stay in cache (the MNIST convnet's features
    of 10,000 digits on 2 threads of machine E: 2,700 images/s in batches of 1,024, 5,570 in batches of 256)."""
    return 256 if device.type == "cpu" else 1024


@torch.inference_mode()
def extract_features(
    encoder: nn.Module, images: Tensor, info: DataInfo, device: torch.device, batch_size: int | None = None
) -> Tensor:
    """Encoder features of ``images`` (uint8, or float in [0, 1]) in eval mode, as float32 on the CPU."""
    batch_size = batch_size or default_batch(device)
    was_training = encoder.training
    encoder.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device, non_blocking=True)
        x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
        out.append(encoder(info.normalize(x)).float().cpu())
    encoder.train(was_training)
    dim = getattr(encoder, "feature_dim", 0)
    return torch.cat(out) if out else torch.empty(0, dim)


class FeatureCache:
    """``cache("labeled")`` / ``cache("test")``: features computed on first use, then reused."""

    def __init__(
        self, encoder: nn.Module, splits: dict[str, Split], info: DataInfo, device: torch.device
    ) -> None:
        self.encoder, self.splits, self.info, self.device = encoder, splits, info, device
        self._cache: dict[str, Tensor] = {}

    def __call__(self, split: str) -> Tensor:
        if split not in self._cache:
            features = extract_features(self.encoder, self.splits[split].images, self.info, self.device)
            bad = int((~torch.isfinite(features)).any(1).sum())
            if bad:  # faiss and the probes would silently score garbage (faiss returns index -1 for NaN)
                raise UsageError(
                    f"the encoder's features of {bad} of {len(features)} {split} images are NaN or infinite; "
                    "the encoder is broken or its training diverged (see metrics.jsonl): retrain it, e.g. with "
                    "a lower --lr"
                )
            self._cache[split] = features
        return self._cache[split]
