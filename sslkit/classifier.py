"""A run's classifier: images in, class logits out, the one model that the head evaluator, fine-tuning,
``sslkit predict``, ``sslkit export`` and a run's ``predictions.csv`` share.

It is the run's encoder and a linear head over its features. The head comes from the method itself where the
method trains a classifier (fixmatch, sgan, supervised: their head, folded into one ``nn.Linear``), else from the
linear probe (its feature standardization folded into the weights)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sslkit.features import default_batch
from sslkit.interfaces import DataInfo


class Classifier(nn.Module):
    """uint8 images ``(N, C, H, W)`` (or floats in [0, 1]) -> class logits: the run's normalization, its
    encoder and a linear head."""

    def __init__(self, encoder: nn.Module, head: nn.Linear, info: DataInfo) -> None:
        super().__init__()
        self.encoder, self.head, self.info = encoder, head, info

    def forward(self, images: Tensor) -> Tensor:
        x = images.float().div(255) if images.dtype == torch.uint8 else images
        return self.head(self.encoder(self.info.normalize(x)))

    @torch.inference_mode()
    def logits(self, images: Tensor, batch_size: int | None = None) -> Tensor:
        """Class logits ``(N, classes)`` as float32 on the CPU, computed in batches in eval mode (default:
        :func:`sslkit.features.default_batch`)."""
        was = self.training
        self.eval()
        device = self.head.weight.device
        batch_size = batch_size or default_batch(device)
        out = [
            self(images[i : i + batch_size].to(device)).float().cpu()
            for i in range(0, len(images), batch_size)
        ]
        self.train(was)
        return torch.cat(out) if out else torch.empty(0, self.head.out_features)

    def probabilities(self, images: Tensor, batch_size: int | None = None) -> Tensor:
        """Class probabilities ``(N, classes)``, float32 on the CPU."""
        return self.logits(images, batch_size).softmax(1)


def linear_head(w: Tensor, b: Tensor, mean: Tensor, std: Tensor) -> nn.Linear:
    """A probe ``((f - mean) / std) @ w + b`` (``w``: ``(D, K)``) as one ``nn.Linear`` on raw features."""
    head = nn.Linear(w.shape[0], w.shape[1])
    std = std.double()
    with torch.no_grad():
        head.weight.copy_((w.double() / std.view(-1, 1)).T.float())
        head.bias.copy_((b.double() - (mean.double() / std) @ w.double()).float())
    return head


@torch.no_grad()
def fold_affine(module: nn.Module, in_features: int) -> nn.Linear:
    """An affine module (in eval mode: a linear layer, weight norm, dropout, noise that is off at test time) as
    one ``nn.Linear``, read off its outputs at zero and at the unit vectors and checked on random inputs."""
    was = module.training
    module.eval()
    param = next(module.parameters())
    basis = torch.cat([torch.zeros(1, in_features), torch.eye(in_features)]).to(param)
    out = module(basis).double()
    bias, weight = out[0], out[1:] - out[0]
    head = nn.Linear(in_features, out.shape[1])
    head.weight.copy_(weight.T.float())
    head.bias.copy_(bias.float())
    probe = torch.randn(8, in_features).to(param)
    expected = module(probe).double()
    module.train(was)
    if not torch.allclose(head.to(param)(probe).double(), expected, atol=1e-4 * (1 + expected.abs().max())):
        raise ValueError(f"{type(module).__name__} is not affine; a classifier head must be a linear map")
    return head.float().cpu()
