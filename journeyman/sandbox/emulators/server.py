"""The emulator core: a loopback HTTP server (thread or own process), fault injection,
delivery records, and a small control API (`/_emulator/...`) for out-of-process use."""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

try:
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

    _loads = orjson.loads
except ImportError:  # pragma: no cover

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj).encode()

    _loads = json.loads

CONTROL = "/_emulator/"
_UNPARSED = object()


@dataclass
class Delivery:
    """One message a vendor accepted, as the sandbox world needs it to answer."""

    vendor: str
    decision_id: str | None
    recipient: str
    subject: str | None
    body: str | None
    send_at: str | None
    provider_id: str
    callback: str | None = None
    received_at: float = field(default_factory=time.time)
    custom_args: dict[str, str] | None = None  # SendGrid echoes them in every event


@dataclass
class Fault:
    """One injected failure. kind: 429 | 500 | 503 | slow | drop | drop_after | 401.

    `times` requests are affected; `path` limits it to request paths containing the text;
    `retry_after` / `reset_in` (seconds) shape a 429's headers (vendor default otherwise).
    """

    kind: str
    times: int = 1
    path: str | None = None
    retry_after: float | None = None
    reset_in: float | None = None
    seconds: float = 0.0


class Request:
    """What a vendor handler sees. `json()` and `form()` parse the body once."""

    def __init__(
        self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: bytes
    ) -> None:
        self.method, self.path, self.query, self.headers, self.body = (
            method,
            path,
            query,
            headers,
            body,
        )
        self._json: Any = _UNPARSED
        self._form: dict[str, list[str]] | None = None

    def json(self) -> Any:
        """The JSON body (`null` when empty); ValueError when it is not JSON."""
        if self._json is _UNPARSED:
            self._json = _loads(self.body or b"null")
        return self._json

    def form(self) -> dict[str, list[str]]:
        """The form-encoded body; ValueError when it is not UTF-8."""
        if self._form is None:
            self._form = urllib.parse.parse_qs(self.body.decode(), keep_blank_values=True)
        return self._form


