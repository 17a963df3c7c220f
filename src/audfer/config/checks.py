"""Value checks of the option declarations (``audfer.config.schema``): each ``Check`` says whether a value is allowed
and, in words, what is (``want``), for the loader's errors, the CLI's choices and the docs; ``opt`` declares a
field; values are frozen (lists become tuples, mappings read-only) so a config is immutable all the way down."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import field
from typing import Any

from audfer.errors import ConfigError

# ----------------------------------------------------------------------------------------------- value checks


class Check:
    """What a value may be: ``ok(value)`` and the words for it (``want``); ``choices`` when it is a closed set."""

    want = "any value"
    choices: tuple[Any, ...] | None = None

    def ok(self, value: Any) -> bool:  # pragma: no cover - every subclass overrides
        """Whether ``value`` is allowed."""
        return True


def is_number(v: Any) -> bool:
    """A finite int or float, not a bool."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class Num(Check):
    """A number (never a bool or text) in a range; ``integer``: an int; ``none``: null allowed."""

    def __init__(
        self,
        lo: float | None = None,
        hi: float | None = None,
        *,
        integer: bool = False,
        lo_open: bool = False,
        hi_open: bool = False,
        none: bool = False,
    ) -> None:
        self.lo, self.hi, self.integer, self.lo_open, self.hi_open, self.none = lo, hi, integer, lo_open, hi_open, none
        parts = [f"{'>' if lo_open else '>='} {lo:g}"] if lo is not None else []
        parts += [f"{'<' if hi_open else '<='} {hi:g}"] if hi is not None else []
        noun = "an integer" if integer else "a number"
        self.want = noun + (" " + " and ".join(parts) if parts else "") + (" or null" if none else "")

    def ok(self, v: Any) -> bool:
        if v is None:
            return self.none
        if not is_number(v) or (self.integer and not isinstance(v, int)):
            return False
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return not (self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi))


class Choice(Check):
    """One of a closed set (``True``/``False`` never stand in for ``1``/``0`` or the reverse). ``registry``: a
    mapping whose keys are the set, read at each check (``SAMPLERS``: a sampler registered later is a choice)."""

    def __init__(
        self,
        *values: Any,
        none: bool = False,
        registry: Mapping[str, Any] | Callable[[], Iterable[Any]] | None = None,
    ) -> None:
        self._values, self.registry, self.none = values, registry, none

    @property
    def choices(self) -> tuple[Any, ...]:  # type: ignore[override]
        """The allowed values (a registry's keys, or what a function of the registry returns, read now)."""
        if self.registry is None:
            return self._values
        return tuple(self.registry() if callable(self.registry) else self.registry)

    @property
    def want(self) -> str:  # type: ignore[override]
        """What is allowed, in words."""
        return "one of " + ", ".join(map(str, self.choices)) + (" or null" if self.none else "")

    def ok(self, v: Any) -> bool:
        if v is None:
            return self.none
        return any(v == c and isinstance(v, bool) == isinstance(c, bool) for c in self.choices)


class UpTo(Num):
    """An integer from ``lo`` up to a bound read at each check (``hi_of()``: ``data.fold`` goes up to the most folds a
    registered dataset declares, so a dataset registered later widens it)."""

    def __init__(self, lo: int, hi_of: Callable[[], int]) -> None:
        self.lo, self.hi_of, self.integer, self.lo_open, self.hi_open, self.none = lo, hi_of, True, False, False, False

    @property
    def hi(self) -> int:  # type: ignore[override]
        """The bound, read now."""
        return self.hi_of()

    @property
    def want(self) -> str:  # type: ignore[override]
        """What is allowed, in words."""
        return f"an integer >= {self.lo:g} and <= {self.hi:g}"


class Registered(Check):
    """A name a registry holds, read at each check (``names()``: the choices), or a user's ``package.module:name``
    that ``lookup`` imports and checks (its ``ConfigError`` says what is wrong with it)."""

    def __init__(self, key: str, names: Callable[[], Iterable[str]], lookup: Callable[[str], Any]) -> None:
        self.key, self.names, self.lookup = key, names, lookup

    @property
    def choices(self) -> tuple[Any, ...]:  # type: ignore[override]
        """The registered names, read now."""
        return tuple(self.names())

    @property
    def want(self) -> str:  # type: ignore[override]
        """What is allowed, in words."""
        return "one of " + ", ".join(self.choices) + " or package.module:name (your own)"

    def ok(self, v: Any) -> bool:
        if not isinstance(v, str):
            return False
        if v in self.choices:
            return True
        if ":" in v:
            try:
                self.lookup(v)
            except ConfigError as exc:
                raise ConfigError(f"config: {self.key} = {v!r}{source_note(None, self.key)}; {exc}") from None
            return True
        return False


class Flag(Check):
    """true or false (never 0/1 or text)."""

    want = "true or false"

    def ok(self, v: Any) -> bool:
        return isinstance(v, bool)


class Text(Check):
    """A non-empty text value; ``presets``: named values with a meaning (the rest is a path or a name)."""

    def __init__(self, *, none: bool = True, presets: tuple[str, ...] = (), what: str = "a text value") -> None:
        self.none, self.presets = none, presets
        self.want = what + (" or null" if none else "")

    def ok(self, v: Any) -> bool:
        return (v is None and self.none) or (isinstance(v, str) and v.strip() != "")


