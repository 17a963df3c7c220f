"""`audfer models` prints declared figures (issue 37 item 5): each official model's registration states its parameters,
MACs and input, the table is built without building a model, and a slow test recomputes every declaration."""

from __future__ import annotations

import pytest

from audfer.models import complexity
from audfer.models.registry import list_models, model_entry

OFFICIAL = [n for n in list_models() if model_entry(n).official]


def test_every_official_model_declares_its_cost_and_the_table_builds_none(monkeypatch):
    assert OFFICIAL == ["former_dfer", "m3dfel", "mae_dfer"]
    assert all(model_entry(n).cost is not None for n in OFFICIAL)

    def no_build(name):
        raise AssertionError(f"built {name}")

    monkeypatch.setattr(complexity, "measure_cost", no_build)
    lines = complexity.cost_table()
    m3dfel = next(line for line in lines if line.startswith("m3dfel "))
    assert "46,823,384" in m3dfel and "46,841,834" in m3dfel and " 43.19 " in m3dfel and "1.66 G (thop" in m3dfel
    assert lines[-1] == "also registered: former_dfer_small, m3dfel_small, mae_dfer_small"


def test_the_stored_table_is_the_registrys_and_audfer_models_loads_no_torch():
    """``audfer models`` prints ``resources/models_table.txt``: it must be what the declarations give (regenerate:
    ``python -c "from audfer.models.complexity import cost_table; print(*cost_table(), sep='\\n')"
    > src/audfer/resources/models_table.txt``), and listing it must not import torch (the 2 s answer)."""
    import subprocess
    import sys
    from importlib import resources

    stored = resources.files("audfer.resources").joinpath("models_table.txt").read_text()
    assert stored == "\n".join(complexity.cost_table()) + "\n"
    child = (
        "import sys\nfrom audfer.cli import main\nmain(['models'])\nassert 'torch' not in sys.modules, 'torch loaded'\n"
    )
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == stored


def test_a_model_without_a_declaration_is_measured():
    line = complexity.cost_table(["former_dfer_small"])[1]
    cost = complexity.measure_cost("former_dfer_small")
    assert line.split()[1:3] == [f"{cost.params:,d}", f"{cost.params_au:,d}"]


@pytest.mark.slow
@pytest.mark.parametrize("name", OFFICIAL)
def test_declared_costs_stay_true(name):
    assert model_entry(name).cost == complexity.measure_cost(name)  # parameters, MACs and input, exactly
