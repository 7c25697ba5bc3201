"""SimCLR (Chen et al. 2020): two augmented views of every image; a projection head; NT-Xent pulls each view
towards its partner and away from every other view in the (global) batch.

Both views are made for the whole batch at once on the training device (:func:`sslkit.augment.simclr_view`).
Under torchrun the projections are gathered from every rank with their gradient, so negatives are global."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sslkit import (
    Batch,
    Component,
    DataInfo,
    Pretext,
    UsageError,
    augment,
    gather_with_grad,
    hookimpl,
    mlp_head,
)


def nt_xent(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """Normalized-temperature cross-entropy over the ``2N`` views of ``N`` pairs.

    With ``u`` the L2-normalized rows of ``cat(z1, z2)`` and ``s_ij = u_i . u_j / temperature``, view ``i``'s
    positive ``p(i)`` is its partner (``i +- N``) and the loss is
    ``mean_i [ -s_i,p(i) + log sum_{j != i} exp(s_ij) ]``: the other ``2N - 2`` views are its negatives."""
    n = len(z1)
    u = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = u @ u.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=sim.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(sim.device)
    return F.cross_entropy(sim, target)


class SimCLR(Pretext):
    defaults = {
        "epochs": 2,  # ~200 pool images/s on 2 CPU threads: 2 epochs of 60k in ~10 min
        "batch_size": 256,
        "lr": 2e-3,
        "weight_decay": 1e-4,
        "optimizer": "adamw",
        "warmup_epochs": 0.5,
    }

    def __init__(
        self,
        encoder: nn.Module,
        info: DataInfo,
        temperature: float = 0.5,
        hidden: int = 512,
        out_dim: int = 128,
        crop_min: float = 0.2,
        blur: bool = False,
    ) -> None:
        super().__init__(encoder, info)
        if temperature <= 0:
            raise UsageError(f"simclr option temperature must be positive (e.g. 0.5), got {temperature}")
        if hidden < 0 or out_dim < 1:
            raise UsageError(f"simclr options need hidden >= 0 and out_dim >= 1, got {hidden} and {out_dim}")
        if not 0 < crop_min <= 1:
            raise UsageError(f"simclr option crop_min must be in (0, 1] (e.g. 0.2), got {crop_min}")
        self.temperature, self.crop_min, self.blur = temperature, crop_min, blur
        self.projector = mlp_head(encoder.feature_dim, hidden, out_dim)

    def views(self, x: Tensor) -> tuple[Tensor, Tensor]:
        def view() -> Tensor:
            return augment.simclr_view(
                x, flip=self.info.flips, blur=self.blur, crop_scale=(self.crop_min, 1.0)
            )

        return view(), view()

    def losses(self, batch: Batch) -> dict[str, Tensor]:
        v1, v2 = self.views(batch.images)
        # one encoder pass per view, as lightly and solo-learn do: on a CPU two half batches run faster than one
        # (smaller working set), and batch norm normalizes each view's batch on its own
        z1, z2 = (self.projector(self.encoder(self.info.normalize(v))) for v in (v1, v2))
        z1, z2 = gather_with_grad(z1), gather_with_grad(z2)
        loss = nt_xent(z1, z2, self.temperature)
        with torch.no_grad():  # share of views whose nearest other view is their partner
            u = F.normalize(torch.cat([z1, z2]).float(), dim=1)
            sim = (u @ u.T).fill_diagonal_(-2)
            n = len(z1)
            partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(sim.device)
            accuracy = (sim.argmax(1) == partner).float().mean()
        return {"loss": loss, "accuracy": accuracy}


@hookimpl
def sslkit_pretexts() -> list[Component]:
    return [
        Component(
            "simclr",
            SimCLR,
            "SimCLR: contrast two augmented views of each image (NT-Xent) through a projection head",
        )
    ]