class Pair(Check):
    """Two numbers ``[a, b]`` in a range; ``ordered``: a <= b."""

    def __init__(self, lo: float, hi: float, *, hi_open: bool = False, ordered: bool = True) -> None:
        self.item, self.ordered = Num(lo, hi, hi_open=hi_open), ordered
        self.want = (
            f"two numbers [a, b] with {lo:g} <= a <= b <= {hi:g}"
            if ordered
            else f"two numbers in [{lo:g}, {hi:g}{')' if hi_open else ']'}"
        )

    def ok(self, v: Any) -> bool:
        return (
            isinstance(v, (list, tuple))
            and len(v) == 2
            and all(self.item.ok(x) for x in v)
            and (not self.ordered or v[0] <= v[1])
        )


class Items(Check):
    """A list of values each passing ``item`` (``unique``: no value twice, text compared without case and outer
    spaces), or null when ``none``."""

    def __init__(
        self, item: Check, *, none: bool = True, min_len: int = 0, what: str = "", unique: bool = False
    ) -> None:
        self.item, self.none, self.min_len, self.unique = item, none, min_len, unique
        self.choices = item.choices
        self.want = what or f"a list of {item.want.replace('one of', 'values among')}" + (" or null" if none else "")
        if unique:
            self.want += ", each once"

    def ok(self, v: Any) -> bool:
        if v is None:
            return self.none
        if not (isinstance(v, (list, tuple)) and len(v) >= self.min_len and all(self.item.ok(x) for x in v)):
            return False
        keys = [x.strip().lower() if isinstance(x, str) else x for x in v]
        return not self.unique or len(set(map(repr, keys))) == len(keys)


class AnyOf(Check):
    """Passes when one of ``checks`` does."""

    def __init__(self, *checks: Check, what: str) -> None:
        self.checks, self.want = checks, what

    def ok(self, v: Any) -> bool:
        return any(c.ok(v) for c in self.checks)


class Kwargs(Check):
    """A mapping of option names to values (``model.kwargs``; its keys and values are checked against the model by ``check_model``)."""

    want = "a mapping of size options (name: value)"

    def ok(self, v: Any) -> bool:
        return isinstance(v, Mapping) and all(isinstance(k, str) for k in v)


# ----------------------------------------------------------------------------------------------- frozen values


class FrozenMap(Mapping[str, Any]):
    """A read-only mapping (``model.kwargs``): reads like a dict, cannot be changed, pickles."""

    __slots__ = ("_data",)
    _data: dict[str, Any]

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_data", {k: freeze(v) for k, v in (data or {}).items()})

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, repr(v)) for k, v in self._data.items())))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and dict(self.items()) == dict(other.items())

    def __repr__(self) -> str:
        return f"FrozenMap({self._data!r})"

    def __reduce__(self) -> tuple[type[FrozenMap], tuple[Any]]:
        return FrozenMap, (thaw(self),)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("FrozenMap is read-only")


def freeze(v: Any) -> Any:
    """Lists as tuples and mappings as read-only ``FrozenMap``s, all the way down."""
    if isinstance(v, list | tuple):
        return tuple(freeze(x) for x in v)
    if isinstance(v, Mapping) and not isinstance(v, FrozenMap):
        return FrozenMap(v)
    return v


def thaw(v: Any) -> Any:
    """The plain YAML form: tuples -> lists, mappings -> dicts."""
    if isinstance(v, list | tuple):
        return [thaw(x) for x in v]
    if isinstance(v, Mapping):
        return {k: thaw(x) for k, x in v.items()}
    return v


def opt(default: Any, doc: str, check: Check, *, incidental: str | None = None) -> Any:
    """A declared option: its default, its meaning (one line of the docs) and what it may be. ``incidental``: the
    option does not change a run's result, and this says how far and which test pins it; every other option
    does (a resumed run with one changed needs ``--accept-changes``)."""
    meta = {"doc": doc, "check": check, "incidental": incidental}
    if isinstance(default, dict):
        return field(default_factory=lambda: FrozenMap(default), metadata=meta)
    return field(default=freeze(default), metadata=meta)


#: Where each value of the config being built came from (``Config.from_dict`` sets it for the checks it runs).
VALUE_SOURCES: ContextVar[Mapping[str, str] | None] = ContextVar("config_sources", default=None)


def source_note(sources: Mapping[str, str] | None, dotted: str) -> str:
    """`` (from <where>)`` for an option whose source is known (the defaults, a file, the command line), else empty."""
    sources = sources if sources is not None else VALUE_SOURCES.get()
    return f" (from {sources[dotted]})" if sources and dotted in sources else ""


def check_value(dotted: str, value: Any, check: Check, sources: Mapping[str, str] | None = None) -> None:
    """``ConfigError`` naming key, value, source and what is allowed, unless ``check`` accepts ``value``."""
    if not check.ok(value):
        raise ConfigError(f"config: {dotted} = {thaw(value)!r}{source_note(sources, dotted)}; expected {check.want}")
