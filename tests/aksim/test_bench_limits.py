"""The simulator's speed and size limits (issue: start < 1 s, large.yaml < 30 s and < 2 GiB, field-selected
pod list < 100 ms), measured by the benchmark script in its own process so memory is its own."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_simulator_benchmark_within_limits():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "simulator.py"), "--check"], capture_output=True,
                          text=True, timeout=300, check=False)
    result = json.loads(proc.stdout)
    assert proc.returncode == 0, result
    assert result["pods_on_node"] == 20          # the query really selected one node's pods
