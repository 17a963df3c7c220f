"""The ``audfer`` command: a table of commands, one module per group, each argument declarations, one library call
and printing.

Bad input -> one line on stderr and exit status 2; outputs are written atomically (by the library). Building the
parser imports no torch or Lightning (tested): command modules import the library inside their ``run_*`` functions,
so ``audfer --help`` and ``--version`` start fast.
"""

from __future__ import annotations

import importlib
import sys
import warnings

from audfer import __version__
from audfer.cli.common import Parser, add_quiet, echo
from audfer.errors import AudferError
from audfer.progress import set_quiet

#: ``(command module, the function adding its subparser)``, in ``--help`` order.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("au", "add_au_labels"),
    ("au", "add_pos_weights"),
    ("au", "add_knowledge"),
    ("frame_probs", "add_frame_probs"),
    ("demo", "add_synth"),
    ("runs", "add_train"),
    ("runs", "add_config"),
    ("runs", "add_evaluate"),
    ("runs", "add_cv"),
    ("runs", "add_ablate"),
    ("runs", "add_study"),
    ("predict", "add_predict"),
    ("predict", "add_export"),
    ("predict", "add_package"),
    ("predict", "add_models"),
    ("demo", "add_demo"),
)


def build_parser() -> Parser:
    """The ``audfer`` argument parser with every subcommand."""

    parser = Parser(prog="audfer", description="AU-enhanced dynamic facial expression recognition")
    parser.add_argument("--version", action="version", version=f"audfer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module, add in COMMANDS:
        getattr(importlib.import_module(f"audfer.cli.{module}"), add)(sub)
    parser.commands = dict(sub.choices)
    for command in parser.commands.values():
        add_quiet(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``audfer`` command; returns the exit status (0, 2 for bad input, 130/143 on a signal)."""
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):
        parser.print_usage(sys.stderr)
        echo("audfer: error: no command given; `audfer --help` lists the commands")
        return 2
    args, extra = parser.parse_known_args(argv)
    if extra:  # name the command whose arguments they were
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    set_quiet(getattr(args, "quiet", False))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.formatwarning = lambda m, c, *a, **k: f"warning: {m}\n"  # one line, no source echo
            args.func(args)
    except AudferError as exc:
        echo(f"audfer: error: {exc}")
        return getattr(exc, "exit_code", 2)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""  # writers name their path (audfer.files.writing)
        echo(f"audfer: error: {where}{exc.strerror or exc}")
        return 2
    except KeyboardInterrupt:
        echo("audfer: interrupted")
        return 130
    return 0
