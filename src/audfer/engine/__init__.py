"""Training and evaluation engine (Lightning): config -> data wiring, the AU-DFER module, runs, sweeps and studies."""

from audfer.engine.evaluate import evaluate_checkpoint, load_module
from audfer.engine.train import train

__all__ = ["train", "evaluate_checkpoint", "load_module"]
