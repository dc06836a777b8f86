"""Build a destination from its kind and settings: the one place orchestration needs.

`build_destination(name, kind, settings)`; secrets in `settings` are plain strings the caller
read from the environment (Dagster `EnvVar`). Each kind's settings, and the environment
variables that conventionally hold its secrets (`SECRET_ENV`):

- `file`: `root` (outbox folder).
- `sendgrid`: `api_key` (SENDGRID_API_KEY), `from_email`; optional `from_name`, `template_id`,
  `categories`, `use_batch_id`, `activity_lookup`, `base_url`.
- `twilio`: `account_sid` (TWILIO_ACCOUNT_SID), `auth_token` (TWILIO_AUTH_TOKEN), and
  `messaging_service_sid` (needed to schedule) or `from_number`; optional `status_callback`,
  `base_url`.
- `fcm`: `service_account_json` (FCM_SERVICE_ACCOUNT_JSON: the key file's JSON text); optional
  `project_id`, `token_url`, `base_url`.
- `braze`: `api_key` (BRAZE_API_KEY), `base_url` (your cluster's REST endpoint); optional
  `mode` (`track` / `schedule`), `campaign_id` (schedule mode).
- `klaviyo`: `api_key` (KLAVIYO_API_KEY); optional `metric_name`, `bulk`, `revision`,
  `send_ahead`, `base_url`.
- `mailchimp`: `api_key` (MAILCHIMP_TRANSACTIONAL_KEY), `from_email`; optional `from_name`,
  `base_url`.
- `webhook`: `url`, `secret` (WEBHOOK_SECRET); optional `max_batch_size`, `receiver_dedups`,
  `rate_limit`.

Every HTTP kind also takes `timeout_s` (seconds, or a (connect, read) pair).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from journeyman.connectors.braze import BrazeDestination
from journeyman.connectors.destination import Destination, DestinationError
from journeyman.connectors.fcm import FcmDestination
from journeyman.connectors.file import FileDestination
from journeyman.connectors.klaviyo import KlaviyoDestination
from journeyman.connectors.mailchimp import MailchimpTransactionalDestination
from journeyman.connectors.sendgrid import SendGridDestination
from journeyman.connectors.twilio import TwilioDestination
from journeyman.connectors.webhook import WebhookDestination

#: setting name → environment variable conventionally holding it, per kind
SECRET_ENV: dict[str, dict[str, str]] = {
    "file": {},
    "sendgrid": {"api_key": "SENDGRID_API_KEY"},
    "twilio": {"account_sid": "TWILIO_ACCOUNT_SID", "auth_token": "TWILIO_AUTH_TOKEN"},
    "fcm": {"service_account_json": "FCM_SERVICE_ACCOUNT_JSON"},
    "braze": {"api_key": "BRAZE_API_KEY"},
    "klaviyo": {"api_key": "KLAVIYO_API_KEY"},
    "mailchimp": {"api_key": "MAILCHIMP_TRANSACTIONAL_KEY"},
    "webhook": {"secret": "WEBHOOK_SECRET"},
}

KINDS: dict[str, Callable[..., Destination]] = {
    "file": lambda name, root: FileDestination(Path(root), name=name),
    "sendgrid": SendGridDestination,
    "twilio": TwilioDestination,
    "fcm": FcmDestination,
    "braze": BrazeDestination,
    "klaviyo": KlaviyoDestination,
    "mailchimp": MailchimpTransactionalDestination,
    "webhook": WebhookDestination,
}


def build_destination(name: str, kind: str, settings: Mapping[str, Any]) -> Destination:
    """A configured destination of `kind` named `name` (raises DestinationError, secrets never
    included in the message)."""
    factory = KINDS.get(kind)
    if factory is None:
        raise DestinationError(
            f"destination {name!r}: unknown kind {kind!r}; choose one of {sorted(KINDS)}"
        )
    try:
        return factory(name, **dict(settings))
    except TypeError as exc:
        allowed = sorted(SECRET_ENV.get(kind, {}))
        text = str(exc).split("(", 1)[-1]  # the argument name only, never a value
        raise DestinationError(
            f"destination {name!r} ({kind}): bad settings ({text.strip(')')}); "
            f"secrets {allowed} come from environment variables {SECRET_ENV.get(kind)}"
        ) from None
