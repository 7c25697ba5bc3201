"""FixMatch (Sohn et al. 2020): the labeled split and the unlabeled pool trained together, with consistency.

Each step takes ``mu`` pool images per labeled image. The prediction on a weak view of a pool image (a shift, and a
flip where the data allows it), taken without gradient, becomes its pseudo-label where its confidence reaches
``threshold``; the strong view (RandAugment + cutout) is trained to predict it. Loss: supervised cross-entropy on
the labeled batch plus ``lambda_u`` times the masked cross-entropy of the strong views. All three batches go
through the network together, so batch norm sees labeled and pool images alike.

``threshold="freematch"`` replaces the fixed threshold with FreeMatch's (Wang et al., ICLR 2023): each class's
threshold follows the running mean confidence on the pool, scaled by how much of the pool's probability that class
gets, so a class the network under-predicts keeps its pseudo-labels; its fairness term
(:func:`fairness_loss`) adds a pull towards predicting every class.

What the run saves and evaluates is an exponential moving average of the weights (batch-norm statistics copied):
``self.encoder`` is that average, ``self.student`` the network the optimizer trains. ``align=true`` adds
ReMixMatch's distribution alignment (pseudo-label probabilities rescaled by the classes' assumed shares of the pool,
:func:`class_shares`, over the running mean of the predictions).

``balance=true`` (the default) does not take the labeled set's class counts for the pool's: each class weighs the
same in the supervised loss (weights ``n / (classes * count)``) and in the graph prior's class masses (and in
``align``'s target). Labels a selector chose say which images were typical, not how common each class is: on
Fashion-MNIST, 100 labels chosen by ``--select auto`` (6 T-shirts, 13-15 shirts a draw) trained with the counts
over-called shirts 1.5-2x and reached 0.786 (draws 0, 1); with balance 0.811 on those picks, 0.827 on draw 3; MNIST's
chosen and random picks unchanged (docs/benchmarks.md#which-images-to-label). Balanced labels are unaffected.
``balance=false`` uses the counts (plus ``CLASS_PSEUDO_COUNT`` a class, for the prior's masses and ``align``'s
target alike): for labels drawn at random from a pool whose classes really are unequal.

``graph="pixels"`` (the default) multiplies each weak-view prediction by a prior that does not drift with the
network: label propagation (Zhou et al. 2004) from the labeled images over a k-nearest-neighbour graph of the
pool's pixels (their top principal components), solved to convergence and class-mass normalized (Zhu et al.
2003), computed once before training. A mode of a class that no labeled
image shows (crossed sevens in MNIST-100) is reached through the pool's own images instead of being claimed by
whichever class the network's local features first liken it to (docs/benchmarks.md). ``graph="pixels+encoder"``
finds the neighbours in those components and the starting encoder's features side by side (equal weight): for a
run that starts from a pretrained encoder (a recipe's pretraining stage, or ``--init``)."""

from __future__ import annotations

import copy
from typing import Literal

import faiss
import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sslkit import (
    Batch,
    Component,
    DataInfo,
    Pretext,
    Split,
    UsageError,
    all_reduce_mean,
    augment,
    extract_features,
    hookimpl,
    pixel_embedding,
    update_average,
)

GRAPHS = ("pixels", "pixels+encoder", "none")
GRAPH_NEIGHBOURS = 10
# How far labels spread, (alpha, power), by labels per class: few labels must reach far (and the flatter scores of
# a long diffusion are sharpened), many need not and should not cross between classes that touch. MNIST, ten
# labels picked by --select auto, seed 0, 3 epochs: test accuracy 0.9713 with (0.999, 3), 0.9520 with (0.99, 1),
# 0.7405 with the prior before (20 steps at 0.99, no class masses). With 100 balanced labels the pool labeled by
# propagation: MNIST (pixels) 0.958 with (0.999, 3), 0.960 with (0.99, 1), 0.920 before; Fashion-MNIST, draw 0,
# pixels and a rotation encoder's features (its recipe's graph) 0.717, 0.759 and 0.751 before.
FEW_LABELS_PER_CLASS = 2  # at most this many per class on average: the far-reaching diffusion
FAR_DIFFUSION = (0.999, 3.0)
NEAR_DIFFUSION = (0.99, 1.0)
# balance=false: the class masses are the labeled counts plus this many per class (a Dirichlet prior towards equal
# classes). Chosen on MNIST's pool labeled by propagation from unbalanced picks (random seeds 0-2, typiclust's 20
# picks of seed 0): with one per class, 20 typiclust picks (1 to 4 a class) 0.74 right, with 10 per class 0.92;
# random picks 0.62 / 0.36 / 0.38 against 0.66 / 0.52 / 0.56. Balanced labels are unaffected.
CLASS_PSEUDO_COUNT = 10.0
# threshold="freematch" (Wang et al., ICLR 2023): the running means of the pool's confidences move by this share
# of a batch a step, and the fairness term weighs this much beside the two cross-entropies (neither tuned here)
FREEMATCH_MOMENTUM = 0.001
FREEMATCH_FAIRNESS = 0.01

