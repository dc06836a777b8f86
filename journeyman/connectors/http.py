"""The shared HTTP base of every API destination: one `requests.Session` per thread, timeouts,
auth injection, error classification and secret redaction.

Credentials arrive as constructor arguments (the orchestration layer reads them from the
environment through Dagster `EnvVar`). They are kept in `Secret` wrappers whose repr is
redacted, and every message this module builds passes through `redact` first, so a key never
reaches a log line, an exception message or a repr.
"""

from __future__ import annotations

import email.utils
import logging
import re
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import requests

from journeyman.connectors.destination import (
    AuthError,
    Destination,
    DestinationError,
    RetryableError,
)

log = logging.getLogger(__name__)

try:  # orjson is several times faster on 1000-recipient payloads; json is the fallback
    import orjson

    def dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

    def loads(data: bytes | str) -> Any:
        return orjson.loads(data)

except ImportError:  # pragma: no cover - depends on the environment
    import json

    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()

    def loads(data: bytes | str) -> Any:
        return json.loads(data)


REDACTED = "***"


class Secret:
    """A credential whose repr and str never show it; `.reveal()` is the only way in."""

    __slots__ = ("_value",)

    def __init__(self, value: str | Secret | None) -> None:
        self._value = value.reveal() if isinstance(value, Secret) else (value or "")

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret(***)" if self._value else "Secret(<empty>)"

    __str__ = __repr__

    def __reduce__(self):  # never pickled into Dagster metadata or run storage
        raise TypeError("secrets are not picklable")


def parse_send_at(value: str) -> datetime:
    """`2026-11-24T14:00:00Z` → naive UTC datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)


def epoch_seconds(value: datetime) -> int:
    return int(value.replace(tzinfo=UTC).timestamp())


_RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class HttpDestination(Destination):
    """Base of the API destinations: session, timeouts, auth, classification, redaction."""

    default_base_url: str = ""

    def __init__(
        self,
        name: str,
        *,
        base_url: str | None = None,
        timeout_s: float | tuple[float, float] = (5.0, 30.0),
        secrets: Iterable[Secret | str] = (),
        clock: Any = time.time,
    ) -> None:
        self.name = name
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise DestinationError(
                f"destination {name!r}: base_url must start with http:// or https://"
            )
        self.timeout = timeout_s
        self._secrets = [s if isinstance(s, Secret) else Secret(s) for s in secrets]
        self._local = threading.local()
        self.wall_clock = clock  # epoch seconds, for X-RateLimit-Reset

    # -- secrets ------------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        """`text` with every known secret (and any bearer/basic token) replaced by ***."""
        for secret in self._secrets:
            value = secret.reveal()
            if value and len(value) >= 4:
                text = text.replace(value, REDACTED)
        return re.sub(r"(?i)(bearer|basic|klaviyo-api-key)\s+[^\s\"',]+", r"\1 " + REDACTED, text)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, base_url={self.base_url!r})"

    # -- HTTP ---------------------------------------------------------------------------------

    @property
    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # no proxies from the environment unless base_url says so
            self._local.session = session
        return session

    def close(self) -> None:
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()
            self._local.session = None

    def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate a request (override per vendor)."""
        return {}

    def request(
        self,
        method: str,
        path: str,
        *,
        data: bytes | Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        url: str | None = None,
        authenticate: bool = True,
    ) -> requests.Response:
        """One HTTP call; transport failures become RetryableError (secrets redacted)."""
        all_headers = {**(self.auth_headers() if authenticate else {}), **(headers or {})}
        target = url or f"{self.base_url}{path}"
        # `from None` below: a chained transport exception's text can carry URLs with credentials
        try:
            return self.session.request(
                method,
                target,
                data=data,
                headers=all_headers,
                params=params,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.ConnectTimeout:
            raise RetryableError("connect_timeout") from None
        except requests.ReadTimeout:
            raise RetryableError("timeout", ambiguous=True) from None
        except requests.ConnectionError as exc:
            text = str(exc)
            if "NewConnectionError" in text or "Connection refused" in text:
                raise RetryableError("connection_refused") from None
            raise RetryableError("connection_lost", ambiguous=True) from None
        except requests.RequestException as exc:
            raise DestinationError(
                f"destination {self.name!r}: request failed ({type(exc).__name__})"
            ) from None

    def vendor_wait_s(self, response: requests.Response) -> float | None:
        """The wait the vendor asked for: Retry-After (seconds or HTTP date) or
        X-RateLimit-Reset (epoch seconds)."""
        retry_after = response.headers.get("Retry-After")
        if retry_after:
            try:
                return max(0.0, float(retry_after))
            except ValueError:
                try:
                    when = email.utils.parsedate_to_datetime(retry_after)
                    return max(0.0, when.timestamp() - self.wall_clock())
                except (TypeError, ValueError):
                    pass
        reset = response.headers.get("X-RateLimit-Reset")
        if reset:
            try:
                value = float(reset)
            except ValueError:
                return None
            # epoch seconds (SendGrid, Braze); a small number is "seconds from now"
            return max(0.0, value - self.wall_clock()) if value > 1e9 else max(0.0, value)
        return None

    def raise_for_request(self, response: requests.Response, code_prefix: str = "http") -> None:
        """Whole-request failures: 401/403 → AuthError, 429/5xx → RetryableError."""
        status = response.status_code
        if status in (401, 403):
            raise AuthError(
                f"destination {self.name!r}: the vendor rejected the credentials (HTTP {status}); "
                "check the API key / token environment variable and its permissions"
            )
        if status in _RETRYABLE_STATUS:
            raise RetryableError(f"{code_prefix}_{status}", wait_s=self.vendor_wait_s(response))

    def describe_error(self, response: requests.Response, limit: int = 200) -> str:
        """A short, redacted excerpt of an error body for the ledger."""
        return self.redact(response.text[:limit].replace("\n", " "))

    def check_response(self, response: requests.Response, what: str) -> None:
        """check(): turn a non-2xx answer to a credentials probe into one clear error."""
        if response.status_code in (401, 403):
            raise AuthError(
                f"destination {self.name!r}: {what} rejected the credentials "
                f"(HTTP {response.status_code}); check the environment variable holding them"
            )
        if response.status_code >= 400:
            raise DestinationError(
                f"destination {self.name!r}: {what} answered HTTP {response.status_code}: "
                f"{self.describe_error(response)}"
            )

    def probe(self, method: str, path: str, what: str, **kwargs: Any) -> requests.Response:
        """check(): one request that sends nothing, with transport errors made clear."""
        try:
            response = self.request(method, path, **kwargs)
        except RetryableError as exc:
            raise DestinationError(
                f"destination {self.name!r}: cannot reach {self.base_url} ({exc.code})"
            ) from None
        self.check_response(response, what)
        return response


def require(value: Any, what: str, name: str, env: str | None = None) -> None:
    """Raise a clear DestinationError when a required setting is empty."""
    if not value:
        hint = f" (environment variable {env})" if env else ""
        raise DestinationError(f"destination {name!r}: {what} is not set{hint}")
