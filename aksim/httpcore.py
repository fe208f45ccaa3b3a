"""HTTP(S) plumbing shared by every simulated endpoint.

An :class:`Endpoint` is one listening socket (ARM, Kubernetes, admin/identity) with a :class:`Router`,
a :class:`RequestLog` and the fault rules that apply to it. Service modules register routes as
path templates (``/subscriptions/{sub}/resourcegroups/{rg}``), matched case-insensitively;
the template is what the request log counts, so tests can assert exactly what a command sent.
"""
from __future__ import annotations

import json
import re
import ssl
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, unquote, urlsplit


class Request:
    def __init__(self, method: str, raw_path: str, headers: dict[str, str], body: bytes, endpoint: "Endpoint"):
        parts = urlsplit(raw_path)
        self.method = method
        self.raw_path = raw_path
        self.path = unquote(parts.path).rstrip("/") or "/"
        self.query: dict[str, list[str]] = parse_qs(parts.query, keep_blank_values=True)
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body
        self.endpoint = endpoint
        self.params: dict[str, str] = {}
        self.template = ""

    def q(self, name: str, default: str | None = None) -> str | None:
        """First value of a query parameter, looked up case-insensitively (ARM ignores case)."""
        for key, values in self.query.items():
            if key.lower() == name.lower():
                return values[0]
        return default

    def json(self) -> Any:
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise HttpError(400, "InvalidRequestContent", f"The request content was invalid: {exc}") from exc


@dataclass
class Response:
    status: int = 200
    body: Any = None                       # dict/list -> JSON, bytes/str -> as is, None -> empty
    headers: dict[str, str] = field(default_factory=dict)
    stream: Iterable[bytes] | None = None  # chunked streaming body (watches)

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body, separators=(",", ":")).encode()


