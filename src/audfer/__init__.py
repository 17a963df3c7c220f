"""audfer: AU-enhanced dynamic facial expression recognition (AU-DFER, ACM MM 2025).

The public API, re-exported lazily: ``import audfer`` loads neither torch nor Lightning; each name is imported from
its home module on first use (``audfer.create_model`` -> ``audfer.models.registry``). The homes follow the pipeline
(``docs/architecture.md``): ``au`` (AU files) -> ``method`` (Eq. 4-10, §3.1) -> ``models`` -> ``engine`` (training) /
``predict`` (videos) -> ``evaluation``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from audfer.errors import AudferError
from audfer.vocab import AUS, AUS_INTENSITY, EXPRESSIONS

__version__ = "0.1.0"

#: public name -> the module that defines it
_HOMES: dict[str, str] = {
    # AU files -> the canonical frames table
    "read_openface": "audfer.au.openface",
    "read_au_dir": "audfer.au.folder",
    "read_clip_labels": "audfer.io",
    "read_au_labels": "audfer.method.labels",
    # the paper's equations
    "video_au_labels": "audfer.method.labels",
    "pos_weights": "audfer.method.labels",
    "extract_knowledge": "audfer.method.knowledge",
    "combine_knowledge": "audfer.method.knowledge",
    "paper_knowledge": "audfer.method.knowledge",
    "AULoss": "audfer.method.losses",
    "AUDFERLoss": "audfer.method.losses",
    # models
    "create_model": "audfer.models.registry",
    "list_models": "audfer.models.registry",
    "register_model": "audfer.models.registry",
    "DFERModel": "audfer.models.base",
    "load_checkpoint": "audfer.models.checkpoint",
    "from_pretrained": "audfer.weights.package",
    # configs, training, evaluation
    "Config": "audfer.config.schema",
    "load_config": "audfer.config.load",
    "with_values": "audfer.config.load",
    "AUDFERModule": "audfer.engine.module",
    "train": "audfer.engine.train",
    "evaluate_checkpoint": "audfer.engine.evaluate",
    "load_module": "audfer.engine.evaluate",
    "frame_probabilities": "audfer.engine.frame_probs",
    "WARUAR": "audfer.evaluation.metrics",
    "MaskedAUF1": "audfer.evaluation.metrics",
    "classification_metrics": "audfer.evaluation.metrics",
    "paired_differences": "audfer.evaluation.statistics",
    # prediction
    "load_predictor": "audfer.predict.predictor",
    "predict_video": "audfer.predict.predictor",
    "VideoResult": "audfer.predict.result",
}

__all__ = [
    "AUS",
    "AUS_INTENSITY",
    "EXPRESSIONS",
    "AudferError",
    "__version__",
    "read_openface",
    "read_au_dir",
    "read_clip_labels",
    "read_au_labels",
    "video_au_labels",
    "pos_weights",
    "extract_knowledge",
    "combine_knowledge",
    "paper_knowledge",
    "AULoss",
    "AUDFERLoss",
    "create_model",
    "list_models",
    "register_model",
    "DFERModel",
    "load_checkpoint",
    "from_pretrained",
    "Config",
    "load_config",
    "with_values",
    "AUDFERModule",
    "train",
    "evaluate_checkpoint",
    "load_module",
    "frame_probabilities",
    "WARUAR",
    "MaskedAUF1",
    "classification_metrics",
    "paired_differences",
    "load_predictor",
    "predict_video",
    "VideoResult",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time the names load on first use
    from audfer.au.folder import read_au_dir
    from audfer.au.openface import read_openface
    from audfer.config.load import load_config, with_values
    from audfer.config.schema import Config
    from audfer.engine.evaluate import evaluate_checkpoint, load_module
    from audfer.engine.frame_probs import frame_probabilities
    from audfer.engine.module import AUDFERModule
    from audfer.engine.train import train
    from audfer.evaluation.metrics import WARUAR, MaskedAUF1, classification_metrics
    from audfer.evaluation.statistics import paired_differences
    from audfer.io import read_clip_labels
    from audfer.method.knowledge import combine_knowledge, extract_knowledge, paper_knowledge
    from audfer.method.labels import pos_weights, read_au_labels, video_au_labels
    from audfer.method.losses import AUDFERLoss, AULoss
    from audfer.models.base import DFERModel
    from audfer.models.checkpoint import load_checkpoint
    from audfer.models.registry import create_model, list_models, register_model
    from audfer.predict.predictor import load_predictor, predict_video
    from audfer.predict.result import VideoResult
    from audfer.weights.package import from_pretrained


def __getattr__(name: str) -> Any:
    """Import a public name from its home module on first use (PEP 562)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'audfer' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names, loaded or not."""
    return sorted(set(globals()) | set(_HOMES))
