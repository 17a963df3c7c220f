"""The text is true (issue 39 item 6): every module path, file, config option and command-line flag that README,
``docs/`` and the docstrings of ``src/audfer`` name exists; nothing in the project cites files outside it (the
official repositories are cited by repository, file and function instead); the text does not speak of how the
project is developed. Each check collects every offence and reports them all at once."""

from __future__ import annotations

import ast
import importlib
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "audfer"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _docstrings(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield doc


def _texts() -> Iterator[tuple[str, str]]:
    """(where, text): README, every docs page, every docstring of the package."""
    for doc in DOCS:
        yield str(doc.relative_to(ROOT)), doc.read_text(encoding="utf-8")
    for py in sorted(SRC.rglob("*.py")):
        for text in _docstrings(py):
            yield str(py.relative_to(ROOT)), text


def _code_spans(text: str) -> Iterator[str]:
    """Inline code (`x` and ``x``) and the lines of fenced blocks."""
    fenced = re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S)
    for block in fenced:
        yield from block.splitlines()
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    yield from re.findall(r"``([^`\n]+)``", text)
    yield from re.findall(r"(?<!`)`([^`\n]+)`(?!`)", text)


# ------------------------------------------------------------------------------------------------------ files

_FILE = re.compile(
    r"(?<![\w./-])((?:src/)?audfer/[\w/]+\.(?:py|yaml|txt|json)|(?:src/)?audfer/[\w]+(?:/[\w]+)*/"
    r"|docs/[\w./-]+\.md|benchmarks/\w+\.py|tests/\w+\.py|\.ci/run|constraints\.txt|pyproject\.toml)"
)


def _file_exists(name: str) -> bool:
    name = name.rstrip("/")
    if name.startswith("audfer/"):
        name = "src/" + name
    return (ROOT / name).exists()


def test_every_file_named_in_the_text_exists():
    missing = sorted(
        {
            f"{where}: {name}"
            for where, text in _texts()
            for span in _code_spans(text)
            for name in _FILE.findall(span)
            if not _file_exists(name)
        }
    )
    assert not missing, "files named but absent:\n" + "\n".join(missing)


# ------------------------------------------------------------------------------------------------ module paths

_DOTTED = re.compile(r"(?<![\w./-])(audfer(?:\.[A-Za-z_]\w*)+)")


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_every_module_path_named_in_the_text_exists():
    names = {
        (where, name.rstrip("."))
        for where, text in _texts()
        for span in _code_spans(text)
        for name in _DOTTED.findall(span)
        if not re.search(r"\.(py|yaml|json|md|txt|csv|ckpt|safetensors)$", name)
    }
    missing = sorted(f"{where}: {name}" for where, name in names if not _resolves(name))
    assert not missing, "module paths named but absent:\n" + "\n".join(missing)


# ---------------------------------------------------------------------------------------------- config options


def _options() -> set[str]:
    """Every declared option, and the former names still read (with a deprecation warning)."""
    from audfer.config.schema import RENAMED, declared

    return {key for key, *_ in declared()} | set(RENAMED)


_SECTIONS = ("model", "data", "au", "optim", "train")
_OPTION = re.compile(r"(?<![\w./-])((?:" + "|".join(_SECTIONS) + r")\.[a-z_][a-z0-9_]*)(?![\w(/-]|\.\w)")


#: ``model.safetensors`` and the like are file names, not options.
_FILE_ENDINGS = {"safetensors", "onnx", "ckpt", "pth", "pt", "bin", "json", "yaml", "csv", "txt", "md", "py"}


def _model_attributes() -> set[str]:
    """What a built model has (class and instance attributes) and what loading a package adds to it."""
    from audfer.models import create_model

    return set(dir(create_model("former_dfer_small", img_size=32, num_frames=4, width=8))) | {"package_config"}


def _an_option_claim(key: str) -> bool:
    """``data.decode`` names an option; ``model.input_spec`` (a model's attribute), ``au.folder`` (the module
    ``audfer.au.folder``) and ``model.safetensors`` (a file) do not."""
    section, name = key.split(".", 1)
    if name in _FILE_ENDINGS or (section == "model" and name in _model_attributes()):
        return False
    return not _resolves(f"audfer.{key}")


