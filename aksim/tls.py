"""A throw-away CA and a server certificate for 127.0.0.1, generated at start (trustme)."""
from __future__ import annotations

import base64
import ssl
from pathlib import Path

import trustme


class Tls:
    def __init__(self, workdir: Path) -> None:
        self.ca = trustme.CA(organization_name="aksim")
        self._cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self.ca_path = workdir / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_path))

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._cert.configure_cert(ctx)
        return ctx

    @property
    def ca_data_b64(self) -> str:
        return base64.b64encode(self.ca.cert_pem.bytes()).decode()
