"""Which images to label: the space a selector works in, ``sslkit suggest`` (the labeling loop on a person's images)
and ``sslkit run --select`` (the same choice simulated on a labeled data set, for benchmarks).

The space: each image's top pixel principal components, beside the run's encoder features when there is a run,
turned into the spectral embedding of their k-NN graph (:func:`sslkit.embedding.spectral_embedding`), whose
clusters follow the data's manifolds rather than raw distances (on MNIST, ten typical points of pixel-space
clusters saw 4-5 of the ten classes; of spectral clusters, 8-9)."""

from __future__ import annotations

import html
import io
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from sslkit.embedding import AUTO_SELECTOR, pixel_embedding, spectral_embedding
from sslkit.errors import UsageError
from sslkit.interfaces import SelectionContext, Selector
from sslkit.registry import Registry
from sslkit.report.plots import file_uri
from sslkit.util import log

# chosen on MNIST, seeds 0-2, ten typiclust picks: 16 dims saw 9, 9, 10 classes; 10 dims 9, 9, 9; 32 dims 9, 7, 8
SPECTRAL_DIMS = 16
SPECTRAL_NEIGHBOURS = 10
# a label-free run's features (a pretext's: one epoch of rotation by default) beside the pixels at half their
# length, a fifth of the cosine similarity. Chosen on MNIST (that run's features, ten typiclust picks, seeds 0-9):
# all 10 classes in 10 draws of 10 at 0.5 (and with the pixels alone), 1 of 10 at equal length; checked on
# Fashion-MNIST (twenty picks, seeds 0-9): 9.8 classes on average at 0.5 and with the pixels alone, 9.0 at equal
LABEL_FREE_FEATURE_WEIGHT = 0.5


def selection_space(images: Tensor, features: Tensor | None = None, label_free: bool = False) -> Tensor:
    """The embedding selectors choose in, for uint8 ``images``: the spectral embedding of the k-NN graph of the
    pixels' principal components, and of a run encoder's ``features`` of them beside them (each part centred,
    unit norm; the features of a ``label_free`` run scaled by ``LABEL_FREE_FEATURE_WEIGHT``)."""
    parts = [pixel_embedding(images)]
    if features is not None:
        weight = LABEL_FREE_FEATURE_WEIGHT if label_free else 1.0
        parts.append(weight * F.normalize(features - features.mean(0), dim=1))
    dims = max(1, min(SPECTRAL_DIMS, len(images) - 2))  # a folder of a few images has fewer directions
    return spectral_embedding(F.normalize(torch.cat(parts, 1), dim=1), dims, SPECTRAL_NEIGHBOURS)


def choose(
    registry: Registry,
    strategy: str,
    embedding: Tensor,
    n: int,
    labeled: Tensor,
    probabilities: Tensor | None,
    seed: int,
    classes: int | None = None,
) -> tuple[str, Tensor]:
    """The strategy's name (``auto`` resolved) and its ``n`` picks among the rows of ``embedding`` not in
    ``labeled``, sorted (``classes``: how many the labels will name, where known)."""
    name, selector = checked_selector(registry, strategy, probabilities, len(embedding) - len(labeled), n)
    return name, sorted_picks(selector, SelectionContext(embedding, n, labeled, probabilities, seed, classes))


def sorted_picks(selector: Selector, ctx: SelectionContext) -> Tensor:
    """``selector``'s picks in ``ctx``, as sorted int64 pool indices."""
    return torch.as_tensor(selector.select(ctx), dtype=torch.int64).sort().values


def checked_selector(
    registry: Registry, strategy: str, probabilities: Tensor | None, available: int, n: int
) -> tuple[str, Selector]:
    """The strategy's name (``auto`` resolved) and its selector, once it is known to be able to pick ``n`` of
    the ``available`` unlabeled images with (or without) a classifier's ``probabilities``: one-line errors."""
    name = AUTO_SELECTOR if strategy == "auto" else strategy
    selector = registry.build("selector", name)
    if getattr(selector, "needs_classifier", False) and probabilities is None:
        raise UsageError(
            f"selector {name!r} needs a classifier and this run has none (it has no labels yet): use "
            f"--strategy {AUTO_SELECTOR} (or auto) for the first round"
        )
    if not 0 < n <= available:
        raise UsageError(
            f"cannot pick {n} images to label from {available:,} unlabeled ones: ask for 1 to {available:,}"
        )
    return name, selector


def choose_in_view(
    registry: Registry,
    strategy: str,
    images: Tensor,
    features: Tensor | None,
    probabilities: Tensor | None,
    n: int,
    labeled: Tensor,
    seed: int,
    classes: int | None = None,
) -> tuple[str, Tensor]:
    """:func:`choose` among uint8 ``images`` in the :func:`selection_space` of their pixels and a run's view of
    them (``sslkit.build.run_view``: its encoder ``features``, None without a run, and its classifier's
    ``probabilities``, None without one, which then weigh the choice and give the features their full weight).
    The space is computed only for a selector that reads it (``reads_embedding``, True where not said)."""
    name, selector = checked_selector(registry, strategy, probabilities, len(images) - len(labeled), n)
    if getattr(selector, "reads_embedding", True):
        seen = "pixels and the run's features" if features is not None else "pixels"
        log(f"embedding {len(images):,} images for {name} ({seen}, spectral)")
        space = selection_space(images, features, label_free=probabilities is None)
    else:  # about half a minute on 60,000 images saved
        space = torch.zeros(len(images), 0)
    return name, sorted_picks(selector, SelectionContext(space, n, labeled, probabilities, seed, classes))


def thumbnail(image: Tensor, side: int = 96) -> str:
    """A uint8 ``(C, H, W)`` image as a PNG data URI, enlarged to about ``side`` pixels without smoothing."""
    from PIL import Image

    array = image.permute(1, 2, 0).squeeze(-1).numpy()
    picture = Image.fromarray(array)
    scale = max(1, side // max(picture.size))
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return file_uri(buffer.getvalue())


def contact_sheet(rows: list[dict[str, Any]], images: Tensor, title: str, classes: list[str]) -> str:
    """A self-contained HTML page: each image to label as a thumbnail with its file name (and the model's guess),
    numbered as in the CSV, to label fast by eye."""
    cards = []
    for i, (row, image) in enumerate(zip(rows, images), start=1):
        guess = (
            f"<div class=guess>guess: {html.escape(row['guess'])} ({row['confidence']})</div>"
            if row.get("guess")
            else ""
        )
        cards.append(
            f"<figure><img src='{thumbnail(image)}' alt='{html.escape(row['path'])}'>"
            f"<figcaption><b>{i}</b> {html.escape(row['path'])}{guess}</figcaption></figure>"
        )
    known = f"<p>Known classes: {html.escape(', '.join(classes))}</p>" if classes else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 12px; }}
figure {{ margin: 0; padding: 8px; border: 1px solid #ddd; border-radius: 6px; text-align: center; }}
img {{ image-rendering: pixelated; max-width: 128px; max-height: 128px; }}
figcaption {{ font-size: 12px; word-break: break-all; margin-top: 4px; }}
.guess {{ color: #666; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Fill in the <code>label</code> column of the CSV beside this page for these {len(rows)} images, then train again
with <code>--data-opt labels=THAT.csv</code>.</p>{known}
<div class="grid">{"".join(cards)}</div>
</body></html>
"""