class Response:
    def __init__(
        self,
        status: int,
        body: Any = b"",
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> None:
        self.status = status
        self.body = body if isinstance(body, bytes) else _dumps(body)
        self.headers = dict(headers or {})
        if self.body:
            self.headers.setdefault("Content-Type", content_type)


class Emulator:
    """Base of every emulator: override `handle(request) -> Response` (the vendors do it once,
    in `base.VendorEmulator`).

    validate: "all" checks every request against the spec, "sample" one in `sample_every`,
    "off" none. record: "full" keeps every Delivery, "counts" only counts per decision id
    (benchmarks). id_seed: vendor ids (message SIDs, batch ids) derive from the seed and a
    request counter instead of random UUIDs, so the same requests get the same ids (the demo).
    """

    vendor = "vendor"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        validate: str = "all",
        sample_every: int = 100,
        record: str = "full",
        id_seed: int | None = None,
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("emulators listen on loopback only")
        self.host, self.port = host, port
        self.validate, self.sample_every, self.record = validate, sample_every, record
        self.lock = threading.Lock()
        self.id_seed = id_seed
        self._id_lock = threading.Lock()
        self._id_counts: dict[bytes, int] = {}
        self.faults: list[Fault] = []
        self.invalid_recipients: set[str] = set()
        self.reset()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- state ---------------------------------------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            self.delivered: list[Delivery] = []
            self.counts: Counter[str] = Counter()
            self.requests = 0
            self.requests_by_path: Counter[str] = Counter()
            self.faults_served: Counter[str] = Counter()
            self.validation_errors: list[str] = []
            self.auth_failures = 0
            self.recipients = 0
            self._seq = 0

    def next_id(self, prefix: str, content: bytes | None = None) -> str:
        """A vendor-looking id: prefix + 32 hex digits. Seeded (`id_seed`): derived from the
        request `content` and how often that content came before (else from a counter), so the
        same requests get the same ids in any order."""
        if self.id_seed is None:
            return prefix + uuid.uuid4().hex
        with self._id_lock:
            key = content if content is not None else b""
            self._id_counts[key] = n = self._id_counts.get(key, 0) + 1
        seed = f"{self.vendor}:{self.id_seed}:{n}:".encode()
        return prefix + hashlib.sha256(seed + key).hexdigest()[:32]

    def accept(self, deliveries: list[Delivery]) -> None:
        """Record accepted messages (count per decision id)."""
        with self.lock:
            self.recipients += len(deliveries)
            self.counts.update(d.decision_id for d in deliveries if d.decision_id)
            if self.record == "full":
                self.delivered.extend(deliveries)

    def accept_counts(self, decision_ids: list[str]) -> None:
        with self.lock:
            self.recipients += len(decision_ids)
            self.counts.update(decision_ids)

    def should_validate(self) -> bool:
        if self.validate == "all":
            return True
        if self.validate == "sample":
            return self.requests % self.sample_every == 1
        return False

    def invalid(self, errors: list[str]) -> None:
        with self.lock:
            self.validation_errors.extend(errors)

    def inject(self, kind: str, times: int = 1, **params: Any) -> None:
        """Queue a fault for the next matching request(s)."""
        with self.lock:
            self.faults.append(Fault(kind=str(kind), times=times, **params))

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        with self.lock:
            self.faults.clear()

    def reject_recipients(self, recipients: list[str]) -> None:
        """Addresses / tokens the vendor will refuse as invalid."""
        with self.lock:
            self.invalid_recipients.update(recipients)

    def _take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.times > 0 and (fault.path is None or fault.path in path):
                    fault.times -= 1
                    self.faults_served[fault.kind] += 1
                    if fault.times == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def deliveries(self) -> list[Delivery]:
        with self.lock:
            return list(self.delivered)

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "vendor": self.vendor,
                "requests": self.requests,
                "requests_by_path": dict(self.requests_by_path),
                "recipients": self.recipients,
                "unique_decisions": len(self.counts),
                "duplicates": sum(c - 1 for c in self.counts.values() if c > 1),
                "faults_served": dict(self.faults_served),
                "validation_errors": list(self.validation_errors[:50]),
                "auth_failures": self.auth_failures,
            }

    # -- vendor behaviour ---------------------------------------------------------------------

    def respond(self, request: Request) -> Response | None:
        """The answer to one request: the control API, else an injected fault, else `handle`.
        None: drop the connection (a `drop` fault, or `drop_after` once handled)."""
        if request.path.startswith(CONTROL):
            return self.control(request)
        with self.lock:
            self.requests += 1
            self.requests_by_path[request.path] += 1
        fault = self._take_fault(request.path)
        if fault is not None:
            if fault.kind == "drop":
                return None
            if fault.kind == "slow":
                time.sleep(fault.seconds)
            elif fault.kind != "drop_after":
                return self.fault_response(fault)
        try:
            response = self.handle(request)
        except Exception as exc:  # an emulator bug must be visible, not a hang
            response = Response(500, {"emulator_error": f"{type(exc).__name__}: {exc}"})
        if fault is not None and fault.kind == "drop_after":
            return None  # processed, but the client never hears back
        return response

    def handle(self, request: Request) -> Response:  # pragma: no cover - abstract
        raise NotImplementedError

    def fault_response(self, fault: Fault) -> Response:
        """The vendor's answer to an injected 429 / 5xx / 401 (override for vendor style)."""
        if fault.kind == "429":
            return Response(
                429, {"errors": [{"message": "too many requests"}]}, self.rate_headers(fault)
            )
        if fault.kind == "401":
            return self.unauthorized()
        return Response(int(fault.kind), {"errors": [{"message": "internal error"}]})

    def rate_headers(self, fault: Fault) -> dict[str, str]:
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(int(fault.retry_after))
        if fault.reset_in is not None:
            headers["X-RateLimit-Reset"] = str(int(time.time() + fault.reset_in))
        return headers

    def unauthorized(self) -> Response:
        return Response(401, {"errors": [{"message": "unauthorized"}]})

    # -- control API ----------------------------------------------------------------------------

    def control(self, request: Request) -> Response:
        name = request.path[len(CONTROL) :]
        if name == "deliveries":
            return Response(200, [asdict(d) for d in self.deliveries()])
        if name == "counts":
            with self.lock:
                return Response(200, dict(self.counts))
        if name == "stats":
            return Response(200, self.stats())
        if name == "reset" and request.method == "POST":
            self.reset()
            with self.lock:
                self.faults.clear()
                self.invalid_recipients.clear()
            return Response(200, {"ok": True})
        if name == "faults" and request.method == "POST":
            for spec in request.json():
                self.inject(**spec)
            return Response(200, {"ok": True})
        if name == "faults/clear" and request.method == "POST":
            self.clear_faults()
            return Response(200, {"ok": True})
        if name == "invalid" and request.method == "POST":
            self.reject_recipients(list(request.json()))
            return Response(200, {"ok": True})
        if name == "events" and request.method == "POST":
            spec = request.json()
            sent = self.emit_events(
                spec["url"], spec.get("events", ["delivered"]), spec.get("decision_ids")
            )
            return Response(200, {"sent": sent})
        return Response(404, {"error": "unknown control endpoint"})

    def emit_events(self, url: str, kinds: list[str], decision_ids: list[str] | None = None) -> int:
        """POST signed vendor webhooks for deliveries (override per vendor)."""
        raise NotImplementedError(f"{self.vendor} emulator sends no event webhooks")

    # -- server -----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Emulator:
        """Serve in a daemon thread on an ephemeral loopback port; returns self."""
        self._server = _Server((self.host, self.port), _handler_for(self))
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def serve_forever(self) -> None:
        self._server = _Server((self.host, self.port), _handler_for(self))
        self.port = self._server.server_address[1]
        print(f"READY {self.url}", flush=True)
        try:
            self._server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        finally:
            self._server.server_close()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def _handler_for(emulator: Emulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "journeyman-emulator"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def setup(self) -> None:
            super().setup()
            # headers and body go out as separate writes: without this, Nagle + delayed ACK
            # add ~40 ms to every small response on a kept-alive connection
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _serve(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = Request(
                self.command,
                parts.path,
                urllib.parse.parse_qs(parts.query, keep_blank_values=True),
                self.headers,
                body,
            )
            response = emulator.respond(request)
            if response is None:
                return self._drop()
            self._write(response)

        def _drop(self) -> None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

        def _write(self, response: Response) -> None:
            self.send_response(response.status)
            for key, value in response.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if response.body:
                self.wfile.write(response.body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    return Handler
