"""Experiment configs: YAML files merged over the declared defaults into one typed, frozen ``Config``.

``load_config(CONFIG, overrides)``: ``CONFIG`` is a YAML path or the name of a shipped config
(``audfer/configs/<name>.yaml``: each base model's §4.3 recipe x DFEW / FERV39k / MAFW, and
``synthetic_small``). A config may name a parent with ``base:``; values merge over the defaults declared in
``audfer/config/schema.py``, then ``key=value`` overrides (dotted keys, YAML values) apply, then every value is checked
against its declaration. An unknown key anywhere is an error naming it: a typo never silently trains the default.
Code changes a loaded config one way only, ``with_values`` (the same dotted keys and checks as ``key=value``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from audfer.config.schema import RENAMED, Config, choices_of, renamed
from audfer.errors import AudferError, ConfigError
from audfer.files import load_yaml_text, read_yaml
from audfer.trust import CODE_KEYS, check_stored_config, in_package

__all__ = [
    "Config",
    "apply_overrides",
    "choices_of",
    "defaults",
    "dump_config",
    "load_config",
    "shipped_configs",
    "with_defaults",
    "with_values",
]


def shipped_configs() -> list[str]:
    """Names of the experiment configs shipped in ``audfer/configs`` (``audfer train --list``)."""
    folder = resources.files("audfer") / "configs"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def describe_shipped() -> str:
    """``audfer train --list``: each shipped config, whether it is a base repository's pipeline or the paper's run
    (``*_paper``), and the published code it follows (file and function)."""
    lines = []
    for name in shipped_configs():
        cfg = load_config(name)
        kind = "paper run" if name.endswith("_paper") else ("audfer" if name.startswith("synthetic") else "base repo")
        lines.append(f"{name:26s} {kind:9s} follows {cfg.follows or '-'}")
    return "\n".join(lines)


def _read_yaml(path: Any) -> dict[str, Any]:
    if isinstance(path, (str, Path)):
        data = read_yaml(path, "an experiment config (YAML)", ConfigError)
    else:  # a shipped config (an importlib resource)
        try:
            data = load_yaml_text(path.read_text(), str(path))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of options at the top level")
    return data


def defaults() -> dict[str, Any]:
    """Every option's declared default, in the plain YAML form."""
    return Config().to_dict()


def _resolve(name: str, relative_to: Path | None = None) -> Any:
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


def _merge(base: dict[str, Any], over: dict[str, Any], where: str, path: tuple[str, ...] = ()) -> dict[str, Any]:
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


def _chain(source: Any, seen: tuple[str, ...] = ()) -> list[tuple[object, dict[str, Any]]]:
    path = _resolve(str(source)) if not hasattr(source, "read_text") else source
    if str(path) in seen:
        raise ConfigError(f"{path}: config inherits from itself ({' -> '.join(map(str, seen))})")
    data = renamed(_read_yaml(path), where=f"config {Path(str(path)).name}")  # a former key: read, with a warning
    parent = data.pop("base", None)
    chain = []
    if parent is not None:
        rel = Path(str(path)).parent if isinstance(path, Path) else None
        chain = _chain(_resolve(str(parent), rel), seen + (str(path),))
    return chain + [(path, data)]


def _renamed_key(keys: list[str], where: str) -> list[str]:
    """A dotted key under its current name (``data.openface`` -> ``data.au_dir``, with a warning naming the new one)."""
    dotted = ".".join(keys[:2])
    if dotted in RENAMED:
        import warnings

        warnings.warn(f"{where}: {dotted} is deprecated; use {RENAMED[dotted]}", FutureWarning, stacklevel=3)
        return RENAMED[dotted].split(".") + keys[2:]
    return keys


