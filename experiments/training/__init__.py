"""The training runtime: the student loop (both pair streams, checkpoints, validation, the best
checkpoint) and the image teacher (train, import, precompute its probabilities)."""
