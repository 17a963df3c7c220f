"""Project wiring: the README's commands, CI, the demo."""

import re

from conftest import REPO


def _readme_commands():
    return re.findall(r"```bash\n(python3 -m venv[^\n]+)\n```", (REPO / "README.md").read_text())


def test_ci_runs_the_readme_test_command():
    main_cmd, test_cmd = _readme_commands()
    assert "audfer demo" in main_cmd and "pytest" in test_cmd
    assert test_cmd in (REPO / ".ci" / "run").read_text()
    assert "torch==2.13.0" in (REPO / "constraints.txt").read_text()
