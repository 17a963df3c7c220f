"""What every command module shares: the parser class with the project's error format, typed and ranged argument
parsers, choices taken from the config declarations, and the option groups several commands take."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from audfer.au.tools import SourceChoices
from audfer.config.checks import Num
from audfer.config.schema import check_of, choices_of
from audfer.errors import AudferError


def echo(msg: str) -> None:
    """A line for the user, on stderr (stdout carries only what a command outputs)."""
    print(msg, file=sys.stderr)


class Parser(argparse.ArgumentParser):
    """argparse with the project's error format (one line, exit status 2), and positionals that may come anywhere
    among the flags: ``audfer ablate CONFIG --seeds 0 data.root=x`` parses like ``audfer ablate --seeds 0 CONFIG
    data.root=x`` (argparse's intermixed parsing, for every command; the top level has the subcommands)."""

    _intermixing = False
    commands: dict[str, Any] = {}  # the top-level parser's subcommand parsers, by name

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        """Flags and positionals in any order (``parse_known_intermixed_args``) where the parser allows it."""
        fixed = any(a.nargs in (argparse.PARSER, argparse.REMAINDER) for a in self._get_positional_actions())
        if self._intermixing or fixed:
            return super().parse_known_args(args, namespace)
        self._intermixing = True  # the intermixed parse calls parse_known_args itself (Python < 3.13)
        try:
            return super().parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False

    def error(self, message: str) -> NoReturn:
        """One line naming the command (``audfer: error: ablate: ...``) and what was wrong, then exit status 2."""
        command = self.prog.removeprefix("audfer").strip()
        self.exit(2, f"audfer: error: {command + ': ' if command else ''}{message}\n")


def add_quiet(p: argparse.ArgumentParser) -> None:
    """``--quiet``, on every command: no progress bars (they are drawn on stderr, and only when it is a terminal)."""
    if "--quiet" not in p._option_string_actions:  # a command may declare it itself
        p.add_argument("--quiet", action="store_true", help="no progress bars on stderr (audfer/progress.py)")


def ranged(
    kind: Any, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False
) -> Callable[[str], Any]:
    """An argparse ``type`` that parses ``kind`` (int or float) and checks its range, saying what is allowed."""
    lo_s = "" if lo is None else (f"({lo:g}" if lo_open else f"[{lo:g}")
    hi_s = "" if hi is None else (f"{hi:g})" if hi_open else f"{hi:g}]")
    noun = "an integer" if kind is int else "a number"
    if lo is not None and hi is not None:
        allowed = f"{noun} in {lo_s}, {hi_s}"
    elif lo is not None:
        allowed = f"{noun} {'>' if lo_open else '>='} {lo:g}"
    else:
        allowed = noun

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}") from None
        bad = (
            (kind is float and not math.isfinite(value))
            or (lo is not None and (value <= lo if lo_open else value < lo))
            or (hi is not None and (value >= hi if hi_open else value > hi))
        )
        if bad:
            raise argparse.ArgumentTypeError(f"expected {allowed}, got {text!r}")
        return value

    return parse


def int_list(text: str, flag: str, lo: int, hi: int | None = None) -> tuple[int, ...]:
    """``1,2,3`` -> (1, 2, 3): integers in range, no repeats, at least one."""
    parse = ranged(int, lo, hi)
    try:
        values = tuple(parse(x.strip()) for x in text.split(",") if x.strip())
    except argparse.ArgumentTypeError as exc:
        raise AudferError(f"{flag}: {exc}") from None
    if not values:
        raise AudferError(f"{flag}: expected a comma-separated list of integers, got {text!r}")
    if len(set(values)) != len(values):
        raise AudferError(f"{flag}: {text!r} repeats a value")
    return values


