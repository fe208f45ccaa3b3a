"""Preflight side effects: provider registration, region support, and credentials that never touch disk."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from aksim.scenario import read_raw

IDS = ["-g", "demo-rg", "-n", "aks-demo"]


def demo_with(**changes) -> dict:
    raw = read_raw("demo")
    raw.update(changes)
    return raw


@pytest.mark.scenario(demo_with(providers={"Microsoft.ContainerInstance": "NotRegistered"}))
def test_enable_registers_the_aci_provider(vn, sim):
    st = vn("aks", "virtual-node", "enable", *IDS, "--timeout", "120").json()
    assert st["healthy"] is True
    assert any(e["method"] == "POST" and e["path"].endswith("/providers/Microsoft.ContainerInstance/register")
               for e in sim.requests())
    with sim.lock:
        assert sim.world.provider_state["microsoft.containerinstance"] == "Registered"


@pytest.mark.scenario(demo_with(aci_regions=["eastus", "northeurope"]))
def test_region_without_aci_is_refused_before_any_write(vn, sim):
    sim.reset_logs()
    res = vn("aks", "virtual-node", "enable", *IDS, check=False)
    assert res.returncode == 1
    assert "Azure Container Instances is not available in region 'westeurope'" in res.stderr
    assert sim.writes() == []


def test_no_kubeconfig_is_left_on_disk(vn, sim, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {"HOME": str(home), "TMPDIR": str(tmp), "KUBECONFIG": str(home / ".kube" / "config")}
    vn("aks", "virtual-node", "enable", *IDS, "--timeout", "120", env=env)
    vn("aks", "virtual-node", "status", *IDS, env=env)
    assert not (home / ".kube").exists()
    token = sim.cluster().user_token
    for path in list(tmp.rglob("*")) + list(home.rglob("*")):
        if path.is_file():
            assert token not in path.read_text(errors="ignore"), f"cluster token written to {path}"
    config_dir = Path(vn.env["AZURE_CONFIG_DIR"])
    for path in config_dir.rglob("*"):
        if path.is_file() and os.path.getsize(path) < 5_000_000:
            assert token not in path.read_text(errors="ignore"), f"cluster token written to {path}"
