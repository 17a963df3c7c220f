"""Training and evaluation engine (Lightning): config -> data wiring, the AU-DFER module, runs, sweeps and studies."""

from audfer.engine.train import evaluate_checkpoint, load_module, train

__all__ = ["train", "evaluate_checkpoint", "load_module"]
