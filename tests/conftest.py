"""Shared fixtures: one in-process simulator per test session, reloaded with a fresh scenario per test.

The real ``az`` runs as a subprocess (``python -m azure.cli`` of the project venv) with its own
``AZURE_CONFIG_DIR``, logged in once per session through the simulator's managed-identity endpoint.
Mark a test with ``@pytest.mark.scenario("kubenet")`` (a file in aksim/scenarios, or a dict) to choose
what the simulator holds; the default is ``demo``. Timings are shortened for tests (FAST_TIMINGS); a test
that needs others sets them through the admin API.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aksim.azconfig import az_command, login  # noqa: E402
from aksim.scenario import read_raw  # noqa: E402
from aksim.sim import Simulator  # noqa: E402

TOOLS_BIN = ROOT / ".tools" / "bin"
FAST_TIMINGS = {"lro": 0.3, "poll": 0.1, "connector_start": 0.3, "connector_restart": 0.6, "node_register": 0.2,
                "aci_create": 0.2, "pod_start": 0.1, "controller": 0.02}
WRITE_METHODS = ("PUT", "PATCH", "DELETE")
# The extension's own LRO poll interval in tests (production: a few seconds); aksim sends no Retry-After by default.
EXTENSION_POLL_INTERVAL = "0.1"


@dataclass
class AzResult:
    returncode: int
    stdout: str
    stderr: str
    args: list[str]

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return f"az {' '.join(self.args)} -> {self.returncode}\nstdout: {self.stdout}\nstderr: {self.stderr}"


class Az:
    """Runs the real ``az`` against the simulator."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(self, *args: str, check: bool = True, timeout: float = 300, stdin: str | None = None,
                 env: dict[str, str] | None = None) -> AzResult:
        proc = subprocess.run(az_command() + list(args), env={**self.env, **(env or {})}, capture_output=True,
                              text=True, timeout=timeout, input=stdin, check=False)
        result = AzResult(proc.returncode, proc.stdout, proc.stderr, list(args))
        if check and proc.returncode != 0:
            raise AssertionError(str(result))
        return result


class SimHandle:
    """The simulator as a test sees it: the object itself plus request-log and admin helpers."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sim, name)

    def load(self, source: str | dict[str, Any]) -> None:
        """Replace the world with another scenario (test timings applied)."""
        self.sim.load(scenario_with_fast_timings(source))

    def requests(self, endpoint: str = "arm") -> list[dict[str, Any]]:
        return self.sim.request_log(endpoint)["entries"]

    def writes(self, endpoint: str = "arm") -> list[str]:
        """Every state-changing request that reached the endpoint, as 'METHOD path'."""
        return [f"{e['method']} {e['path']}" for e in self.requests(endpoint) if e["method"] in WRITE_METHODS]

    def cluster(self, name: str = "aks-demo") -> Any:
        with self.sim.lock:
            return next(c for c in self.sim.world.clusters.values() if c.name == name)

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.sim.admin_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            return json.loads(raw) if raw else None

    def kubeconfig(self, name: str = "aks-demo", admin: bool = False) -> dict[str, Any]:
        from aksim.arm.containerservice import kubeconfig
        import yaml
        return yaml.safe_load(kubeconfig(self.cluster(name), self.sim.tls.ca_data_b64, admin))

    def kube_client(self, name: str = "aks-demo") -> Any:
        from kubernetes import config
        return config.new_client_from_config_dict(self.kubeconfig(name, admin=True))


def scenario_with_fast_timings(source: str | dict[str, Any]) -> dict[str, Any]:
    raw = read_raw(source)
    raw["timings"] = {**(raw.get("timings") or {}), **FAST_TIMINGS}
    return raw


@pytest.fixture(scope="session")
def session_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="aksim-tests-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def simulator(session_dir: Path) -> Iterator[Simulator]:
    sim = Simulator(scenario_with_fast_timings("demo"), workdir=session_dir / "sim").start()
    yield sim
    sim.stop()


@pytest.fixture(scope="session")
def az_env(simulator: Simulator, session_dir: Path) -> dict[str, str]:
    env = login(simulator, session_dir / "azure")
    env["PATH"] = f"{TOOLS_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="session")
def extension_env(az_env: dict[str, str], session_dir: Path) -> dict[str, str]:
    """``az`` env with the extension installed the way users install it: ``az extension add --source <wheel>``."""
    wheel = os.environ.get("EXTENSION_WHEEL")
    if not wheel:
        out = session_dir / "dist"
        # egg-info, build/ and bdist dirs in the session's own dir: nothing is written into the repo, so
        # pytest-xdist workers (each with its own session) do not race on ./build or ./*.egg-info
        subprocess.run([sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(session_dir), "build",
                        "--build-base", str(session_dir / "build"), "bdist_wheel", "-d", str(out), "-b",
                        str(session_dir / "bdist")], cwd=ROOT, check=True, capture_output=True)
        wheel = str(next(out.glob("virtual_node-*.whl")))
    env = {**az_env, "AZURE_EXTENSION_DIR": str(session_dir / "extensions"),
           "AZEXT_VIRTUALNODE_POLL_INTERVAL": EXTENSION_POLL_INTERVAL}
    proc = subprocess.run(az_command() + ["extension", "add", "--source", wheel, "-y"], env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    return env


@pytest.fixture
def vn(extension_env: dict[str, str], sim: "SimHandle") -> Az:
    """The real ``az`` with the virtual-node extension installed, against the per-test scenario."""
    return Az(extension_env)


@pytest.fixture
def sim(simulator: Simulator, request: pytest.FixtureRequest) -> Iterator[SimHandle]:
    marker = request.node.get_closest_marker("scenario")
    source = marker.args[0] if marker else "demo"
    simulator.load(scenario_with_fast_timings(source))
    yield SimHandle(simulator)


@pytest.fixture
def az(az_env: dict[str, str], sim: SimHandle, request: pytest.FixtureRequest) -> Az:
    """The real ``az`` without the extension. az's own commands poll LROs every 30 s when the service sends no
    Retry-After (as real AKS/Network do), so tests driving them switch aksim's retry hint on; tests of the
    extension (``vn``) keep the realistic no-hint replies."""
    if "vn" not in request.fixturenames:
        sim.sim.timings.retry_after_hint = True
    return Az(az_env)


@pytest.fixture
def kubectl_bin() -> str:
    path = TOOLS_BIN / "kubectl"
    if not path.exists():
        pytest.fail("real kubectl missing: run tools/fetch-kube-binaries.sh (make test does)")
    return str(path)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
