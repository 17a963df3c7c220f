"""Loading released checkpoints of the base models into ours.

Understood layouts: ``{'state_dict': ...}``, ``{'model': ...}`` (also ``module``, ``model_state``),
a bare state dict, ``module.`` prefixes (DataParallel/DDP), Lightning's ``model.`` prefix, MAE-DFER's
self-supervised pre-training checkpoint (``encoder.`` prefix; decoder keys dropped; classifier and
final norm start fresh), torchvision's ``r3d_18`` Kinetics-400 file into M3DFEL's ``features``
backbone and torchvision's ``resnet18`` into Former-DFER's S-Former trunk. A classifier of another
shape (e.g. a 400-class head) is re-initialised with a message; any other mismatch is an error that
lists the keys.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from audfer.errors import CheckpointError
from audfer.models.base import DFERModel
from audfer.models.hub import PACKAGE_WEIGHTS, is_package, resolve_weights
from audfer.trust import check_package, check_stored_config

_NESTING = ("state_dict", "model", "module", "model_state", "model_state_dict", "net")


@dataclass
class LoadReport:
    layout: str  #: what the file was recognised as
    loaded: int  #: tensors copied into the model
    reinitialised: list[str] = field(default_factory=list)  #: keys left at their fresh initialisation
    dropped: list[str] = field(default_factory=list)  #: checkpoint keys deliberately not used
    messages: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (``init.json``): loaded, re-initialised and unused keys."""
        return {
            "layout": self.layout,
            "loaded": self.loaded,
            "reinitialised": self.reinitialised,
            "dropped": self.dropped,
            "messages": self.messages,
        }

    def summary(self) -> str:
        """One paragraph: what was loaded, what starts fresh, what was left unused."""
        fresh = ", ".join(self.reinitialised[:6]) + (" ..." if len(self.reinitialised) > 6 else "")
        unused = ", ".join(self.dropped[:6]) + (" ..." if len(self.dropped) > 6 else "")
        lines = [
            f"{self.layout}: {self.loaded} tensors loaded",
            f"re-initialised {len(self.reinitialised)}" + (f" ({fresh})" if fresh else ""),
            f"unused {len(self.dropped)}" + (f" ({unused})" if unused else ""),
        ]
        return "; ".join(lines) + "".join(f"\n  {m}" for m in self.messages)


def _tensor_dict(obj: object) -> bool:
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(k, str) for k in obj)
        and all(isinstance(v, torch.Tensor) for v in obj.values())
    )


def _unwrap(obj: object, path: Path) -> tuple[dict[str, torch.Tensor], str]:
    layers = []
    while not _tensor_dict(obj):
        if not isinstance(obj, dict):
            raise CheckpointError(f"{path}: not a checkpoint (found {type(obj).__name__}, expected a dict of tensors)")
        key = next((k for k in _NESTING if k in obj and isinstance(obj[k], dict)), None)
        if key is None:
            raise CheckpointError(f"{path}: no state dict found; top-level keys: {', '.join(map(str, list(obj)[:12]))}")
        layers.append(key)
        obj = obj[key]
        if len(layers) > 3:
            raise CheckpointError(f"{path}: checkpoint nested too deeply ({'/'.join(layers)})")
    assert isinstance(obj, dict)  # _tensor_dict said so
    return dict(obj), "/".join(layers) or "bare state dict"


def _strip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return state