def number(text: str, flag: str) -> float:
    """A finite number, or an error naming the flag."""
    try:
        value = float(text)
    except ValueError:
        raise AudferError(f"{flag}: expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise AudferError(f"{flag}: expected a finite number, got {text!r}")
    return value


def declared_choices(dotted: str, leave_out: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The choices a config option declares (``audfer/config/schema.py``): the CLI offers the same set."""
    return tuple(c for c in choices_of(dotted) if c not in leave_out)


def declared_range(dotted: str) -> tuple[int, int | None]:
    """The integer range a config option declares (``data.fold``: 1..5)."""
    check = check_of(dotted)
    assert isinstance(check, Num) and check.integer and check.lo is not None, dotted
    return int(check.lo), None if check.hi is None else int(check.hi)


class Renamed(argparse.Action):
    """A flag kept under its former name: it still works, and says once, on stderr, which flag replaces it."""

    def __init__(self, option_strings: list[str], dest: str, new: str = "", **kwargs: Any) -> None:
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any, option_string: str | None = None):
        echo(f"warning: {option_string} is deprecated; use {self.new} (it reads any AU tool's CSVs)")
        setattr(namespace, self.dest, values)


def add_au_dir(p: argparse.ArgumentParser) -> None:
    """``--au-dir``: a folder of per-clip AU CSVs (``--openface-dir``, its former name, still works)."""
    p.add_argument(
        "--au-dir",
        type=Path,
        help="folder of per-clip AU CSVs (clip id = file stem), from any AU tool of --source",
    )
    p.add_argument(
        "--openface-dir", dest="au_dir", type=Path, action=Renamed, new="--au-dir", help="former name of --au-dir"
    )


def add_reader_options(p: argparse.ArgumentParser) -> None:
    """How a folder of AU files is read (``au.folder.read_au_dir``)."""
    p.add_argument(
        "--source",
        choices=SourceChoices(),
        default="auto",
        metavar="{" + ",".join(SourceChoices()) + ",package.module:tool}",
        help="AU tool that wrote the CSVs (default auto: recognised from each header; a registered tool of "
        "audfer.au.tools, or your own as package.module:tool; see docs/au-sources.md)",
    )
    p.add_argument("--mapping", type=Path, default=None, help="--source table: YAML naming each AU column and its kind")
    p.add_argument("--allow-mixed", action="store_true", help="accept a folder whose CSVs come from different AU tools")
    p.add_argument(
        "--face-id",
        type=ranged(int, 0),
        default=None,
        help="face to keep in multi-face files (default: most successful frames)",
    )
    p.add_argument("--strict", action="store_true", help="raise on a cut-off last row instead of dropping it")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable CSVs (listed) instead of stopping")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the Parquet cache")
    p.add_argument(
        "--cache-dir", type=Path, default=None, help="cache location (default $AUDFER_CACHE_DIR or ~/.cache/audfer)"
    )


def reader_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``read_au_dir``'s options from ``add_reader_options``' flags (source and mapping aside)."""
    return {
        "face_id": args.face_id,
        "strict": args.strict,
        "on_error": "skip" if args.skip_bad else "raise",
        "cache": not args.no_cache,
        "cache_dir": args.cache_dir,
    }


def add_config_args(p: argparse.ArgumentParser) -> None:
    """An experiment config and its ``key=value`` overrides."""
    p.add_argument("config", help="experiment YAML, or a shipped config name (see `audfer train --list`)")
    p.add_argument(
        "overrides",
        nargs="*",
        help="key=value overrides with dotted keys, e.g. au.lam=0.5 train.devices=2 (every key: `audfer config`)",
    )


def add_sweep_args(p: argparse.ArgumentParser) -> None:
    """What every sweep (cv, ablate, study) takes: --jobs and --accept-changes."""
    p.add_argument(
        "--jobs",
        type=ranged(int, 1, 64),
        default=1,
        help="runs side by side in separate processes (needs train.threads set, "
        "e.g. train.threads=1: results then do not depend on --jobs)",
    )
    p.add_argument(
        "--accept-changes",
        action="store_true",
        help="unfinished runs resume even with changed result-affecting settings (recorded in changes.json)",
    )


def add_trust(p: argparse.ArgumentParser) -> None:
    """``--trust-pickle``: the one switch that lets a checkpoint unpickle objects or name code to import."""
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="the checkpoint is trusted: it may unpickle any object and its config may name code to import "
        "(never for files from strangers; docs/weights.md)",
    )


def add_model_source(p: argparse.ArgumentParser) -> None:
    """Where a model for inference comes from: a checkpoint, and the model name for foreign weights."""
    p.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        help="model package folder, Hub id org/name[@revision], or audfer checkpoint (e.g. model.ckpt of `audfer demo`)",
    )
    p.add_argument(
        "--model", default=None, help="with weights that are not an audfer checkpoint: the registered model name"
    )
    add_trust(p)
