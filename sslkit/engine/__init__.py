"""The training loop, checkpoints and the distributed launch."""
