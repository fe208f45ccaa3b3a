"""`bench/heal.py` (make bench) keeps running: both parts with tiny timings print their times and ratio lines.
The ratios themselves are not asserted (timing-dependent); `make bench` prints them with realistic settings."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_heal_bench_runs_both_parts_and_prints_ratios(extension_env):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "heal.py"), "--scale", "0.01", "--lro", "0.3",
                           "--retry-after-hint", "--extension-dir", extension_env["AZURE_EXTENSION_DIR"]],
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert re.search(r"^healing ratio \(grant -> Ready, without / with healing\): [\d.]+x$", proc.stdout, re.M)
    assert re.search(r"^enable ratio \(manual sequence / az aks virtual-node enable\): [\d.]+x$", proc.stdout, re.M)
    result = json.loads(proc.stdout[:proc.stdout.rindex("}") + 1])
    heal, enable = result["heal"], result["enable_vs_manual"]
    assert heal["backoff_cap_s"] == 3.0                    # 300 s times --scale: the real back-off's cap was reached
    assert heal["grant_to_ready_without_healing_s"] > 0 and heal["grant_to_ready_with_healing_s"] > 0
    assert set(enable["manual_steps_s"]) == {"az network vnet subnet create", "az aks enable-addons", "kubectl wait"}
    assert enable["enable_s"] > 0 and enable["manual_sequence_s"] > 0
