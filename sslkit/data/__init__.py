"""Tensor-resident data: where datasets live, label budgets, batched augmentation, and image files decoded into
the run's uint8 tensor (:mod:`sslkit.data.images`)."""

from sslkit.data.budget import LabelBudget, split_budget
from sslkit.data.images import decode_image, find_images, load_images
from sslkit.data.paths import default_data_root

__all__ = ["LabelBudget", "decode_image", "default_data_root", "find_images", "load_images", "split_budget"]
