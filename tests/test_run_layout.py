"""The run folder's layout has one owner, ``audfer.run_layout.RunLayout``: the paths it gives are the ones every
writer and reader used before (run folders written by earlier versions still load), a run is found from a checkpoint
by one rule, and no other module of ``src/audfer`` spells a run path (a scan that fails on a hit)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from audfer.run_layout import RunLayout, checkpoint_file, evaluation_name, partial_checkpoint

SRC = Path(__file__).resolve().parents[1] / "src" / "audfer"
LAYOUT = SRC / "run_layout.py"

#: File names that exist only in a run folder: a hit anywhere in a string outside the layout module is a run path.
RUN_FILES = (
    "config.yaml",
    "init.json",
    "selection.json",
    "changes.json",
    "plan.json",
    "epochs.csv",
    ".audfer.lock",
    "last.ckpt",
    "previous.ckpt",
    "best.ckpt",
    "metrics.json",
    "predictions.csv",
    "features.npy",
    "metrics.csv",
    "cv.json",
    "cv.csv",
    "ablation.json",
    "study.csv",
    "effects.csv",
    "contrasts.csv",
    "study.json",
    "report.md",
    "effect.png",
    "knowledge.png",
    "confusion.png",
    "tsne.png",
    "curves.png",
    "lambda.png",
)
#: Folder names and name patterns of a run: a hit only when the string is the name itself or uses it as a path part
#: (``"checkpoints"``, ``"eval"``, ``f"fold_{k}"``, ``"x/eval/y"``), so prose such as "has checkpoints;" is no hit.
RUN_FOLDERS = ("checkpoints", "logs", "eval", "tensorboard")
RUN_PATTERNS = (r"eval-", r"fold_", r"seed_", r"lambda_", r"size_", r"\.ckpt\.partial")

#: Literals that spell one of these names for something that is not a run path: ``(module, literal)``: why.
ALLOWED: dict[tuple[str, str], str] = {
    ("audfer/config/schema.py", "tensorboard"): "the train.loggers choice (a logger's name), not the folder",
}


def _strings(path: Path) -> list[tuple[int, str, bool]]:
    """Every string literal of ``path`` outside docstrings (an f-string's literal parts joined, ``{}`` for values),
    with whether it is an operand of ``/`` (a path being built)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
        and isinstance(node.body[0].value.value, str)
    }
    inside_f = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values}
    operands = {
        id(side)
        for node in ast.walk(tree)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)
        for side in (node.left, node.right)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            found.append((node.lineno, text, id(node) in operands))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings and id(node) not in inside_f:
                found.append((node.lineno, node.value, id(node) in operands))
    return found


def _run_path_hits(text: str, operand: bool = False) -> list[str]:
    """The run names ``text`` spells as a path: the whole literal is path-like (no spaces) or is joined with ``/``.
    A sentence that names a file (a help text, a message) is prose, like a docstring, and is no hit."""
    if not operand and re.search(r"\s", text):
        return []
    hits = [name for name in RUN_FILES if re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w])", text)]
    hits += [name for name in RUN_FOLDERS if re.fullmatch(rf"{name}|(.*/)?{name}(/.*)?", text)]
    hits += [pat for pat in RUN_PATTERNS if re.search(rf"(?<![\w]){pat}", text)]
    return hits


def test_the_scan_finds_run_paths_and_passes_prose():
    for text in ("checkpoints", "run/eval/metrics.json", "fold_{}", "eval-{}", "x/last.ckpt", "plan.json"):
        assert _run_path_hits(text), text
    assert _run_path_hits("a name with spaces.json and epochs.csv", operand=True)  # joined with `/`: a path
    for text in ("run folder already has checkpoints; pass --resume", "evaluate", "K.csv", "see plan.json", "eval_x"):
        assert not _run_path_hits(text), text


def test_no_module_but_the_layout_spells_a_run_path():
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        rel = str(path.relative_to(SRC.parent))
        if path == LAYOUT:
            continue
        for line, text, operand in _strings(path):
            hits = _run_path_hits(text, operand)
            if hits and (rel, text) not in ALLOWED:
                bad.append(f"{rel}:{line} {text!r} spells {', '.join(hits)}: ask audfer.run_layout.RunLayout for it")
    assert not bad, "run paths outside audfer/run_layout.py:\n" + "\n".join(bad)


