"""Base DFER models with an optional AU head (AU-DFER §3.2): M3DFEL, Former-DFER, MAE-DFER.

``create_model(name, num_classes=7, au_head=True, **overrides)``; ``list_models()``.
Full-size names follow the official architectures exactly (their ``state_dict`` keys, shapes
and parameter counts without the AU head); ``*_small`` are CPU-sized variants for the demo.
"""

from audfer.models.base import DFERModel, InputSpec, ModelOutput
from audfer.models.checkpoint import LoadReport, load_checkpoint
from audfer.models.registry import create_model, list_models, model_entry, register_model

# the shipped models register themselves as they are imported, in the papers' order (M3DFEL, Former-DFER, MAE-DFER):
# ``data.sampling`` lists their recipes in registration order
# isort: off
from audfer.models.m3dfel import M3DFEL
from audfer.models.former_dfer import FormerDFER
from audfer.models.mae_dfer import MAEDFER

# isort: on

__all__ = [
    "DFERModel",
    "InputSpec",
    "ModelOutput",
    "M3DFEL",
    "FormerDFER",
    "MAEDFER",
    "create_model",
    "list_models",
    "model_entry",
    "register_model",
    "load_checkpoint",
    "LoadReport",
]
