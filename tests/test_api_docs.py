"""Every public function, class and method of audfer has a docstring and type hints (issue 13, item 7)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import audfer


def _public_api():
    """(qualified name, object, is_method) of everything public that audfer defines."""
    for info in pkgutil.walk_packages(audfer.__path__, "audfer."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj):
                yield f"{info.name}.{name}", obj, False
            elif inspect.isclass(obj):
                yield f"{info.name}.{name}", obj, False
                for attr, member in vars(obj).items():
                    if attr.startswith("_"):
                        continue
                    fn = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
                    if inspect.isfunction(fn):
                        yield f"{info.name}.{name}.{attr}", (obj, attr, fn), True


def test_public_functions_classes_and_methods_have_docstrings():
    missing = []
    for name, obj, is_method in _public_api():
        if is_method:
            cls, attr, fn = obj
            member = vars(cls)[attr]
            doc = fn.__doc__ if isinstance(member, property) else inspect.getdoc(getattr(cls, attr))
        else:
            doc = obj.__doc__ if inspect.isclass(obj) else inspect.getdoc(obj)
        if not (doc and doc.strip()):
            missing.append(name)
    assert not missing, f"{len(missing)} without a docstring: {', '.join(missing)}"


def test_public_functions_and_methods_have_type_hints():
    missing = []
    for name, obj, is_method in _public_api():
        fn = obj[2] if is_method else obj
        if inspect.isclass(fn):
            continue
        sig = inspect.signature(fn)
        params = list(sig.parameters.values())[1:] if is_method else list(sig.parameters.values())
        if is_method and isinstance(vars(obj[0])[obj[1]], staticmethod):
            params = list(sig.parameters.values())
        unhinted = [p.name for p in params if p.annotation is inspect.Parameter.empty]
        if unhinted or sig.return_annotation is inspect.Signature.empty:
            missing.append(
                f"{name}({', '.join(unhinted)}{'; no return' if sig.return_annotation is sig.empty else ''})"
            )
    assert not missing, f"{len(missing)} without full type hints: {', '.join(missing)}"


def test_the_audit_sees_the_whole_package():
    names = {name for name, _, _ in _public_api()}
    for expected in (
        "audfer.config.load.load_config",
        "audfer.config.schema.Config.from_dict",
        "audfer.method.losses.AUDFERLoss.components",
        "audfer.predict.predictor.predict_video",
        "audfer.models.base.DFERModel.forward_features",
    ):
        assert expected in names
    assert len(names) > 300
