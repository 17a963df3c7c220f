"""Experiment configs: one documented source of defaults, experiment files that set what differs.

``load_config(CONFIG, overrides)``: ``CONFIG`` is a YAML path or the name of a shipped config
(``audfer/configs/<name>.yaml``: each base model's §4.3 recipe x DFEW / FERV39k / MAFW, and
``synthetic_small``). A config may name a parent with ``base:``; values merge over
``configs/defaults.yaml``, then ``key=value`` overrides (dotted keys, YAML values) apply. An unknown
key anywhere is an error naming it: a typo never silently trains the default.
"""

from __future__ import annotations

import copy
import re
from importlib import resources
from pathlib import Path

import yaml

from ..data.sampling import SAMPLERS
from ..errors import ConfigError

CHOICES = {
    ("data", "dataset"): ("dfew", "ferv39k", "mafw", "list", "synthetic"),
    ("au", "strategy"): ("none", "global", "distinct", "minor"),
    ("optim", "name"): ("adamw", "sgd"),
    ("optim", "scheduler"): ("cosine", "timm-cosine", "step", "none"),
    ("train", "selection"): ("last", "best-val", "best-test"),
    ("train", "monitor"): ("war", "uar"),
    ("data", "on_missing"): ("raise", "skip"),
    ("data", "on_bad_frame"): ("raise", "skip"),
    ("data", "au_source"): ("auto", "openface", "pyfeat", "libreface", "table"),
    ("data", "au_allow_mixed"): (True, False),
    ("train", "accelerator"): ("auto", "cpu", "gpu", "cuda", "mps"),
    ("train", "precision"): ("32-true", "32", "64-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true"),
}


def shipped_configs() -> list[str]:
    folder = resources.files("audfer") / "configs"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml") and p.name != "defaults.yaml")