def test_every_config_option_named_in_the_text_exists():
    known = _options()
    found = {
        (where, key)
        for where, text in _texts()
        for span in _code_spans(text)
        if not re.search(r"\.(py|yaml|json|md|csv)\b", span)
        for key in _OPTION.findall(span)
    }
    missing = sorted(f"{where}: {key}" for where, key in found if key not in known and _an_option_claim(key))
    assert not missing, "config options named but not declared in config/schema.py:\n" + "\n".join(missing)


# ------------------------------------------------------------------------------------------- command lines


def _command_lines(text: str) -> Iterator[str]:
    for span in _code_spans(text):
        for m in re.finditer(r"(?:^|[\s;(&|])audfer ((?:[a-z][\w-]*)(?: [^`;|&#]*)?)", span):
            yield m.group(1).strip()


def test_every_command_and_flag_named_in_the_text_exists():
    from audfer.cli import build_parser

    commands = build_parser().commands
    bad = set()
    for where, text in _texts():
        for line in _command_lines(text):
            try:
                words = shlex.split(line)
            except ValueError:
                words = line.split()
            if not words or words[0] in ("--help", "-h", "--version"):
                continue
            command = words[0]
            if command not in commands:
                bad.add(f"{where}: audfer {command}: no such command")
                continue
            known = commands[command]._option_string_actions
            for word in words[1:]:
                flag = word.strip("[]").split("=", 1)[0]
                if flag.startswith("--") and flag not in known:
                    bad.add(f"{where}: audfer {command} {flag}: no such flag")
    assert not bad, "commands or flags named but absent:\n" + "\n".join(sorted(bad))


# -------------------------------------------------------------------------------------- citations and process

#: Files outside the project, cited in place of the official sources.
_OUTSIDE = re.compile(r"\.\./shared|reference README|reference/README|shared/reference")
#: Where a path outside the project is a fact the reader needs, not a citation: how the tests find real files.
_ALLOWED_OUTSIDE = {"README.md": ("Tests that read real third-party files",)}


def _paragraphs(text: str) -> list[str]:
    return re.split(r"\n\s*\n", text)


def test_nothing_cites_files_outside_the_project():
    offences = []
    sources = [*DOCS, *sorted(SRC.rglob("*.py")), *sorted(SRC.rglob("*.yaml")), *sorted(SRC.rglob("*.md"))]
    sources += sorted((ROOT / "benchmarks").glob("*.py"))
    for path in sources:
        where = str(path.relative_to(ROOT))
        allowed = _ALLOWED_OUTSIDE.get(where, ())
        for para in _paragraphs(path.read_text(encoding="utf-8")):
            if _OUTSIDE.search(para) and not any(a in para for a in allowed):
                offences.append(f"{where}: {_OUTSIDE.search(para).group(0)!r} in: {para.strip()[:100]}")
    assert not offences, "cite the official repository, file and function instead:\n" + "\n".join(offences)


#: Words about how the project is made (who worked when, with which machine on loan), not about what it does.
_PROCESS = re.compile(r"\b(sessions?|lent|helper sessions?|this round|the lead)\b", re.I)
#: Technical uses of those words.
_PROCESS_OK = re.compile(r"InferenceSession|onnxruntime session|requests?\.Session|HTTP session", re.I)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_the_text_does_not_speak_of_how_the_project_is_developed(doc):
    offences = [
        f"{doc.name}:{n}: {line.strip()[:110]}"
        for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1)
        if _PROCESS.search(_PROCESS_OK.sub("", line))
    ]
    assert not offences, "\n".join(offences)


def test_the_checks_catch_what_they_look_for():
    """The patterns are not vacuous: planted offences are found."""
    assert not _file_exists("audfer/options.py") and _file_exists("src/audfer/trust.py")
    assert not _resolves("audfer.labels") and _resolves("audfer.predict.blazeface.onnx_graph")
    assert "data.no_such_key" not in _options() and "data.decode" in _options()
    assert _OPTION.findall("set `data.decode=reduced`") == ["data.decode"]
    assert list(_command_lines("run `audfer predict clip.mp4 --out r.json`")) == ["predict clip.mp4 --out r.json"]
    assert _OUTSIDE.search("see ../shared/reference/README.md §4") and _PROCESS.search("measured in this session")
