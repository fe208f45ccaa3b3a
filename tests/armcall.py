"""Raw ARM requests to aksim from tests (for what the real clients hide: headers, exact bodies, conditions)."""
from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any


def call(sim: Any, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
         api: str | None = None) -> tuple[int, dict[str, str], Any]:
    """One raw HTTPS request to aksim's ARM endpoint: (status, lower-cased headers, JSON body or None)."""
    url = path if path.startswith("https://") else f"{sim.arm_url}{path}"
    if api:
        url += ("&" if "?" in url else "?") + f"api-version={api}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    ctx = ssl.create_default_context(cafile=str(sim.tls.ca_path))
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            status, hdrs, raw = resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as err:
        status, hdrs, raw = err.code, dict(err.headers.items()), err.read()
    return status, {k.lower(): v for k, v in hdrs.items()}, (json.loads(raw) if raw else None)
