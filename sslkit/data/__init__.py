"""Tensor-resident data: where datasets live, label budgets, and batched augmentation."""

from sslkit.data.budget import LabelBudget, split_budget
from sslkit.data.paths import default_data_root

__all__ = ["LabelBudget", "default_data_root", "split_budget"]
