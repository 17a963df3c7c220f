"""Base DFER models with an optional AU head (AU-DFER §3.2): M3DFEL, Former-DFER, MAE-DFER.

``create_model(name, num_classes=7, au_head=True, **overrides)``; ``list_models()``.
Full-size names follow the official architectures exactly (their ``state_dict`` keys, shapes
and parameter counts without the AU head); ``*_small`` are CPU-sized variants for the demo.
"""

from .base import DFERModel, InputSpec, ModelOutput
from .checkpoint import LoadReport, load_checkpoint
from .former_dfer import FormerDFER
from .m3dfel import M3DFEL
from .mae_dfer import MAEDFER
from .registry import create_model, list_models, model_entry, register_model

register_model("m3dfel", M3DFEL, "M3DFEL (CVPR 2023): R3D-18 instances + BiLSTM + DMIN, 16x112x112")
register_model("former_dfer", FormerDFER, "Former-DFER (MM 2021): S-Former + T-Former, 16x112x112")
register_model("mae_dfer", MAEDFER, "MAE-DFER (MM 2023): LGI-Former, 16x160x160")
register_model("m3dfel_small", M3DFEL, "M3DFEL at width 8, 64x64 (CPU demo)", width=8, img_size=64)
register_model("former_dfer_small", FormerDFER, "Former-DFER at width 16, 64x64, 1 temporal layer (CPU demo)",
               width=16, img_size=64, temporal_depth=1)
register_model("mae_dfer_small", MAEDFER, "MAE-DFER dim 64, depth 2, 64x64 (CPU demo)", embed_dim=64, depth=2,
               heads=4, img_size=64, region_size=(2, 2, 4), drop_path=0.0)

__all__ = [
    "DFERModel", "InputSpec", "ModelOutput", "M3DFEL", "FormerDFER", "MAEDFER", "create_model", "list_models",
    "model_entry", "register_model", "load_checkpoint", "LoadReport",
]
