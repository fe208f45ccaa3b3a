"""`make demo` keeps working: run scripts/demo.sh (simulator + installed wheel + the whole flow)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_script_runs_the_whole_flow(tmp_path):
    wheel = os.environ.get("EXTENSION_WHEEL")
    if not wheel:
        subprocess.run([sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(tmp_path), "build",
                        "--build-base", str(tmp_path / "build"), "bdist_wheel", "-d", str(tmp_path), "-b",
                        str(tmp_path / "bdist")], cwd=ROOT, check=True, capture_output=True)
        wheel = str(next(tmp_path.glob("virtual_node-*.whl")))
    venv_bin = Path(sys.executable).parent
    env = {**os.environ, "EXTENSION_WHEEL": wheel,
           "PATH": f"{venv_bin}{os.pathsep}{ROOT / '.tools' / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "demo.sh")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert '"healthy": true' in out
    assert "virtual-node-aci-linux Ready" in out                     # status -o table
    assert out.count("virtual-node-aci-linux   ") >= 1              # burst pods landed on the virtual node
    assert '"subnetDeleted": true' in out and '"nodeRemoved": true' in out
    assert not (ROOT / ".demo" / "kubeconfig").exists()
