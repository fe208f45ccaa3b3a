"""Scenario files: YAML that seeds the simulated cloud. The format is documented in docs/simulator.md."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

SCENARIO_DIR = Path(__file__).parent / "scenarios"

DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
DEFAULT_TENANT = "72f988bf-0000-0000-0000-000000000001"
DEFAULT_CALLER_OID = "11111111-1111-1111-1111-111111111111"


@dataclass
class Timings:
    """Seconds. Real Azure takes minutes; scenarios use fast values so tests finish quickly."""
    lro: float = 0.5                 # ARM long-running operation duration
    poll: float = 0.2                # retry hint sent with LRO responses
    connector_start: float = 1.0     # add-on enabled -> connector Deployment/Pod appears
    connector_restart: float = 2.0   # legacy: sets backoff_scale = connector_restart / 10 when that is unset
    node_register: float = 0.5       # connector Running -> node registered
    lease_renew: float = 10.0        # Lease renewal period (real: 10 s)
    lease_duration: float = 40.0     # Lease duration (real: 40 s)
    role_replication: float = 0.0    # PrincipalNotFound window after an identity is created
    aci_create: float = 0.5          # pod bound to the virtual node -> container group running
    pod_start: float = 0.2           # pod bound to a regular node -> Running
    controller: float = 0.05         # Deployment/ReplicaSet reconcile delay
    backoff_scale: float = 0.2       # kubelet crash-loop back-off: 10 s, 20 s, 40 s ... 300 s, times this
    vn2_register: float = 1.0        # VN2 infra pod running -> its node registered (real: about 45 s)
    # Real AKS and Network LROs send no Retry-After, so clients poll at their own interval (the SDK: 30 s).
    # True adds a Retry-After/retry-after-ms of ``poll`` seconds, for tests that drive az's own commands.
    retry_after_hint: bool = False
    token_lifetime: float = 3600.0   # Entra ID access tokens the simulator issues (real: 60-90 min)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "Timings":
        known = {f.name for f in fields(cls)}
        unknown = set(data or {}) - known
        if unknown:
            raise ValueError(f"unknown timings: {sorted(unknown)}")
        return cls(**cls._derived({k: cls.coerce(k, v) for k, v in (data or {}).items()}))

    @staticmethod
    def _derived(values: dict[str, Any]) -> dict[str, Any]:
        if "connector_restart" in values and "backoff_scale" not in values:
            values["backoff_scale"] = values["connector_restart"] / 10   # the first back-off gap (10 s) scaled
        return values

    def update(self, data: dict[str, Any]) -> None:
        """Change timings by name at run time (the admin API), with the same derivations as at load."""
        unknown = set(data) - {f.name for f in fields(self)}
        if unknown:
            raise ValueError(f"unknown timings: {sorted(unknown)}")
        for key, value in self._derived({k: self.coerce(k, v) for k, v in data.items()}).items():
            setattr(self, key, value)

    @staticmethod
    def coerce(key: str, value: Any) -> Any:
        if key == "retry_after_hint":
            return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
        return float(value)


@dataclass
class Scenario:
    name: str = "empty"
    subscription: dict[str, Any] = field(default_factory=dict)
    caller: dict[str, Any] = field(default_factory=dict)
    providers: dict[str, str] = field(default_factory=dict)
    resource_groups: list[dict[str, Any]] = field(default_factory=list)
    clusters: list[dict[str, Any]] = field(default_factory=list)
    service_principals: list[dict[str, Any]] = field(default_factory=list)
    unpullable_images: list[str] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    timings: Timings = field(default_factory=Timings)
    aci_regions: list[str] = field(default_factory=list)
    # ARM reply quirks: {not_latest_operation: InProgress | Succeeded | all} adds the NotLatestOperation
    # error AKS puts on operation polls of that status (see docs/simulator.md)
    arm_quirks: dict[str, Any] = field(default_factory=dict)

    @property
    def subscription_id(self) -> str:
        return self.subscription["id"]

    @property
    def tenant_id(self) -> str:
        return self.subscription["tenantId"]


def _normalise(raw: dict[str, Any]) -> Scenario:
    raw = copy.deepcopy(raw)
    unknown = set(raw) - {f.name for f in fields(Scenario)} - {"extends"}
    if unknown:
        raise ValueError(f"unknown scenario keys: {sorted(unknown)}")
    sub = {"id": DEFAULT_SUBSCRIPTION, "name": "aksim-subscription", "tenantId": DEFAULT_TENANT}
    sub.update(raw.get("subscription") or {})
    caller = {"objectId": DEFAULT_CALLER_OID, "roles": [{"role": "Owner", "scope": f"/subscriptions/{sub['id']}"}]}
    caller.update(raw.get("caller") or {})
    providers = {"Microsoft.ContainerInstance": "Registered", "Microsoft.ContainerService": "Registered",
                 "Microsoft.Network": "Registered"}
    providers.update(raw.get("providers") or {})
    return Scenario(
        name=raw.get("name", "unnamed"),
        subscription=sub,
        caller=caller,
        providers=providers,
        resource_groups=raw.get("resource_groups") or [],
        clusters=raw.get("clusters") or [],
        service_principals=raw.get("service_principals") or [],
        unpullable_images=raw.get("unpullable_images") or [],
        faults=raw.get("faults") or [],
        timings=Timings.from_dict(raw.get("timings")),
        aci_regions=raw.get("aci_regions") or ["eastus", "westeurope", "westus2", "northeurope", "uksouth"],
        arm_quirks=raw.get("arm_quirks") or {},
    )


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_raw(source: str | Path | dict[str, Any]) -> dict[str, Any]:
    """Read a scenario as a plain dict, resolving ``extends: <file>`` (dicts merge, lists replace)."""
    if isinstance(source, dict):
        raw, base_dir = source, SCENARIO_DIR
    else:
        path = Path(source)
        if not path.exists() and (SCENARIO_DIR / path).exists():
            path = SCENARIO_DIR / path
        if not path.exists() and (SCENARIO_DIR / f"{path}.yaml").exists():
            path = SCENARIO_DIR / f"{path}.yaml"
        raw, base_dir = yaml.safe_load(path.read_text()) or {}, path.parent
    if raw.get("extends"):
        parent = Path(raw["extends"])
        parent = parent if parent.is_absolute() else base_dir / parent
        raw = _merge(read_raw(parent), {k: v for k, v in raw.items() if k != "extends"})
    return raw


def load_scenario(source: str | Path | dict[str, Any] | Scenario) -> Scenario:
    if isinstance(source, Scenario):
        return source
    return _normalise(read_raw(source))
