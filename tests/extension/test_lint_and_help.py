"""The extension passes the Azure CLI dev tools' checks, and its help is complete in the real ``az``.

* ``scripts/lint.sh`` (``make lint``): ``azdev linter`` (params, commands, command_groups, help_entries at
  --min-severity low, plus azdev's custom pylint rules) and ``azdev style`` (pylint + flake8), offline.
* the simulator, the tests and the benchmarks keep the same flake8 style (max line 120).
* ``az aks virtual-node -h`` and every command's ``-h``, with the extension installed from its wheel, show an
  Examples section whose examples call that command.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Az  # tests/conftest.py, already imported by pytest (no double import)

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ["enable", "disable", "status", "wait", "place", "prune", "scale", "migrate"]


def test_lint_passes() -> None:
    proc = subprocess.run([str(ROOT / "scripts" / "lint.sh")], cwd=ROOT, capture_output=True, text=True,
                          timeout=420, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"scripts/lint.sh failed ({proc.returncode}):\n{output}"
    # Both tools really ran on the extension (not "No commands selected").
    assert "Modules: virtual-node" in output and "Extensions: virtual-node" in output, output
    for verdict in ("No violations found for linter rules.", "Linter: PASSED", "Pylint: PASSED",
                    "Flake8: PASSED", "lint: PASSED"):
        assert verdict in output, f"{verdict!r} missing:\n{output}"
    assert "No commands selected" not in output, output


def _examples(help_text: str) -> list[str]:
    """The example command lines under the 'Examples' heading of knack's help output."""
    lines = help_text.splitlines()
    start = next((i for i, line in enumerate(lines) if re.fullmatch(r"Examples\s*", line)), None)
    if start is None:
        return []
    return [line.strip() for line in lines[start + 1:] if line.strip().startswith("az ")]


def test_simulator_tests_and_benchmarks_are_flake8_clean() -> None:
    proc = subprocess.run([sys.executable, "-m", "flake8", "--max-line-length", "120", "aksim", "tests", "bench"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("command", [None] + COMMANDS, ids=["group"] + COMMANDS)
def test_help_shows_examples(extension_env: dict[str, str], command: str | None) -> None:
    name = "aks virtual-node" + (f" {command}" if command else "")
    result = Az(extension_env)(*name.split(), "-h", timeout=120)
    examples = _examples(result.stdout)
    assert examples, f"'az {name} -h' shows no Examples section:\n{result.stdout}"
    assert all(e.startswith(f"az {name}") for e in examples), examples