class HttpError(Exception):
    """Raised by handlers; rendered by the endpoint's error renderer (ARM envelope or Kubernetes Status)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
                 details: Any = None, unwrapped: bool = False, target: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.details = details
        self.unwrapped = unwrapped   # resource-provider error sent without ARM's {"error": ...} envelope (AKS)
        self.target = target


Handler = Callable[[Request], Response]


@dataclass
class Route:
    method: str
    template: str
    regex: re.Pattern[str]
    handler: Handler


class Router:
    """Templates use ``{name}`` for one path segment and ``{name:path}`` for one or more (e.g. an ARM scope)."""
    _PARAM = re.compile(r"\{(\w+)(:path)?\}")

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, template: str, handler: Handler) -> None:
        pattern = ""
        pos = 0
        for m in self._PARAM.finditer(template):
            segment = ".+?" if m.group(2) else "[^/]+"
            pattern += re.escape(template[pos:m.start()]) + f"(?P<{m.group(1)}>{segment})"
            pos = m.end()
        pattern += re.escape(template[pos:])
        regex = re.compile("^" + pattern + "$", re.IGNORECASE)
        for verb in method.split("|"):
            self.routes.append(Route(verb, template, regex, handler))

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """Return (route, params, path_known). path_known is True when another verb matches the path."""
        known = False
        for route in self.routes:
            m = route.regex.match(path)
            if not m:
                continue
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                return route, m.groupdict(), True
            known = True
        return None, {}, known


@dataclass
class LogEntry:
    time: float
    method: str
    path: str
    query: str
    template: str
    status: int
    duration_ms: float

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


class RequestLog:
    """Counts per ``METHOD template`` plus the most recent entries; thread-safe and resettable."""

    def __init__(self, keep: int = 5000) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.entries: deque[LogEntry] = deque(maxlen=keep)

    def record(self, entry: LogEntry) -> None:
        with self._lock:
            self.counts[f"{entry.method} {entry.template}"] += 1
            self.entries.append(entry)

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()
            self.entries.clear()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"total": sum(self.counts.values()), "counts": dict(self.counts),
                    "entries": [e.as_dict() for e in self.entries]}


@dataclass
class FaultRule:
    """Inject a failure: requests whose method and path match answer ``status`` (``times`` times, -1 = always).

    With ``status == 0`` the rule only adds ``latency`` and lets the request through.
    """
    method: str = "*"
    path: str = ".*"
    status: int = 500
    code: str = "InternalServerError"
    message: str = "Injected fault."
    retry_after: float | None = None
    latency: float = 0.0
    times: int = 1
    endpoint: str = "arm"
    hits: int = 0

    def __post_init__(self) -> None:
        self._regex = re.compile(self.path, re.IGNORECASE)

    def matches(self, endpoint: str, method: str, path: str) -> bool:
        if self.endpoint != endpoint or (self.times >= 0 and self.hits >= self.times):
            return False
        if self.method not in ("*", method):
            return False
        return bool(self._regex.search(path))

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


class FaultTable:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self.rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def take(self, endpoint: str, method: str, path: str) -> FaultRule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(endpoint, method, path):
                    rule.hits += 1
                    return rule
        return None


ErrorRenderer = Callable[[HttpError, Request], Response]


def arm_error(err: HttpError, _req: Request) -> Response:
    if err.unwrapped:
        # AKS answers its own (resource-provider) errors as a bare object, as recorded: code, details,
        # message, subcode, target - no "error" envelope. ARM-level errors keep the envelope.
        flat = {"code": err.code, "details": err.details, "message": err.message, "subcode": "",
                "target": err.target}
        return Response(err.status, flat, dict(err.headers))
    body: dict[str, Any] = {"error": {"code": err.code, "message": err.message}}
    if err.details:
        body["error"]["details"] = err.details
    return Response(err.status, body, dict(err.headers))


class Endpoint:
    """One listening socket on 127.0.0.1 serving a router, optionally over TLS."""

    def __init__(self, name: str, router: Router, faults: FaultTable, *, ssl_context: ssl.SSLContext | None,
                 error_renderer: ErrorRenderer = arm_error, port: int = 0,
                 authenticate: Callable[[Request], None] | None = None) -> None:
        self.name = name
        self.router = router
        self.faults = faults
        self.log = RequestLog()
        self.ssl_context = ssl_context
        self.error_renderer = error_renderer
        self.authenticate = authenticate
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        endpoint = self

        class _Handler(_RequestHandler):
            pass

        _Handler.endpoint = endpoint
        server = _Server(("127.0.0.1", self.port), _Handler, bind_and_activate=False)
        server.allow_reuse_address = True
        server.server_bind()
        server.server_activate()
        if self.ssl_context is not None:
            server.socket = self.ssl_context.wrap_socket(server.socket, server_side=True,
                                                         do_handshake_on_connect=False)
        self.port = server.server_address[1]
        self.stopping.clear()
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"aksim-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening (clients then get 'connection refused'); open streams end."""
        server, self._server = self._server, None
        if server is None:
            return
        self.stopping.set()
        server.shutdown()
        server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def handle(self, req: Request) -> Response:
        started = time.monotonic()
        route, params, known = self.router.match(req.method, req.path)
        req.params = params
        req.template = route.template if route else req.path
        try:
            rule = self.faults.take(self.name, req.method, req.path)
            if rule is not None:
                if rule.latency:
                    time.sleep(rule.latency)
                if rule.status:
                    headers = {}
                    if rule.retry_after is not None:
                        headers["Retry-After"] = _fmt_retry_after(rule.retry_after)
                    raise HttpError(rule.status, rule.code, rule.message, headers)
            if self.authenticate is not None:
                self.authenticate(req)
            if route is None:
                if known:
                    raise HttpError(405, "MethodNotAllowed",
                                    f"The requested resource does not support http method '{req.method}'.")
                raise HttpError(404, "NotFound", f"No route for {req.method} {req.path}.")
            resp = route.handler(req)
        except HttpError as err:
            resp = self.error_renderer(err, req)
        except Exception as exc:  # pylint: disable=broad-except
            import traceback
            traceback.print_exc()
            resp = self.error_renderer(HttpError(500, "InternalServerError", f"aksim: {exc!r}"), req)
        query = urlsplit(req.raw_path).query
        self.log.record(LogEntry(time.time(), req.method, req.path, query, req.template, resp.status,
                                 (time.monotonic() - started) * 1000))
        return resp


def _fmt_retry_after(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


def retry_after_headers(seconds: float) -> dict[str, str]:
    """ARM sends whole seconds in Retry-After; sub-second test timings use retry-after-ms (azure-core honours both)."""
    if seconds >= 1:
        return {"Retry-After": str(int(round(seconds)))}
    return {"retry-after-ms": str(max(1, int(seconds * 1000)))}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:  # quiet on client disconnects
        pass


class _RequestHandler(BaseHTTPRequestHandler):
    endpoint: Endpoint
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "aksim"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature from stdlib
        pass

    def setup(self) -> None:
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            self.connection.settimeout(30)
            try:
                self.connection.do_handshake()
            except (ssl.SSLError, OSError):
                self.close_connection = True
                raise

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = Request(self.command, self.path, dict(self.headers.items()), body, self.endpoint)
        resp = self.endpoint.handle(req)
        if resp.stream is not None:
            self._send_stream(resp)
            return
        payload = resp.encoded()
        self.send_response(resp.status)
        headers = {"Content-Type": "application/json; charset=utf-8"} if resp.body is not None else {}
        headers.update(resp.headers)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload)

    def _send_stream(self, resp: Response) -> None:
        self.send_response(resp.status)
        headers = {"Content-Type": "application/json"}
        headers.update(resp.headers)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        try:
            for chunk in resp.stream or ():
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass
        finally:
            close = getattr(resp.stream, "close", None)
            if close:
                close()
        self.close_connection = True

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = _dispatch  # noqa: N815
