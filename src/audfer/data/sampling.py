"""Temporal sampling: which frame indices a clip gives, by behaviour; each model picks one (``DFERModel.sampler``).

All functions take the clip's frame count ``n`` and return ``num`` indices into ``[0, n)``; a clip
shorter than needed is padded by repeating frames (indices repeat, never go out of range).
``rng=None`` means test time: deterministic (unlike the official M3DFEL code, which also
randomises at test time).

Nothing here knows a model: a model's class declares its recipe (``sampler``, a behaviour of ``BEHAVIOURS``, and the
options it fixes, ``sampler_options``) and ``data.sampling`` names a recipe by the model's registered name, resolved
through the model registry (``resolve_sampler``), or a sampler registered by name (``uniform``, ``register_sampler``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import numpy as np

from audfer.errors import ConfigError, InputError

Sampler = Callable[..., np.ndarray]


def _check(n: int) -> None:
    if n < 1:
        raise ConfigError(f"a clip needs at least one frame, got {n}")


def offset_indices(n: int, num: int = 16, rng: np.random.Generator | None = None) -> np.ndarray:
    """An even grid with an offset per frame: frame_i = int(n * i / num) + offset_i, clamped to n - 1.

    As M3DFEL's official loader: Tencent/TFace ``attribute/M3DFEL/datasets/dataset_DFEW.py``, ``DFEWDataset.__getitem__``
    draws ``int(random.random() * num_frames)`` *for every frame* (``args.random_sample``), so each of
    the ``num`` frames has its own offset in [0, num). One shared offset would shift the whole clip
    (an offset of 15 on a 16-frame clip gives 16 copies of its last frame). At test the official code
    randomises too; audfer is deterministic and takes the offset at the centre of the training offsets,
    ``(num - 1) // 2`` (7 for 16 frames: their mean is 7.5), so test clips sit where training clips sit on
    average (offset 0 would show the model frames 7.5 frames earlier than it was trained on).

    On a clip of only ``num`` frames (DFEW's ``clip_224x224_16f``, read by the authors' AU copy) the formula
    makes about 53 % of the sampled frames the clip's last: the config check refuses that pairing unless
    ``data.reproduce_bugs`` names the bug (``Config.check``)."""
    _check(n)
    base = (n * np.arange(num)) // num
    offset = rng.integers(0, num, size=num) if rng is not None else (num - 1) // 2
    return np.minimum(base + offset, n - 1)


def segment_indices(
    n: int, segments: int = 8, per_segment: int = 2, rng: np.random.Generator | None = None
) -> np.ndarray:
    """``segments`` draws of ``per_segment`` consecutive frames each, as Former-DFER's loader does it (zengqunzhao/Former-DFER ``dataloader/dataset_DFEW.py``,
    ``VideoDataset._get_train_indices``, ``_get_test_indices`` and ``get``; ``num_segments=8, duration=2``).

    Training: ``avg = (n - per_segment + 1) // segments``; offsets ``i * avg + randint(avg)`` when ``avg > 0``
    (so only the first ``segments * avg + per_segment - 1`` frames are ever used: 73 of 77), else, when
    ``n > segments``, ``segments`` sorted draws from ``[0, n - per_segment + 1)``, else all 0. Test: offsets
    ``int(tick / 2 + tick * i)`` with ``tick = (n - per_segment + 1) / segments`` when ``n > segments +
    per_segment - 1``, else all 0. Each offset gives ``per_segment`` consecutive frames, the frame index
    advancing only while it is below ``n - 1``. (The official list files keep clips under 16 frames, DFEW
    set 1's shortest has 11, and so does audfer: they sample as the rules above say.)"""
    _check(n)
    span = n - per_segment + 1
    if rng is not None:
        avg = span // segments
        if avg > 0:
            offsets = np.arange(segments) * avg + rng.integers(0, avg, size=segments)
        elif n > segments:
            offsets = np.sort(rng.integers(0, max(span, 1), size=segments))
        else:
            offsets = np.zeros(segments, dtype=np.int64)
    elif n > segments + per_segment - 1:
        tick = span / float(segments)
        offsets = np.array([int(tick / 2.0 + tick * x) for x in range(segments)])
    else:
        offsets = np.zeros(segments, dtype=np.int64)
    out: list[int] = []
    for start in offsets:
        p = int(start)
        for _ in range(per_segment):
            out.append(p)
            if p < n - 1:
                p += 1
    return np.asarray(out, dtype=np.int64)


def segmented_indices(
    n: int, num: int = 16, rng: np.random.Generator | None = None, per_segment: int = 2
) -> np.ndarray:
    """``segment_indices`` for a ``num``-frame input: ``num / per_segment`` segments of ``per_segment`` frames
    (Former-DFER's 16 = 8 segments x 2)."""
    if per_segment < 1 or num % per_segment:
        raise ConfigError(f"segment sampling: {num} frames is not a multiple of {per_segment} per segment")
    return segment_indices(n, num // per_segment, per_segment, rng)


def strided_indices(
    n: int, num: int = 16, stride: int = 4, rng: np.random.Generator | None = None, view: int = 0, views: int = 1
) -> np.ndarray:
    """Every ``stride``-th frame, as MAE-DFER's loader does it (sunlicai/MAE-DFER ``kinetics.py``, ``VideoClsDatasetFrame.load_video``
    and ``__getitem__``; VideoMAE's sampling).

    Training, window ``w = num * stride``: a clip longer than ``w`` gives ``num`` frames evenly spaced
    (``linspace``) over a window ``[end - w, end)`` whose end is drawn from ``[w, n)``; a clip of at most
    ``w`` frames gives ``n // stride`` frames spread over the clip (``linspace(0, n, n // stride)``) and
    then its last frame repeated up to ``num`` (a 16-frame clip at stride 4: frames 0, 5, 10, 15 and
    twelve more 15s), exactly as the official loader pads.

    Test: every ``stride``-th frame (the last repeated up to ``num``), then ``views`` evenly spaced
    windows of ``num`` of them; ``view`` picks one (``temporal_start = int(view * step)``). With one view
    the official code divides by zero; audfer takes the centre window."""
    _check(n)
    if stride < 1:
        raise ConfigError(f"strided sampling: stride must be at least 1, got {stride}")
    if rng is not None:
        window = num * stride
        if n <= window:
            k = n // stride
            idx = np.concatenate((np.linspace(0, n, num=k), np.full(max(num - k, 0), float(n))))
            return np.clip(idx, 0, n - 1).astype(np.int64)
        end = int(rng.integers(window, n))
        start = end - window
        return np.clip(np.linspace(start, end, num=num), start, end - 1).astype(np.int64)
    listed = list(range(0, n, stride))
    listed += [listed[-1]] * max(num - len(listed), 0)
    every = np.asarray(listed, dtype=np.int64)
    if views > 1:
        step = max((len(every) - num) / (views - 1), 0.0)
        first = int(view * step)
    else:
        first = (len(every) - num) // 2
    return every[first : first + num]


def uniform_indices(n: int, num: int = 16, rng: np.random.Generator | None = None) -> np.ndarray:
    """``num`` frames spread evenly over the clip (centres of equal segments; jittered in training)."""
    _check(n)
    pos = (np.arange(num) + (rng.random(num) if rng is not None else 0.5)) * n / num
    return np.minimum(pos.astype(int), n - 1)


def listed_indices(n: int, num: int = 16, rng: np.random.Generator | None = None) -> np.ndarray:
    """Every frame of the clip once, in the order the folder lists them, at train and at test (``rng`` unused).

    What the authors' Former-DFER AU copy feeds (Cross-Innovation-Lab/AU-DFER ``Former-DFER_AU/dataloader/
    dataset_DFEW.py``, ``VideoDataset.get``): it computes the segment offsets but ignores them, loading every file
    ``glob`` lists, each once, in that order. It is the sampler of ``data.reproduce_bugs=[unsorted-frames]`` (the
    listing order comes from ``frame_paths(..., "listing")``). Its clips are the 16-frame folder's; a clip of any
    other length cannot make a ``num``-frame input (the copy's batch would not stack): an error."""
    _check(n)
    if n != num:
        raise InputError(
            f"data.reproduce_bugs=[unsorted-frames] feeds every listed frame of a clip (the Former-DFER AU copy's "
            f"get), so each clip needs exactly {num} frames; got a clip of {n} (use the 16-frame folder, "
            f"data.frames=clip_224x224_16f)"
        )
    return np.arange(n, dtype=np.int64)


#: The samplers by behaviour, each with the signature ``sampler(n, num, rng=None, **options)``: a model picks one by
#: name (``DFERModel.sampler``), with the options it fixes (``DFERModel.sampler_options``); ``register_sampler`` adds.
BEHAVIOURS: dict[str, Sampler] = {
    "offsets": offset_indices,
    "segments": segmented_indices,
    "strided": strided_indices,
    "uniform": uniform_indices,
}

#: Samplers a run cannot name in ``data.sampling`` but a reproduced bug selects (``engine.datamodule.sampling_of``).
BUG_SAMPLERS: dict[str, Sampler] = {"listed": listed_indices}

_BY_NAME: list[str] = ["uniform"]  # the behaviours ``data.sampling`` may name directly


def _recipes() -> dict[str, Any]:
    """The registered models that declare a recipe of their own (their class's ``sampling`` is the registered
    name), in registration order: name -> class."""
    import audfer.models  # noqa: F401  (the shipped models register themselves on import)
    from audfer.models.registry import model_entries

    out: dict[str, Any] = {}
    for entry in model_entries():
        if getattr(entry.builder, "sampling", None) == entry.name and entry.name not in _BY_NAME:
            out.setdefault(entry.name, entry.builder)
    return out


def resolve_sampler(kind: str) -> tuple[Sampler, dict[str, Any]]:
    """The sampler ``kind`` names and the options it fixes: a sampler registered by name (``uniform``,
    ``register_sampler``) as it is; a registered model's name, the behaviour its class declares (``sampler``) with
    its ``sampler_options``; a reproduced bug's (``listed``)."""
    if kind in BUG_SAMPLERS:
        return BUG_SAMPLERS[kind], {}
    if kind in _BY_NAME:
        return BEHAVIOURS[kind], {}
    model = _recipes().get(kind)
    if model is None:
        raise ConfigError(f"unknown sampling {kind!r}; expected one of {', '.join(SAMPLERS)}")
    behaviour = getattr(model, "sampler", "uniform")
    if behaviour not in BEHAVIOURS:
        raise ConfigError(
            f"model {kind!r} declares sampler {behaviour!r}; expected one of {', '.join(BEHAVIOURS)} "
            f"(audfer.data.sampling.BEHAVIOURS, or one added with register_sampler)"
        )
    return BEHAVIOURS[behaviour], dict(getattr(model, "sampler_options", {}))


class _Samplers(MutableMapping[str, Sampler]):
    """What ``data.sampling`` may name (``SAMPLERS``): every registered model that declares its own recipe, by its
    name, in registration order, then the samplers registered by name. Read at each look-up, so a model or a sampler
    registered later is a choice; a recipe is the model's and cannot be set or deleted here."""

    def __iter__(self) -> Iterator[str]:
        return iter([*_recipes(), *_BY_NAME])

    def __len__(self) -> int:
        return len(list(iter(self)))

    def __getitem__(self, kind: str) -> Sampler:
        if kind in BUG_SAMPLERS or kind not in self:
            raise KeyError(kind)
        sampler, fixed = resolve_sampler(kind)
        return functools.partial(sampler, **fixed) if fixed else sampler

    def __contains__(self, kind: object) -> bool:
        return kind in _BY_NAME or kind in _recipes()

    def __setitem__(self, name: str, sampler: Sampler) -> None:
        register_sampler(name, sampler)

    def __delitem__(self, name: str) -> None:
        if name not in _BY_NAME or name == "uniform":
            raise KeyError(name)
        _BY_NAME.remove(name)
        del BEHAVIOURS[name]


#: ``data.sampling``'s choices (the config's ``Choice`` reads them at each check).
SAMPLERS: MutableMapping[str, Sampler] = _Samplers()


def register_sampler(name: str, sampler: Sampler) -> None:
    """Add a temporal sampler ``sampler(n, num, rng=None, **options)`` -> ``num`` indices into ``[0, n)`` (``rng``
    None at test: deterministic), usable as ``data.sampling: <name>`` and as a model's ``sampler``. Its keyword
    options named ``stride``, ``view`` and ``views`` receive ``data.stride`` and the test view (``data.test_views``)."""
    if not callable(sampler):
        raise ConfigError(f"register_sampler({name!r}): expected a function, got {type(sampler).__name__}")
    BEHAVIOURS[name] = sampler
    if name not in _BY_NAME:
        _BY_NAME.append(name)


def sampler_options(kind: str) -> frozenset[str]:
    """The keyword options sampler ``kind`` takes beyond the clip length, frame count, rng and the options its model
    fixes, read from its signature (the strided sampler: stride, view, views; the others: none): the engine passes
    ``data.stride`` and ``data.test_views`` only to a sampler that takes them, without naming any sampler."""
    sampler, fixed = resolve_sampler(kind)
    if kind in BUG_SAMPLERS:
        return frozenset()
    params = inspect.signature(sampler).parameters
    return frozenset(params) - {"n", "num", "rng", "segments", "per_segment", *fixed}


def sample_indices(
    kind: str, n: int, num: int = 16, rng: np.random.Generator | None = None, **kwargs: int
) -> np.ndarray:
    """Indices of sampler ``kind`` (a registered model's recipe, ``uniform``, a registered sampler, or a bug's
    ``listed``) for a clip of ``n`` frames; ``kwargs`` go to the sampler beside the options its model fixes."""
    if kind in BUG_SAMPLERS:
        return BUG_SAMPLERS[kind](n, num, rng=rng)
    sampler, fixed = resolve_sampler(kind)
    return sampler(n, num, rng=rng, **{**fixed, **kwargs})
