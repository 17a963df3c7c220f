"""Training and evaluation engine (Lightning): configs, data wiring, the AU-DFER module, runs and sweeps."""

from ..options import Config
from .config import load_config, shipped_configs, with_values
from .train import evaluate_checkpoint, load_module, train

__all__ = ["Config", "load_config", "with_values", "shipped_configs", "train", "evaluate_checkpoint", "load_module"]