def _read_yaml(path) -> dict:
    try:
        data = yaml.safe_load((Path(path) if isinstance(path, str) else path).read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of options at the top level")
    return data


def defaults() -> dict:
    return _read_yaml(resources.files("audfer") / "configs" / "defaults.yaml")


def _resolve(name: str, relative_to: Path | None = None):
    """A config path, or a shipped config's name (``m3dfel_dfew``)."""
    for candidate in ([relative_to / name, relative_to / f"{name}.yaml"] if relative_to else []) + [Path(name)]:
        if candidate.is_file():
            return candidate
    shipped = resources.files("audfer") / "configs" / f"{name}.yaml"
    if shipped.is_file():
        return shipped
    raise ConfigError(
        f"config {name!r} not found: not a file, nor one of the shipped configs ({', '.join(shipped_configs())})"
    )


def _merge(base: dict, over: dict, where: str, path: tuple[str, ...] = ()) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if key not in base:
            dotted = ".".join(path + (str(key),))
            raise ConfigError(f"{where}: unknown option {dotted!r}; expected one of {', '.join(map(str, base))}")
        if isinstance(base[key], dict) and key != "kwargs":
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: option {'.'.join(path + (key,))!r} must be a mapping")
            out[key] = _merge(base[key], value, where, path + (key,))
        else:
            out[key] = copy.deepcopy(value)
    return out


def _chain(source, seen: tuple = ()) -> list[tuple[object, dict]]:
    path = _resolve(str(source)) if not hasattr(source, "read_text") else source
    if str(path) in seen:
        raise ConfigError(f"{path}: config inherits from itself ({' -> '.join(map(str, seen))})")
    data = _read_yaml(path)
    parent = data.pop("base", None)
    chain = []
    if parent is not None:
        rel = Path(str(path)).parent if isinstance(path, Path) else None
        chain = _chain(_resolve(str(parent), rel), seen + (str(path),))
    return chain + [(path, data)]


def parse_override(text: str) -> tuple[list[str], object]:
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value (e.g. au.lam=0.5)")
    key, value = text.split("=", 1)
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError:
        parsed = value
    if isinstance(parsed, str) and _FLOAT.fullmatch(parsed.strip()):  # YAML 1.1 reads 3e-3 (no dot) as text
        parsed = float(parsed)
    return key.strip().split("."), parsed


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def apply_overrides(cfg: dict, overrides) -> dict:
    """``key=value`` overrides (dotted keys, YAML values) merged over ``cfg``; unknown keys are errors."""
    for text in overrides:
        keys, value = parse_override(text)
        cfg = _set(cfg, keys, value, f"override {text!r}")
    return cfg


def with_values(cfg: dict, values: dict[str, object], *, source: str) -> dict:
    """The one way code changes a loaded config (sweeps: ``{"data.fold": 2, "out": ...}``): the same dotted keys and
    merge as ``key=value`` overrides, then every value checked (``check_config``), errors naming ``source``."""
    for dotted, value in values.items():
        cfg = _set(cfg, dotted.split("."), value, f"{source} ({dotted}={value!r})")
    check_config(cfg, {dotted: source for dotted in values})
    return cfg


def _set(cfg: dict, keys: list[str], value: object, where: str) -> dict:
    """``cfg`` with the dotted ``keys`` set to ``value`` (a copy; unknown keys are errors naming ``where``)."""
    if len(keys) > 2 and keys[:2] == ["model", "kwargs"]:  # one size option: keep the others (kwargs is a leaf
        kwargs = dict(cfg["model"]["kwargs"] or {})  # of the config files, replaced whole by a child config)
        nested_kw: dict = kwargs
        for k in keys[2:-1]:
            nested_kw = nested_kw.setdefault(k, {})
        nested_kw[keys[-1]] = value
        keys, value = keys[:2], kwargs
    nested: dict = {keys[-1]: value}
    for k in reversed(keys[:-1]):
        nested = {k: nested}
    return _merge(cfg, nested, where)


def _leaves(data: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and key != "kwargs":
            out += _leaves(value, dotted + ".")
        else:
            out.append(dotted)
    return out


def load_config(source, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """Defaults <- config chain (``base:``) <- ``key=value`` overrides; checked for unknown keys and values.
    A bad value's error says where it came from: defaults.yaml, a config file, or a command-line override."""
    cfg = defaults()
    sources = {k: "defaults.yaml" for k in _leaves(cfg)}
    for path, data in _chain(source):
        cfg = _merge(cfg, data, str(path))
        sources.update({k: f"config {Path(str(path)).name}" for k in _leaves(data)})
    for text in overrides:
        cfg = apply_overrides(cfg, [text])
        keys, _ = parse_override(text)
        sources[".".join(keys)] = f"override {text!r}"
    if cfg["name"] is None:
        cfg["name"] = Path(str(source)).stem if not hasattr(source, "name") else Path(source.name).stem
    check_config(cfg, sources)
    return cfg


def _num(lo=None, hi=None, *, integer=False, lo_open=False, hi_open=False, none=False):
    """A rule: (check, what is allowed) for a number (never a bool or a string) in a range."""
    import math

    noun = "an integer" if integer else "a number"
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo:g}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi:g}")
    want = noun + (" " + " and ".join(parts) if parts else "") + (" or null" if none else "")

    def ok(v) -> bool:
        if v is None:
            return none
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
            return False
        if not math.isfinite(v):
            return False
        if lo is not None and (v <= lo if lo_open else v < lo):
            return False
        return not (hi is not None and (v >= hi if hi_open else v > hi))

    return ok, want


def _text(none=True):
    return (lambda v: (v is None and none) or (isinstance(v, str) and v.strip() != "")), "a text value" + (
        " or null" if none else ""
    )


_BOOL = (lambda v: isinstance(v, bool), "true or false")


def _pair(lo, hi):
    return (
        lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(_num(lo, hi)[0](x) for x in v) and v[0] <= v[1],
        f"two numbers [a, b] with {lo:g} <= a <= b <= {hi:g}",
    )


#: Type and range of every option of defaults.yaml that is not a choice (``CHOICES``); checked by ``check_config``.
RULES = {
    ("data", "fold"): _num(1, 5, integer=True),
    ("data", "classes"): ((lambda v: v in (7, 11) and not isinstance(v, bool)), "7 or 11"),
    ("data", "min_au_coverage"): _num(0, 1),
    ("data", "stride"): _num(1, integer=True),
    ("data", "test_views"): _num(1, 16, integer=True),
    ("data", "num_workers"): _num(0, 256, integer=True),
    ("data", "jitter"): _num(0, 1),
    ("data", "hue"): _num(0, 0.5),
    ("data", "crop_scale"): _pair(0, 1),
    ("data", "erasing"): _num(0, 1),
    ("data", "root"): _text(),
    ("data", "frames"): _text(),
    ("data", "train_list"): _text(),
    ("data", "test_list"): _text(),
    ("data", "au_labels"): _text(),
    ("data", "openface"): _text(),
    ("data", "au_mapping"): _text(),
    ("data", "cache"): _text(),
    ("data", "sampling"): (
        (lambda v: v is None or v in SAMPLERS),
        f"one of {', '.join(SAMPLERS)} or null (the model's own)",
    ),
    ("au", "lam"): _num(0, 1),
    ("au", "scale"): _num(0, lo_open=True),
    ("au", "allow_test_overlap"): _BOOL,
    ("au", "knowledge"): _text(none=False),
    ("au", "pos_weights"): _text(none=False),
    ("optim", "lr"): _num(0),
    ("optim", "weight_decay"): _num(0),
    ("optim", "eps"): _num(0, lo_open=True),
    ("optim", "betas"): (
        (lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(_num(0, 1, hi_open=True)[0](x) for x in v)),
        "two numbers in [0, 1)",
    ),
    ("optim", "momentum"): _num(0, 1),
    ("optim", "layer_decay"): _num(0, 1, lo_open=True, none=True),
    ("optim", "no_decay_norms"): _BOOL,
    ("optim", "warmup_epochs"): _num(0),
    ("optim", "warmup_lr"): _num(0),
    ("optim", "min_lr"): _num(0),
    ("optim", "step_size"): _num(1, integer=True),
    ("optim", "gamma"): _num(0, 1, lo_open=True),
    ("optim", "label_smoothing"): _num(0, 1, hi_open=True),
    ("optim", "mixup"): _num(0),
    ("optim", "cutmix"): _num(0),
    ("optim", "lr_scale"): ((lambda v: v in (None, "batch256")), "null or batch256"),
    ("train", "epochs"): _num(1, integer=True),
    ("train", "batch_size"): _num(1, integer=True),
    ("train", "eval_batch_size"): _num(1, integer=True, none=True),
    ("train", "seed"): _num(0, integer=True),
    ("train", "devices"): _num(1, integer=True),
    ("train", "val_share"): _num(0, 1, lo_open=True, hi_open=True),
    ("train", "threads"): _num(1, 1024, integer=True, none=True),
    ("train", "progress"): _BOOL,
    ("train", "deterministic"): _BOOL,
    ("train", "limit_train_batches"): _num(0, lo_open=True, none=True),
    ("train", "strategy"): _text(none=False),
    ("model", "trust_pickle"): _BOOL,
    ("model", "pretrained"): _text(),
    ("model", "official_init"): _text(),
    ("model", "kwargs"): ((lambda v: isinstance(v, dict)), "a mapping of size options"),
    ("model", "name"): _text(none=False),
}


def _where(sources: dict | None, dotted: str) -> str:
    return f" (from {sources[dotted]})" if sources and dotted in sources else ""


def check_config(cfg: dict, sources: dict | None = None) -> None:
    """Every value's type, range and choice (``CHOICES``, ``RULES``), then the cross-option rules. Errors name
    the key, the value and, when known, where it came from (defaults, which config file, or the command line)."""
    for (section, key), allowed in CHOICES.items():
        if cfg[section][key] not in allowed or isinstance(cfg[section][key], bool) != isinstance(allowed[0], bool):
            raise ConfigError(
                f"config: {section}.{key} = {cfg[section][key]!r}{_where(sources, f'{section}.{key}')}; "
                f"expected one of {', '.join(map(str, allowed))}"
            )
    for (section, key), (ok, want) in RULES.items():
        if section in cfg and key in cfg[section] and not ok(cfg[section][key]):
            raise ConfigError(
                f"config: {section}.{key} = {cfg[section][key]!r}{_where(sources, f'{section}.{key}')}; expected {want}"
            )
    for key in ("name", "out"):
        if cfg.get(key) is not None and not (isinstance(cfg[key], str) and cfg[key].strip()):
            raise ConfigError(f"config: {key} = {cfg[key]!r}{_where(sources, key)}; expected a text value or null")
    if cfg["data"]["dataset"] == "mafw" and cfg["data"]["classes"] == 11 and cfg["au"]["strategy"] != "none":
        raise ConfigError(
            "config: the AU knowledge covers the 7 basic expressions; with data.classes=11 set au.strategy=none"
        )
    d = cfg["data"]
    if d["au_source"] == "table" and not d["au_mapping"]:
        raise ConfigError("config: data.au_source = 'table' needs data.au_mapping (a YAML naming each AU column)")
    if d["au_mapping"] and d["au_source"] not in ("auto", "table"):
        raise ConfigError(f"config: data.au_mapping is for data.au_source=table, not {d['au_source']!r}")
    if d["randaugment"] is not None:
        from ..data.transforms import parse_randaugment

        try:
            parse_randaugment(d["randaugment"])
        except ValueError as exc:
            raise ConfigError(f"config: data.{exc}") from None
    if d["dataset"] == "list" and d["class_order"] is None:
        raise ConfigError(
            "config: data.class_order is not set: a list dataset must say what its label ids mean "
            "(dfew7, mafw11 or the class names in id order)"
        )
    if not set(cfg["train"]["loggers"] or []) <= {"csv", "tensorboard"}:
        raise ConfigError(f"config: train.loggers = {cfg['train']['loggers']!r}; expected a list of csv, tensorboard")


def with_defaults(cfg: dict) -> dict:
    """``cfg`` with every option it lacks taken from the defaults (a run config saved by an older audfer)."""

    def fill(base: dict, have: dict) -> dict:
        out = copy.deepcopy(have)
        for key, value in base.items():
            if key not in out:
                out[key] = copy.deepcopy(value)
            elif isinstance(value, dict) and key != "kwargs" and isinstance(out[key], dict):
                out[key] = fill(value, out[key])
        return out

    return fill(defaults(), cfg)


def dump_config(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False)
