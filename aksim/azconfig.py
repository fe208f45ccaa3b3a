"""Point an unmodified ``az`` at a running simulator: its own config dir, a registered cloud, MSI login."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from aksim.arm.identity import IDENTITY_HEADER

if TYPE_CHECKING:
    from aksim.sim import Simulator

CLOUD = "aksim"


def az_env(sim: "Simulator", config_dir: Path) -> dict[str, str]:
    """Environment variables that make ``az`` (and SDK clients) talk to the simulator and nothing else."""
    return {
        "AZURE_CONFIG_DIR": str(config_dir),
        "REQUESTS_CA_BUNDLE": str(sim.tls.ca_path),
        "IDENTITY_ENDPOINT": sim.identity_endpoint,
        "IDENTITY_HEADER": IDENTITY_HEADER,
        "AZURE_CORE_COLLECT_TELEMETRY": "false",
        "AZURE_CORE_SURVEY_MESSAGE": "false",
        "AZURE_CORE_NO_COLOR": "true",
        "AKSIM_ADMIN_URL": sim.admin_url,
        "AKSIM_ARM_URL": sim.arm_url,
        # the cloud's login endpoint is the simulator (aksim.arm.entra): no instance discovery on the internet
        "AZURE_CORE_INSTANCE_DISCOVERY": "false",
    }


def az_command() -> list[str]:
    """The ``az`` of the running interpreter's environment (the project venv)."""
    return [sys.executable, "-m", "azure.cli"]


def login(sim: "Simulator", config_dir: Path) -> dict[str, str]:
    """Register the simulator as a cloud, select it and ``az login --identity``; returns the env used."""
    config_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **az_env(sim, config_dir)}
    arm = sim.arm_url + "/"
    steps = [
        ["cloud", "register", "-n", CLOUD, "--endpoint-resource-manager", arm,
         "--endpoint-active-directory", sim.arm_url,
         "--endpoint-active-directory-resource-id", "https://management.core.windows.net/",
         "--endpoint-active-directory-graph-resource-id", arm,
         "--endpoint-microsoft-graph-resource-id", arm, "--skip-endpoint-discovery"],
        ["cloud", "set", "-n", CLOUD],
        ["login", "--identity", "--output", "none"],
    ]
    if (config_dir / "clouds.config").exists() and CLOUD in (config_dir / "clouds.config").read_text():
        steps[0] = ["cloud", "update", "-n", CLOUD] + steps[0][4:]
    for args in steps:
        proc = subprocess.run(az_command() + args, env=env, capture_output=True, text=True, timeout=120,
                              check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"az {' '.join(args[:2])} failed: {proc.stderr.strip()}")
    return env


def write_env_file(sim: "Simulator", config_dir: Path, path: Path) -> None:
    lines = [f"export {k}={shlex.quote(v)}" for k, v in az_env(sim, config_dir).items()]
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
