"""Weights without Lightning: models and losses built from a config, and audfer training checkpoints read back (never
unpickled unless trusted) into a model for inference or into the training module."""