def test_the_layout_gives_the_paths_runs_have_always_had(tmp_path):
    """Independent reference: the folder layout as documented in docs/architecture.md (Training runs)."""
    run = RunLayout(tmp_path)
    assert run.config == tmp_path / "config.yaml" and run.init == tmp_path / "init.json"
    assert run.selection == tmp_path / "selection.json" and run.changes == tmp_path / "changes.json"
    assert run.plan == tmp_path / "plan.json" and run.epochs == tmp_path / "epochs.csv"
    assert run.lock == tmp_path / ".audfer.lock" and run.log_csv == tmp_path / "logs" / "metrics.csv"
    assert run.last == tmp_path / "checkpoints" / "last.ckpt"
    assert run.previous == tmp_path / "checkpoints" / "previous.ckpt"
    assert run.best == tmp_path / "checkpoints" / "best.ckpt"
    assert partial_checkpoint(run.checkpoints) == tmp_path / "checkpoints" / ".last.ckpt.partial"
    assert run.evaluation == tmp_path / "eval" and run.reevaluation("train") == tmp_path / "eval-train"
    assert evaluation_name("test") == "eval-test"
    assert run.fold(3).root == tmp_path / "fold_3" and run.fold(3).cv_parent() == run
    assert run.variant("none", seed=2).root == tmp_path / "none" / "seed_2"
    assert run.lambda_run(0.5, 1).root == tmp_path / "lambda_0.5" / "seed_1"
    assert run.study_run(0.25, None, None, 0).root == tmp_path / "size_0.25" / "baseline" / "seed_0"
    assert run.study_run(1.0, "shuffled", 0.75, 4).root == tmp_path / "size_1" / "shuffled" / "lambda_0.75" / "seed_4"
    assert run.figure("tsne") == tmp_path / "tsne.png" and run.report == tmp_path / "report.md"
    assert (run.cv_json, run.cv_csv, run.ablation_json) == (
        tmp_path / "cv.json",
        tmp_path / "cv.csv",
        tmp_path / "ablation.json",
    )
    assert checkpoint_file(tmp_path, "x") == tmp_path / "x.ckpt"


def test_a_run_is_found_from_a_checkpoint_by_one_rule(tmp_path):
    run = RunLayout(tmp_path / "r")
    run.checkpoints.mkdir(parents=True)
    run.last.write_bytes(b"x")
    assert RunLayout.of(run.last) == run  # a checkpoint in <run>/checkpoints
    assert RunLayout.of(run.root / "checkpoints" / "gone.ckpt") == run  # even one not (yet) there
    assert RunLayout.of(run.root) == run  # the run folder itself
    assert not run.is_complete()  # no config.yaml yet: package refuses to read it as a run
    run.config.write_text("out: r\n")
    assert run.is_complete()
    lone = tmp_path / "elsewhere" / "model.ckpt"
    lone.parent.mkdir()
    lone.write_bytes(b"x")
    assert RunLayout.of(lone) is None
    assert RunLayout.around(lone) == RunLayout(tmp_path)  # a lone checkpoint's eval-<split>: as audfer always did
    package = tmp_path / "pkg"
    (package / "checkpoints").mkdir(parents=True)
    (package / "config.json").write_text("{}")
    assert RunLayout.of(package) is None  # a model package is never a run
    assert RunLayout.of("org/name") is None  # a Hub id


def test_the_selected_checkpoint_is_selection_json_then_last(tmp_path):
    run = RunLayout(tmp_path)
    assert run.selected_checkpoint() == run.last
    run.selection.write_text(json.dumps({"checkpoint": "checkpoints/best.ckpt"}))
    assert run.selected_checkpoint() == run.best
    run.selection.write_text("{not json")
    assert run.selected_checkpoint() == run.last
    run.selection.write_text(json.dumps({"checkpoint": ""}))
    assert run.selected_checkpoint() == run.last
