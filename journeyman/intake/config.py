"""Receiver settings, read from environment variables; secrets never appear in repr or logs."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from journeyman import settings
from journeyman.signing import load_sendgrid_public_key

SENDGRID_KEY_ENV = "SENDGRID_WEBHOOK_PUBLIC_KEY"
TWILIO_TOKEN_ENV = "TWILIO_AUTH_TOKEN"
WEBHOOK_SECRET_ENV = "WEBHOOK_SECRET"
PUBLIC_URL_ENV = "JOURNEYMAN_PUBLIC_URL"
MAX_AGE_ENV = "JOURNEYMAN_INTAKE_MAX_AGE_S"
MAX_BODY_ENV = "JOURNEYMAN_INTAKE_MAX_BODY_BYTES"
PATH_ENV = {
    "sendgrid": "JOURNEYMAN_INTAKE_SENDGRID_PATH",
    "twilio": "JOURNEYMAN_INTAKE_TWILIO_PATH",
    "generic": "JOURNEYMAN_INTAKE_GENERIC_PATH",
}

DEFAULT_MAX_AGE_S = 300.0
DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024


class IntakeConfigError(ValueError):
    """The receiver's configuration is invalid; the message names the variable and the fix."""


@dataclass(frozen=True)
class IntakeSettings:
    """Everything the event receiver needs: warehouse, verification secrets, limits, clock."""

    warehouse: str | Path  # a DuckDB file or a PostgreSQL URL (journeyman/settings.py)
    sendgrid_public_key: str | None = field(default=None, repr=False)
    twilio_auth_token: str | None = field(default=None, repr=False)
    webhook_secret: str | None = field(default=None, repr=False)
    public_url: str | None = None
    max_age_s: float = DEFAULT_MAX_AGE_S
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    sendgrid_path: str = "/webhooks/sendgrid"
    twilio_path: str = "/webhooks/twilio"
    generic_path: str = "/webhooks/generic"
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.sendgrid_public_key is not None:
            try:
                load_sendgrid_public_key(self.sendgrid_public_key)
            except Exception as exc:  # noqa: BLE001 - any parse failure means the same fix
                raise IntakeConfigError(
                    f"{SENDGRID_KEY_ENV} is not a base64 DER EC P-256 public key; paste the "
                    "verification key shown under Mail Settings > Signed Event Webhook."
                ) from exc
        if self.public_url is not None:
            parts = urlsplit(self.public_url)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
                raise IntakeConfigError(
                    f"{PUBLIC_URL_ENV} must be the external base URL, e.g. "
                    "https://events.example.com or https://example.com/journeyman (no query)."
                )
        for source, env_name in PATH_ENV.items():
            path = getattr(self, f"{source}_path")
            if not path.startswith("/") or "?" in path or path in ("/healthz", "/metrics"):
                raise IntakeConfigError(f"{env_name} must be a path like /webhooks/{source}.")
        if self.max_age_s <= 0:
            raise IntakeConfigError(f"{MAX_AGE_ENV} must be a positive number of seconds.")
        if self.max_body_bytes <= 0:
            raise IntakeConfigError(f"{MAX_BODY_ENV} must be a positive number of bytes.")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> IntakeSettings:
        """Settings from JOURNEYMAN_WAREHOUSE, the vendor secrets and the intake limits."""
        env = os.environ if environ is None else environ

        def text(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        def number(name: str, default: float) -> float:
            raw = text(name)
            if raw is None:
                return default
            try:
                return float(raw)
            except ValueError:
                raise IntakeConfigError(f"{name} must be a number, got {raw!r}.") from None

        # a URL, or the DuckDB file's absolute path
        location = settings.resolve_warehouse(text(settings.WAREHOUSE_ENV))
        return cls(
            warehouse=location if settings.is_url(location) else Path(location),
            sendgrid_public_key=text(SENDGRID_KEY_ENV),
            twilio_auth_token=text(TWILIO_TOKEN_ENV),
            webhook_secret=text(WEBHOOK_SECRET_ENV),
            public_url=text(PUBLIC_URL_ENV),
            max_age_s=number(MAX_AGE_ENV, DEFAULT_MAX_AGE_S),
            max_body_bytes=int(number(MAX_BODY_ENV, DEFAULT_MAX_BODY_BYTES)),
            **{
                f"{source}_path": path
                for source, env_name in PATH_ENV.items()
                if (path := text(env_name))
            },
        )

    def enabled_sources(self) -> list[str]:
        """The webhook routes that have their verification secret configured."""
        return [
            name
            for name, secret in (
                ("sendgrid", self.sendgrid_public_key),
                ("twilio", self.twilio_auth_token),
                ("generic", self.webhook_secret),
            )
            if secret
        ]