def sniff_checkpoint(path: str | os.PathLike[str]) -> None:
    """Refuse, with one line saying what the file is instead, a "checkpoint" that is missing, empty, text, an
    ONNX export, or a zip archive cut off before its end (a copy that did not finish)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found" + (" (it is a folder)" if path.is_dir() else ""))
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: empty file; expected a PyTorch checkpoint")
    with open(path, "rb") as fh:
        head = fh.read(4096)
        fh.seek(max(0, size - 4096))
        tail = fh.read()
    if head.startswith(b"PK\x03\x04"):
        if b"PK\x05\x06" not in tail:  # no end-of-central-directory record: cut off
            raise CheckpointError(
                f"{path}: truncated checkpoint ({size} bytes; the zip archive has no end record) - "
                f"an interrupted download or copy?"
            )
        return
    if head[:1] == b"\x80":  # a legacy (pre-1.6) pickle checkpoint
        return
    if path.suffix.lower() == ".onnx" or (
        b"onnx" in head[:256].lower() or b"pytorch" in head[:64] and head[:1] == b"\x08"
    ):
        raise CheckpointError(
            f"{path}: an ONNX model, not a PyTorch checkpoint (ONNX files are for onnxruntime; train/evaluate/"
            f"predict need the .ckpt/.pth it was exported from)"
        )
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c in "\r\n\t" for c in text[:512]):
        first = text.strip().splitlines()[0][:60] if text.strip() else ""
        raise CheckpointError(
            f"{path}: a text file ({first!r}...), not a PyTorch checkpoint (an HTML error page saved "
            f"instead of the weights?)"
        )
    raise CheckpointError(f"{path}: not a PyTorch checkpoint (neither a zip archive nor a pickle)")


def check_finite(state: dict[str, torch.Tensor], path: str | os.PathLike[str]) -> None:
    """Refuse, in one line naming the file and the first such tensor, weights that are not finite (NaN or infinite
    values): every number computed with them would be invented (a run that diverged, a damaged file)."""
    for name, value in state.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.numel():
            bad = ~torch.isfinite(value)
            if bool(bad.any()):
                raise CheckpointError(
                    f"{path}: tensor {name!r} is not finite ({int(bad.sum())} of {value.numel()} values NaN or "
                    f"infinite); these weights would give invented numbers: refused (a run that diverged, or a "
                    f"damaged file)"
                )


def _check_finite_obj(obj: object, path: Path, depth: int = 0) -> None:
    """``check_finite`` on the tensors of a checkpoint's state dict, wherever its layout nests it."""
    if _tensor_dict(obj):
        check_finite(obj, path)  # type: ignore[arg-type]
    elif isinstance(obj, dict) and depth < 4:
        for key in _NESTING:
            if isinstance(obj.get(key), dict):
                _check_finite_obj(obj[key], path, depth + 1)


def _refused_global(exc: BaseException) -> str | None:
    """The ``module.name`` torch's weights-only unpickler refused to import, when that is why it failed."""
    import re

    found = re.search(r"GLOBAL ([\w.]+)", str(exc))
    return found.group(1) if found else None


