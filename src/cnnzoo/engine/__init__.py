"""Training, evaluation, checkpoints and prediction: plain functions over a dataclass config."""