def parse_override(text: str) -> tuple[list[str], object]:
    """``"au.lam=0.5"`` -> ``(["au", "lam"], 0.5)``: a dotted key and a YAML value (a former key under its current
    name, with a warning)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value (e.g. au.lam=0.5)")
    key, value = text.split("=", 1)
    try:
        parsed = load_yaml_text(value, f"override {text!r}") if value.strip() else None
    except AudferError as exc:  # a hostile value (aliases, depth): one line
        raise ConfigError(str(exc)) from None
    except yaml.YAMLError:
        parsed = value
    if isinstance(parsed, str) and _FLOAT.fullmatch(parsed.strip()):  # YAML 1.1 reads 3e-3 (no dot) as text
        parsed = float(parsed)
    return _renamed_key(key.strip().split("."), f"override {text!r}"), parsed


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _set(cfg: dict[str, Any], keys: list[str], value: object, where: str) -> dict[str, Any]:
    """``cfg`` with the dotted ``keys`` set to ``value`` (a copy; unknown keys are errors naming ``where``)."""
    if len(keys) > 2 and keys[:2] == ["model", "kwargs"]:  # one size option: keep the others (kwargs is a leaf
        kwargs = copy.deepcopy(dict(cfg["model"]["kwargs"] or {}))  # of the config files, replaced whole by a child)
        nested_kw: dict[str, Any] = kwargs
        for k in keys[2:-1]:
            nested_kw = nested_kw.setdefault(k, {})
        nested_kw[keys[-1]] = value
        keys, value = keys[:2], kwargs
    nested: dict[str, Any] = {keys[-1]: value}
    for k in reversed(keys[:-1]):
        nested = {k: nested}
    return _merge(cfg, nested, where)


def _as_dict(cfg: Config | Mapping[str, Any]) -> dict[str, Any]:
    return cfg.to_dict() if isinstance(cfg, Config) else copy.deepcopy(dict(cfg))


def apply_overrides(cfg: Config | Mapping[str, Any], overrides: Iterable[str]) -> Config:
    """``cfg`` with ``key=value`` overrides (dotted keys, YAML values) applied and every value checked."""
    data, sources = _as_dict(cfg), {}
    for text in overrides:
        keys, value = parse_override(text)
        data = _set(data, keys, value, f"override {text!r}")
        sources[".".join(keys[:2])] = f"override {text!r}"
    return Config.from_dict(data, sources)


def with_values(cfg: Config | Mapping[str, Any], values: Mapping[str, object], *, source: str) -> Config:
    """The one way code changes a loaded config (sweeps: ``{"data.fold": 2, "out": ...}``): the same dotted keys and
    merge as ``key=value`` overrides, then every value checked, errors naming ``source``."""
    data = _as_dict(cfg)
    values = {".".join(_renamed_key(k.split("."), source)): v for k, v in values.items()}
    for dotted, value in values.items():
        data = _set(data, dotted.split("."), value, f"{source} ({dotted}={value!r})")
    return Config.from_dict(data, {".".join(dotted.split(".")[:2]): source for dotted in values})


def _leaves(data: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and key != "kwargs":
            out += _leaves(value, dotted + ".")
        else:
            out.append(dotted)
    return out


def load_config(source: Any, overrides: Iterable[str] = ()) -> Config:
    """Defaults <- config chain (``base:``) <- ``key=value`` overrides, as a checked, frozen ``Config``.
    A bad value's error says where it came from: the defaults, a config file, or a command-line override."""
    cfg = defaults()
    sources = {k: "the defaults" for k in _leaves(cfg)}
    origin: dict[str, object] = {}  # option -> the file that set it
    for path, data in _chain(source):
        cfg = _merge(cfg, data, str(path))
        sources.update({k: f"config {Path(str(path)).name}" for k in _leaves(data)})
        origin.update({k: path for k in _leaves(data)})
    for text in overrides:
        keys, value = parse_override(text)
        cfg = _set(cfg, keys, value, f"override {text!r}")
        sources[".".join(keys[:2])] = f"override {text!r}"
        origin[".".join(keys[:2])] = None
    _check_taken_code(cfg, origin)
    if cfg["name"] is None:
        cfg["name"] = Path(str(source)).stem if not hasattr(source, "name") else Path(source.name).stem
    return Config.from_dict(cfg, sources)


def _check_taken_code(cfg: dict[str, Any], origin: Mapping[str, object]) -> None:
    """An experiment or study file taken from a model package (or the Hub cache) is a stored config: a
    ``model.name``, ``data.dataset`` or ``data.au_source`` naming code that such a file set is refused
    (``audfer.trust``) unless the user, not that file, set ``model.trust_pickle=true``."""

    def taken(key: str) -> bool:
        f = origin.get(key)
        return isinstance(f, (str, Path)) and in_package(f) is not None

    trusted = bool(cfg["model"].get("trust_pickle")) and not taken("model.trust_pickle")
    for key in CODE_KEYS:  # the options that may name code: model.name, data.dataset, data.au_source
        if taken(key):
            section, name = key.split(".")
            part = cfg["model"] if key == "model.name" else {name: cfg[section].get(name)}  # with model.kwargs to name
            check_stored_config({section: part}, str(origin[key]), trusted=trusted, error=ConfigError)


def with_defaults(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``cfg`` with every option it lacks taken from the defaults and every renamed option under its current name
    (a run config saved by an older audfer)."""

    def fill(base: dict[str, Any], have: Mapping[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(dict(have))
        for key, value in base.items():
            if key not in out:
                out[key] = copy.deepcopy(value)
            elif isinstance(value, dict) and key != "kwargs" and isinstance(out[key], Mapping):
                out[key] = fill(value, out[key])
        return out

    return fill(defaults(), renamed(cfg))


def dump_config(cfg: Config) -> str:
    """The YAML a run folder keeps as ``config.yaml`` (loads back to the same ``Config``)."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