def read_checkpoint(path: str | os.PathLike[str], *, trust_pickle: bool = False) -> Any:
    """The object stored in a PyTorch file, read without running code unless the user trusts the file; its state
    dict's weights must be finite (``check_finite``).

    Every file audfer opens with ``torch.load`` goes through here (``model.pretrained``, ``predict`` /
    ``evaluate`` / ``export`` checkpoints, ``--resume``): ``weights_only=True`` (tensors, numbers, strings and
    containers only), so a pickle that would import and call something (``os.system``) is refused before it
    runs, with one line naming what it asked for. ``trust_pickle=True`` (``--trust-pickle``,
    ``model.trust_pickle``) reads any pickle: only for files whose author you trust."""
    path = Path(path)
    sniff_checkpoint(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as exc:  # noqa: BLE001 - torch raises many types here
        text = str(exc)
        if not trust_pickle and ("weights_only" in text or "Unpickl" in type(exc).__name__):
            wanted = _refused_global(exc)
            raise CheckpointError(
                f"{path}: refused: the file pickles more than tensors"
                + (f" (it asks to import {wanted})" if wanted else "")
                + "; unpickling it could run its author's code. Pass --trust-pickle (model.trust_pickle=true, "
                "trust_pickle=True) only if you trust where it came from (docs/weights.md)"
            ) from None
        first = text.splitlines()[0] if text else type(exc).__name__
        raise CheckpointError(f"{path}: cannot read checkpoint: {first}") from None
    _check_finite_obj(obj, path)  # weights that are not finite are refused where they are read
    return obj


def read_safetensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file, or of a package folder's ``model.safetensors`` (a format without code:
    nothing to trust)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    file = path / PACKAGE_WEIGHTS if path.is_dir() else path
    if not file.is_file():
        raise CheckpointError(f"{file}: not found")
    try:
        state = load_file(str(file), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{file}: not a readable safetensors file ({first})") from None
    check_finite(state, file)
    return state


@dataclass
class Weights:
    """A weights file read once: its tensors (wrappers and ``module.`` / ``model.`` prefixes removed), what it was
    recognised as, and the keys deliberately left out (an audfer training checkpoint's loss buffers)."""

    path: Path
    state: dict[str, torch.Tensor]
    layout: str
    dropped: list[str] = field(default_factory=list)


def read_weights(path: str | os.PathLike[str], *, trust_pickle: bool = False, revision: str | None = None) -> Weights:
    """Read ``path``: a checkpoint file, a ``.safetensors`` file, a package folder (``audfer package``) or a Hub id
    ``org/name`` (``revision``: branch, tag or commit; ``models.hub``). PyTorch files are read weights-only
    (``read_checkpoint``); ``trust_pickle=True`` allows arbitrary pickles (some released files also pickle their
    training arguments) for files you trust. A package or audfer checkpoint whose stored config names code to
    import is refused unless ``trust_pickle`` (``audfer.trust``), even though only its tensors are used here."""
    path = resolve_weights(path, revision)
    if is_package(path):
        check_package(path, trusted=trust_pickle)  # a package naming code is refused whatever reads it
    if is_package(path) or path.suffix.lower() == ".safetensors":
        return Weights(path, read_safetensors(path), "audfer package" if path.is_dir() else "safetensors")
    obj = read_checkpoint(path, trust_pickle=trust_pickle)
    hp = obj.get("hyper_parameters") if isinstance(obj, dict) else None
    if isinstance(hp, dict) and isinstance(hp.get("cfg"), dict):  # an audfer training checkpoint's stored config
        check_stored_config(hp["cfg"], path, trusted=trust_pickle)
    state, layout = _unwrap(obj, path)
    dropped: list[str] = []
    if isinstance(obj, dict) and "pytorch-lightning_version" in obj and any(k.startswith("model.") for k in state):
        # an audfer training checkpoint: the model's tensors under ``model.``, loss buffers (K, pos-weights) beside
        dropped = sorted(k for k in state if not k.startswith("model."))
        state = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
        layout = "audfer training checkpoint"
    return Weights(path, _strip(_strip(state, "module."), "model."), layout, dropped)


def load_checkpoint(
    model: DFERModel,
    path: str | os.PathLike[str] | Weights,
    *,
    trust_pickle: bool = False,
    revision: str | None = None,
) -> LoadReport:
    """Load ``path`` (anything ``read_weights`` reads, or what it returned) into ``model`` (see module docstring);
    returns what was done."""
    weights = path if isinstance(path, Weights) else read_weights(path, trust_pickle=trust_pickle, revision=revision)
    path, state, layout = weights.path, dict(weights.state), weights.layout
    report = LoadReport(layout, 0, dropped=list(weights.dropped))
    own = model.state_dict()
    name = type(model).__name__
    allowed_missing: set[str] = {k for k in own if k.startswith("au_head.")}
    if getattr(model, "au_head", None) is None and any(k.startswith("au_head.") for k in state):
        report.dropped += sorted(k for k in state if k.startswith("au_head."))
        report.messages.append("the checkpoint has an AU head but this model has none (au.strategy=none): not used")
        state = {k: v for k, v in state.items() if not k.startswith("au_head.")}

    state, fresh = model.pretrained_filter(state, report)  # the model's own released layouts (its file)
    allowed_missing |= fresh

    head = model.classifier_name
    for suffix in ("weight", "bias"):
        k = f"{head}.{suffix}"
        if k in state and k in own and state[k].shape != own[k].shape:
            report.messages.append(
                f"classifier {k} has shape {tuple(state[k].shape)} in the checkpoint, {tuple(own[k].shape)} here: re-initialised"
            )
            report.dropped.append(k)
            del state[k]
            allowed_missing.add(k)

    unexpected = sorted(k for k in state if k not in own)
    wrong = sorted(k for k in state if k in own and state[k].shape != own[k].shape)
    missing = sorted(k for k in own if k not in state and k not in allowed_missing)
    if unexpected or wrong or missing:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)}: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
        if unexpected:
            parts.append(
                f"unexpected {len(unexpected)}: {', '.join(unexpected[:8])}{' ...' if len(unexpected) > 8 else ''}"
            )
        if wrong:
            parts.append(
                "shape mismatch: "
                + ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in wrong[:5])
            )
        raise CheckpointError(f"{path}: does not fit {name} ({layout}); " + "; ".join(parts))
    model.load_state_dict(state, strict=False)
    report.loaded = len(state)
    report.reinitialised = sorted(k for k in own if k not in state)
    if any(k.startswith("au_head.") for k in report.reinitialised) and model.au_head is not None:
        report.messages.append("the checkpoint has no AU head: au_head starts fresh")
    return report