# ------------------------------------------------------------------------------------------ losses


def pseudo_labels(weak_probs: Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """Hard pseudo-labels of the weak views and the mask of those confident enough (max probability >=
    ``threshold``), as floats."""
    confidence, labels = weak_probs.max(1)
    return labels, (confidence >= threshold).to(weak_probs.dtype)


def consistency_loss(strong_logits: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """FixMatch's unlabeled loss: cross-entropy of the strong views against the pseudo-labels, kept where the mask
    is 1 and averaged over *all* pool images (masked ones count as zero)."""
    return (F.cross_entropy(strong_logits.float(), labels, reduction="none") * mask).mean()


def freematch_thresholds(confidence: Tensor, class_confidence: Tensor) -> Tensor:
    """FreeMatch's self-adaptive class thresholds: the running mean of the top confidence (``confidence``),
    scaled for each class by its running mean probability (``class_confidence``) over the largest one's."""
    return confidence * class_confidence / class_confidence.max()


def fairness_loss(
    strong_logits: Tensor, mask: Tensor, class_confidence: Tensor, label_histogram: Tensor
) -> Tensor:
    """FreeMatch's self-adaptive fairness term, ``-H(target, batch)``: ``target`` is the running class probabilities
    over the running histogram of pseudo-labels, ``batch`` the mean probability of the masked strong views over
    their histogram, each summed to 1. Minimizing it keeps every class in the predictions. A class that the batch
    never predicts adds nothing (USB's form adds ``target * log 1e-12``, a constant without gradient that only made
    the printed term large and negative). Zero where the mask keeps no image."""
    keep = mask.bool()
    if not keep.any():
        return strong_logits.new_zeros((), dtype=torch.float32)
    probs = strong_logits[keep].float().softmax(1)
    histogram = torch.bincount(probs.argmax(1), minlength=probs.shape[1]).float()
    present = histogram > 0  # only these: an empty bin would divide by zero (NaN gradients)
    batch = probs.mean(0)[present] / (histogram[present] / histogram.sum())
    target = class_confidence / label_histogram
    return (target[present] / target.sum() * torch.log(batch / batch.sum() + 1e-12)).sum()


def align_distribution(probs: Tensor, prior: Tensor, running_mean: Tensor) -> Tensor:
    """ReMixMatch's distribution alignment: ``p * prior / running_mean``, renormalized to sum to 1."""
    aligned = probs * (prior / running_mean.clamp_min(1e-6))
    return aligned / aligned.sum(1, keepdim=True)


def with_prior(probs: Tensor, prior: Tensor) -> Tensor:
    """Product of two experts: ``p * prior``, renormalized to sum to 1 (uniform where the product vanishes)."""
    joint = probs * prior
    total = joint.sum(1, keepdim=True)
    return torch.where(total > 0, joint / total.clamp_min(1e-30), torch.full_like(joint, 1 / joint.shape[1]))


def class_shares(labels: Tensor, num_classes: int, balance: bool) -> Tensor:
    """The pool's class shares as fixmatch assumes them, summing to 1: equal under ``balance``, else the labeled
    counts plus ``CLASS_PSEUDO_COUNT`` a class. They set the graph prior's class masses and ``align``'s target."""
    if balance:
        return torch.full((num_classes,), 1 / num_classes)
    counts = torch.bincount(labels.cpu(), minlength=num_classes).float() + CLASS_PSEUDO_COUNT
    return counts / counts.sum()


def equal_class_weights(labels: Tensor, num_classes: int) -> Tensor:
    """Cross-entropy weights under which every class present in ``labels`` counts the same: ``n / (present classes *
    count)``, so balanced labels weigh 1 each (0 for an absent class, which is never a target)."""
    counts = torch.bincount(labels, minlength=num_classes).float()
    present = counts > 0
    return torch.where(present, len(labels) / (present.sum() * counts.clamp_min(1)), torch.zeros(()))


# ------------------------------------------------------------------------------------------ graph prior


def propagate_labels(
    embedding: Tensor,
    labels: Tensor,
    num_classes: int,
    neighbours: int = GRAPH_NEIGHBOURS,
    alpha: float | None = None,
    power: float | None = None,
    shares: Tensor | None = None,
) -> Tensor:
    """Label propagation (Zhou et al. 2004) over the symmetric k-NN graph of unit vectors ``embedding``, with
    class mass normalization (Zhu et al. 2003). Edge weights are cosine similarities cubed (Iscen et al. 2019),
    symmetrically normalized to ``S``; the scores ``F = (I - alpha S)^-1 Y`` (solved to convergence by conjugate
    gradients) from the one-hot ``Y`` of the nodes with ``labels >= 0``; each class's column scaled to its
    ``shares`` entry (equal shares where None; fixmatch passes :func:`class_shares`), raised to ``power`` and each
    row normalized. ``alpha`` and ``power`` not given follow the labels per class:
    ``FAR_DIFFUSION`` up to ``FEW_LABELS_PER_CLASS``, else ``NEAR_DIFFUSION``. Returns each node's class
    distribution (uniform where no label reaches it).

    Converged and mass-normalized, the prior is right far from the labels too: on MNIST's 60,000 training images
    from ten labels (one per class, typiclust's picks) 0.86 of the nodes, where 20 steps without the normalization
    reached 0.62 (a class with a well-connected label floods the rest); from 100 labels 0.96 against 0.92."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import cg

    n = len(embedding)
    k = min(neighbours, n - 1)
    index = faiss.IndexFlatIP(embedding.shape[1])
    vectors = embedding.float().contiguous().numpy()
    index.add(vectors)
    similarity, neighbour = index.search(vectors, k + 1)  # the first hit is the node itself
    rows = np.repeat(np.arange(n), k)
    weight = sp.csr_matrix(
        (np.clip(similarity[:, 1:], 0, None).ravel() ** 3, (rows, neighbour[:, 1:].ravel())), shape=(n, n)
    )
    weight = weight + weight.T
    scale = sp.diags(1 / np.sqrt(np.maximum(np.asarray(weight.sum(1)).ravel(), 1e-12)))
    known = (labels >= 0).numpy()
    regime = FAR_DIFFUSION if known.sum() <= FEW_LABELS_PER_CLASS * num_classes else NEAR_DIFFUSION
    alpha = regime[0] if alpha is None else alpha
    power = regime[1] if power is None else power
    system = sp.identity(n) - alpha * (scale @ weight @ scale)
    seeds = np.zeros((n, num_classes))
    seeds[known.nonzero()[0], labels[known].numpy()] = 1
    scores = np.stack([cg(system, seeds[:, c], rtol=1e-6, maxiter=1000)[0] for c in range(num_classes)], 1)
    scores = torch.from_numpy(scores).float().clamp_min(0)
    share = torch.ones(num_classes) if shares is None else shares.float().cpu()
    scores = scores * (share / share.sum()) / scores.sum(0).clamp_min(1e-30)
    return with_prior(scores.pow(power), torch.ones(num_classes))


# ------------------------------------------------------------------------------------------ method


class FixMatch(Pretext):
    uses_labels = True
    # 2^20 steps on a GPU in the paper; on 2 CPU cores, 10 passes over a 60,000-image pool at 4 x 32 per step.
    # The encoder, unless one is given: the convnet in three stages of two convolutions (16, 32, 64 channels) read
    # by global average pooling: cheap enough for thousands of steps on a CPU, and on MNIST-100 and
    # Fashion-MNIST-100 ahead of the reference layout (docs/benchmarks.md).
    defaults = {
        "epochs": 10,
        "batch_size": 128,  # pool images per step; the labeled batch is batch_size / mu
        "lr": 0.03,
        "weight_decay": 5e-4,
        "optimizer": "sgd",
        "warmup_epochs": 0,
        "eval": ["head", "linear"],  # the moving average's own classifier, and a probe of its features
        "encoder": "convnet",
        "encoder_options": {"width": 16, "pool": "avg", "stages": 3, "convs": 2},
        # Fashion-MNIST, and a person's folder of unknown images: one epoch of rotation first, then 20 epochs
        # with the graph in pixels and that encoder's features (docs/benchmarks.md#results). --no-pretrain skips
        # the stage (and the features are then a random encoder's: add graph=pixels). FreeMatch's thresholds:
        # 40 labels chosen by auto, machine F, six draws 0.794 +- 0.024 against 0.769 +- 0.023 at 0.95, better on
        # each; at 100, one balanced and one chosen draw, +0.5 and +1.8 points (docs/benchmarks.md).
        "data": {
            name: {
                "epochs": 20,
                "pretrain": {"pretext": "rotation", "epochs": 1},
                "pretext_options": {"graph": "pixels+encoder", "threshold": "freematch"},
            }
            for name in ("fashion-mnist", "imagefolder")
        },
    }

    def __init__(
        self,
        encoder: nn.Module,
        info: DataInfo,
        threshold: float | Literal["freematch"] = 0.95,
        mu: int = 4,
        lambda_u: float = 1.0,
        ema: float = 0.99,
        align: bool = False,
        strong_ops: int = 2,
        cutout: float = 0.25,
        graph: str = "pixels",
        balance: bool = True,
    ) -> None:
        if info.multilabel:
            raise UsageError("fixmatch needs single-label data; this dataset is multi-label")
        if threshold != "freematch" and not 0 < threshold <= 1:
            raise UsageError(f'fixmatch option threshold must be in (0, 1] or "freematch", got {threshold}')
        if mu < 1:
            raise UsageError(f"fixmatch option mu must be at least 1, got {mu}")
        if lambda_u < 0:
            raise UsageError(f"fixmatch option lambda_u must be >= 0, got {lambda_u}")
        if not 0 <= ema < 1:
            raise UsageError(f"fixmatch option ema must be in [0, 1), got {ema}")
        if strong_ops < 0 or not 0 <= cutout <= 1:
            raise UsageError(
                f"fixmatch options strong_ops >= 0 and cutout in [0, 1] (a share of the side), "
                f"got {strong_ops} and {cutout}"
            )
        if graph not in GRAPHS:
            raise UsageError(f"fixmatch option graph must be one of {', '.join(GRAPHS)}, got {graph!r}")
        # the trained network is the student; the encoder the run saves and evaluates is its moving average
        student = nn.ModuleDict(
            {"encoder": encoder, "classifier": nn.Linear(encoder.feature_dim, info.num_classes)}
        )
        average = copy.deepcopy(student)
        for p in average.parameters():
            p.requires_grad_(False)
        super().__init__(average["encoder"], info)
        self.student = student
        self.classifier = average["classifier"]
        self.threshold, self.mu, self.lambda_u, self.ema = threshold, mu, lambda_u, ema
        self.align, self.strong_ops, self.graph, self.balance = align, strong_ops, graph, balance
        self.graph_prior: Tensor | None = None  # (pool, classes), from prepare(); recomputed on resume
        self.class_weight: Tensor | None = None  # the supervised loss's, from prepare() where balance is on
        self.pool_shares: Tensor | None = None  # the classes' assumed shares of the pool, from prepare()
        self.cutout_size = round(cutout * info.image_size)
        self.register_buffer("prediction_mean", torch.full((info.num_classes,), 1 / info.num_classes))
        self.register_buffer("average_steps", torch.zeros((), dtype=torch.long))
        if threshold == "freematch":  # running means of the pool's weak views, from uniform
            self.register_buffer("confidence", torch.tensor(1 / info.num_classes))
            self.register_buffer("class_confidence", torch.full((info.num_classes,), 1 / info.num_classes))
            self.register_buffer("label_histogram", torch.full((info.num_classes,), 1 / info.num_classes))

    def prepare(self, pool: Tensor, labeled: Split | None) -> None:
        if labeled is None or len(labeled) == 0:
            raise UsageError("fixmatch needs labeled images (--labels)")
        num_classes = self.info.num_classes
        if self.balance:
            self.class_weight = equal_class_weights(labeled.labels, num_classes).to(labeled.labels.device)
        self.pool_shares = class_shares(labeled.labels, num_classes, self.balance).to(labeled.labels.device)
        if self.graph == "none":
            return
        images = torch.cat([labeled.images.cpu(), pool.cpu()])
        embedding = pixel_embedding(images)
        if self.graph == "pixels+encoder":  # the starting encoder's features beside the pixels' components
            features = extract_features(self.encoder, images, self.info, labeled.images.device)
            features = F.normalize(features - features.mean(0), dim=1)
            embedding = F.normalize(torch.cat([embedding, features], 1), dim=1)
        labels = torch.cat([labeled.labels.cpu(), torch.full((len(pool),), -1, dtype=torch.long)])
        prior = propagate_labels(embedding, labels, num_classes, shares=self.pool_shares)[len(labeled) :]
        self.graph_prior = prior.to(pool.device)

    def labeled_batch_size(self, pool_batch: int) -> int:
        return max(1, pool_batch // self.mu)

    def weak(self, x: Tensor) -> Tensor:
        return augment.light_augment(x, flip=self.info.flips)

    def strong(self, x: Tensor) -> Tensor:
        return augment.rand_augment(self.weak(x), n_ops=self.strong_ops, cutout_size=self.cutout_size)

    def losses(self, batch: Batch) -> dict[str, Tensor]:
        assert batch.labeled_images is not None and batch.labels is not None
        labeled, pool = batch.labeled_images, batch.images
        views = torch.cat([self.weak(labeled), self.weak(pool), self.strong(pool)])
        logits = self.student["classifier"](self.student["encoder"](self.info.normalize(views))).float()
        n, m = len(labeled), len(pool)
        labeled_logits, weak_logits, strong_logits = logits[:n], logits[n : n + m], logits[n + m :]
        supervised = F.cross_entropy(labeled_logits, batch.labels, weight=self.class_weight)
        with torch.no_grad():
            probs = weak_logits.softmax(1)
            if self.align:
                self.prediction_mean.lerp_(all_reduce_mean(probs.mean(0)), 0.001)
                if self.pool_shares is None:
                    raise RuntimeError("fixmatch's alignment needs prepare() first")
                probs = align_distribution(probs, self.pool_shares, self.prediction_mean)
            if self.graph != "none":
                if self.graph_prior is None or batch.index is None:
                    raise RuntimeError(
                        "fixmatch's graph prior needs prepare() and batches with their pool index"
                    )
                probs = with_prior(
                    probs, self.graph_prior[batch.index.to(self.graph_prior.device)].to(probs.device)
                )
            if self.threshold == "freematch":
                targets, mask = self.adaptive_pseudo_labels(probs)
            else:
                targets, mask = pseudo_labels(probs, self.threshold)
        unlabeled = consistency_loss(strong_logits, targets, mask)
        loss = supervised + self.lambda_u * unlabeled
        terms: dict[str, Tensor] = {}
        if self.threshold == "freematch":
            fairness = fairness_loss(strong_logits, mask, self.class_confidence, self.label_histogram)
            loss = loss + FREEMATCH_FAIRNESS * fairness
            terms["fairness"] = fairness.detach()
        return {
            "loss": loss,
            "supervised": supervised.detach(),
            "unlabeled": unlabeled.detach(),
            **terms,
            "mask": mask.mean(),
            "accuracy": (labeled_logits.argmax(1) == batch.labels).float().mean(),
        }

    @torch.no_grad()
    def adaptive_pseudo_labels(self, probs: Tensor) -> tuple[Tensor, Tensor]:
        """:func:`pseudo_labels` at FreeMatch's class thresholds, after this batch has moved their running means.
        Under torchrun the batch is the whole step's, every rank's means averaged (as USB gathers the
        probabilities), so the ranks keep one set of thresholds: a single process's with the global batch."""
        confidence, labels = probs.max(1)
        classes = probs.shape[1]
        histogram = torch.bincount(labels, minlength=classes).to(probs.dtype)
        means = all_reduce_mean(
            torch.cat([confidence.mean()[None], probs.mean(0), histogram / histogram.sum()])
        )
        top, class_means, label_shares = means.split([1, classes, classes])
        self.confidence.lerp_(top[0], FREEMATCH_MOMENTUM)
        self.class_confidence.lerp_(class_means, FREEMATCH_MOMENTUM)
        self.label_histogram.lerp_(label_shares, FREEMATCH_MOMENTUM)
        thresholds = freematch_thresholds(self.confidence, self.class_confidence)
        return labels, (confidence >= thresholds[labels]).to(probs.dtype)

    def train_step(
        self, batch: Batch, optimizers: list[torch.optim.Optimizer], model: nn.Module
    ) -> dict[str, Tensor]:
        terms = super().train_step(batch, optimizers, model)
        self.update_average()
        return terms

    @torch.no_grad()
    def update_average(self) -> None:
        self.average_steps += 1
        average = nn.ModuleDict({"encoder": self.encoder, "classifier": self.classifier})
        update_average(average, self.student, self.ema, int(self.average_steps))

    def classifier_head(self) -> nn.Module:
        return self.classifier


@hookimpl
def sslkit_pretexts() -> list[Component]:
    return [
        Component(
            "fixmatch",
            FixMatch,
            "semi-supervised: labeled cross-entropy + confident weak-view pseudo-labels on strong views",
        )
    ]
