"""The README's first two commands stay the ones a new user and CI actually run."""

from __future__ import annotations

from tests.conftest import REPO


def readme_commands() -> list[str]:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    start = lines.index("```bash") + 1
    return lines[start:start + 2]


def test_first_command_runs_the_demo_and_second_the_tests():
    demo, tests = readme_commands()
    assert demo.endswith("python -m study demo") and "pip install -e ." in demo
    assert tests.endswith("python -m pytest -q") and "'.[test]'" in tests


def test_ci_runs_exactly_the_readme_test_command():
    ci_lines = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert readme_commands()[1] in ci_lines
