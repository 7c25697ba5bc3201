"""The Improved-GAN MNIST discriminator's trunk as an encoder (Salimans et al. 2016, the official
``train_mnist_feature_matching.py``): fully connected 1000-500-250-250-250 with ReLU, every layer weight-normalized
with a data-dependent initialization, Gaussian noise of ``noise`` added after each hidden layer while training.

Its features are the last hidden layer, before that layer's noise: what feature matching compares and what the
evaluators read. The scales of the hidden layers stay fixed after their initialization, as in the official code
(only the classifier's scale trains; see the ``sgan`` recipe for MNIST)."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sslkit import Component, UsageError, hookimpl


class WeightNormLinear(nn.Module):
    """``y = scale * (x @ v / |v|) + bias`` (weight normalization, Salimans & Kingma 2016). On the first batch it
    sees in training mode, ``scale`` and ``bias`` are set so that every output has zero mean and unit variance on
    that batch (the data-dependent initialization); a buffer remembers it, so a loaded model is not re-initialized."""

    def __init__(self, in_features: int, out_features: int, train_scale: bool = False) -> None:
        super().__init__()
        self.direction = nn.Parameter(torch.randn(out_features, in_features) * 0.05)
        self.scale = nn.Parameter(torch.ones(out_features), requires_grad=train_scale)
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.register_buffer("initialized", torch.tensor(False))
        self._checked = False  # mirrors the buffer without a device sync on every step

    def forward(self, x: Tensor) -> Tensor:
        # the outputs are divided by |v|, not the weights: a (batch, out) product instead of an (out, in) one,
        # and the gradient of the norm is one reduction (as the official code: dot(x, V) * g / |V|)
        out, norm = F.linear(x, self.direction), self.direction.norm(dim=1)
        if self.training and not self._checked:
            if not bool(self.initialized):
                self.data_dependent_init(out / norm)
            self._checked = True
        return torch.addcmul(self.bias, out, self.scale / norm)

    @torch.no_grad()
    def data_dependent_init(self, out: Tensor) -> None:
        mean, std = out.float().mean(0), out.float().std(0, unbiased=False)
        self.scale.copy_(1.0 / (std + 1e-8))
        self.bias.copy_(-mean / (std + 1e-8))
        self.initialized.fill_(True)

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._checked = False


class GaussianNoise(nn.Module):
    """Adds ``N(0, sigma^2)`` noise in training mode; the identity in eval mode."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(self, x: Tensor) -> Tensor:
        return x + self.sigma * torch.randn_like(x) if self.training and self.sigma else x


class WeightNormMLP(nn.Module):
    def __init__(
        self,
        in_chans: int,
        image_size: int,
        widths: tuple[int, ...] = (1000, 500, 250, 250, 250),
        noise: float = 0.5,
    ) -> None:
        super().__init__()
        if not widths or min(widths) < 1:
            raise UsageError(f"wn-mlp option widths must be positive layer sizes, got {list(widths)}")
        if noise < 0:
            raise UsageError(f"wn-mlp option noise must be >= 0, got {noise}")
        layers: list[nn.Module] = [nn.Flatten()]
        sizes = [in_chans * image_size**2, *widths]
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            layers += [WeightNormLinear(a, b), nn.ReLU()]
            if i < len(widths) - 1:
                layers.append(GaussianNoise(noise))
        self.net = nn.Sequential(*layers)
        self.feature_dim = widths[-1]

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


@hookimpl
def sslkit_encoders() -> list[Component]:
    return [
        Component(
            "wn-mlp",
            WeightNormMLP,
            "the Improved-GAN MNIST discriminator trunk: weight-normalized MLP 1000-500-250-250-250 with Gaussian "
            "noise; features: the last hidden layer",
        )
    ]
