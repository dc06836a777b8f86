"""SendGrid Mail Send v3 (`POST /v3/mail/send`): up to 1000 personalizations per request.

One personalization per recipient carries the rendered subject, the body (as a substitution of
the shared `-journeyman_body-` content tag, or `dynamic_template_data` with a dynamic template),
`custom_args` with the decision and customer ids (SendGrid echoes them in every event webhook,
so outcomes join back to decisions) and `send_at` when the send is scheduled (at most 72 h
ahead; later records are deferred by the engine). All requests of one run share one `batch_id`
(`POST /v3/mail/batch`), so a run's scheduled sends can be paused or cancelled together.

Reconciliation: SendGrid has no idempotency key. With `activity_lookup=True` (the Email Activity
API, a paid add-on), a record whose outcome is unknown (lost response, crash) is looked up by its
`decision_id` custom arg — at most 6 lookups a minute (SendGrid's documented limit), and an
"absent" answer counts only once the attempt is older than `lookup_lag_s` (the activity index
lags). Without the add-on such records stay `unknown` until an operator resolves them.

A message with a vendor `template_id` is sent with that dynamic template and its variables as
`dynamic_template_data`; records of different templates go in separate requests.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from journeyman.connectors.destination import (
    BatchResult,
    DeliveryStatus,
    DestinationError,
    Lookup,
    LookupUnavailable,
    MessageBatch,
    RejectedBatchError,
    RetryableError,
)
from journeyman.connectors.grouping import send_groups
from journeyman.connectors.http import (
    HttpDestination,
    Secret,
    dumps,
    epoch_seconds,
    loads,
    parse_send_at,
    require,
)
from journeyman.connectors.pacing import RateLimit

BODY_TAG = "-journeyman_body-"
_CONTROL = "[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f]"
_NEEDS_ESCAPE = '[\\x00-\\x1f"\\\\]'


@lru_cache(maxsize=4096)
def _parse(send_at: str) -> datetime:
    return parse_send_at(send_at)


def _json_text(column: Any) -> Any:
    """Arrow strings → JSON string literals (quoted, escaped); nulls stay null."""
    if not pc.any(pc.match_substring_regex(column, _NEEDS_ESCAPE)).as_py():
        return pc.binary_join_element_wise('"', column, '"', "")  # the common case: no escapes
    if pc.any(pc.match_substring_regex(column, _CONTROL)).as_py():
        return pa.array(
            [None if v is None else dumps(v).decode() for v in column.to_pylist()], pa.string()
        )
    escaped = pc.replace_substring(column, "\\", "\\\\")
    escaped = pc.replace_substring(escaped, '"', '\\"')
    escaped = pc.replace_substring(escaped, "\n", "\\n")
    escaped = pc.replace_substring(escaped, "\r", "\\r")
    escaped = pc.replace_substring(escaped, "\t", "\\t")
    return pc.binary_join_element_wise('"', escaped, '"', "")


def _joined(encoded: Any) -> bytes:
    """Pre-encoded personalizations (str list or Arrow strings) → `a,b,c` as bytes."""
    if isinstance(encoded, list):
        return ",".join(encoded).encode()
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    one = pa.ListArray.from_arrays(pa.array([0, len(encoded)], pa.int32()), encoded)
    return pc.binary_join(one, ",")[0].as_buffer().to_pybytes()


MAX_SUBSTITUTION_BYTES = 10_000


class SendGridDestination(HttpDestination):
    """E-mail through SendGrid's v3 Mail Send API."""

    default_base_url = "https://api.sendgrid.com"  # EU subusers: https://api.eu.sendgrid.com
    max_batch_size = 1000
    schedule_window = (timedelta(0), timedelta(hours=72))
    #: "Scheduled sends cancelled less than 10 minutes before the scheduled time are not
    #: guaranteed to be cancelled" (Scheduled Sends API)
    cancel_cutoff = timedelta(minutes=10)
    default_rate_limit = RateLimit(
        10_000, 10_000, "SendGrid: Mail Send accepts up to 10,000 requests per second"
    )
    lookup_rate_limit = RateLimit(6 / 60, 1, "SendGrid Email Activity API: 6 requests per minute")
    can_cancel = True

    def __init__(
        self,
        name: str = "sendgrid",
        *,
        api_key: str | Secret,
        from_email: str,
        from_name: str | None = None,
        template_id: str | None = None,
        categories: Iterable[str] = (),
        use_batch_id: bool = True,
        activity_lookup: bool = False,
        lookup_lag_s: float = 600.0,
        content_type: str = "text/plain",
        base_url: str | None = None,
        timeout_s: float | tuple[float, float] = (5.0, 30.0),
    ) -> None:
        self.api_key = Secret(api_key)
        super().__init__(name, base_url=base_url, timeout_s=timeout_s, secrets=[self.api_key])
        self.from_email = from_email
        self.from_name = from_name
        self.template_id = template_id
        self.categories = list(categories)
        self.use_batch_id = use_batch_id
        self.activity_lookup = activity_lookup
        self.can_lookup = activity_lookup
        self.lookup_lag = timedelta(seconds=lookup_lag_s)
        self.content_type = content_type
        self._batch_id: str | None = None
        self._batch_lock = threading.Lock()
        self._headers = {"Content-Type": "application/json"}

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key.reveal()}"}

    def check(self) -> None:
        require(self.api_key, "the API key", self.name, "SENDGRID_API_KEY")
        require(self.from_email, "from_email", self.name)
        response = self.probe("GET", "/v3/scopes", "GET /v3/scopes")
        scopes = set(loads(response.content or b"{}").get("scopes", []))
        if "mail.send" not in scopes:
            raise DestinationError(
                f"destination {self.name!r}: the API key lacks the mail.send scope"
            )

    def prepare(self, now: datetime) -> None:
        """A new batch id for this run (`POST /v3/mail/batch`), before anything is marked: a
        failing batch endpoint stops the sync with nothing marked failed."""
        if self.use_batch_id:
            with self._batch_lock:
                self._batch_id = None
                self._create_batch_id()

    def batch_id(self) -> str:
        """This run's batch id: created once, under a lock, so every request shares it."""
        with self._batch_lock:
            if self._batch_id is None:
                self._create_batch_id()
            assert self._batch_id is not None
            return self._batch_id

    def _create_batch_id(self) -> None:
        try:  # creating a batch id sends nothing: always safe to repeat
            response = self.request("POST", "/v3/mail/batch", headers=self._headers)
        except RetryableError as exc:
            raise DestinationError(
                f"destination {self.name!r}: cannot create a batch id ({exc.code}); nothing sent"
            ) from None
        self.check_response(response, "POST /v3/mail/batch (batch id)")
        try:
            self._batch_id = str(loads(response.content)["batch_id"])
        except (ValueError, KeyError, TypeError):
            raise DestinationError(
                f"destination {self.name!r}: POST /v3/mail/batch answered without a batch_id"
            ) from None

    def cancel_group(self, group_id: str) -> None:
        """Cancel a batch's scheduled sends (`POST /v3/user/scheduled_sends`, status
        `cancel`); a batch already cancelled is fine (repeating a cancel is safe)."""
        body = dumps({"batch_id": group_id, "status": "cancel"})
        try:
            response = self.request(
                "POST", "/v3/user/scheduled_sends", data=body, headers=self._headers
            )
        except RetryableError as exc:
            raise DestinationError(
                f"destination {self.name!r}: cannot reach {self.base_url} to cancel ({exc.code})"
            ) from None
        if response.status_code in (200, 201):
            return
        if response.status_code == 400:  # already paused or cancelled?
            known = self.probe(
                "GET", f"/v3/user/scheduled_sends/{group_id}", "GET /v3/user/scheduled_sends"
            )
            listed = loads(known.content or b"[]")
            entries = listed if isinstance(listed, list) else [listed]
            if any(e.get("status") == "cancel" for e in entries if isinstance(e, dict)):
                return
        self.check_response(response, "POST /v3/user/scheduled_sends")
        raise DestinationError(
            f"destination {self.name!r}: cancelling batch {group_id} answered HTTP "
            f"{response.status_code}: {self.describe_error(response)}"
        )

    def send_group(self) -> str | None:
        """This run's batch id (recorded on every record it covers)."""
        return self._batch_id if self.use_batch_id else None

    def payload(
        self, batch: MessageBatch, now: datetime, template_id: str | None = None
    ) -> dict[str, Any]:
        """The Mail Send request body for a batch (one personalization per recipient); with a
        dynamic template (`template_id`, else the destination's), the records' variables."""
        now_s = epoch_seconds(now)
        horizon = now + timedelta(hours=72)
        personalizations = []
        template_id = template_id or self.template_id
        template = template_id is not None
        cache: dict[str, int | None] = {}
        for d, customer, agent, mid, to, subject, body, send_at, variables in zip(
            batch.decision_id,
            batch.customer_id,
            batch.agent,
            batch.message_id,
            batch.to,
            batch.subject,
            batch.body,
            batch.send_at,
            batch.variables,
            strict=True,
        ):
            p: dict[str, Any] = {
                "to": [{"email": to}],
                "custom_args": {
                    "decision_id": d,
                    "customer_id": customer,
                    "agent": agent,
                    "message_id": mid,
                },
            }
            if template:
                data = {"subject": subject, "body": body} if body else {"subject": subject}
                p["dynamic_template_data"] = {**data, **(variables or {})}
            else:
                if subject:
                    p["subject"] = subject
                p["substitutions"] = {BODY_TAG: body}
            at = cache.get(send_at, -1)
            if at == -1:
                when = _parse(send_at)
                at = epoch_seconds(when) if now < when <= horizon else None
                cache[send_at] = at
            if at is not None and at > now_s:
                p["send_at"] = at
            personalizations.append(p)
        payload: dict[str, Any] = {
            "personalizations": personalizations,
            "from": {
                "email": self.from_email,
                **({"name": self.from_name} if self.from_name else {}),
            },
        }
        if template:
            payload["template_id"] = template_id
        else:
            payload["subject"] = "(no subject)"
            payload["content"] = [{"type": self.content_type, "value": BODY_TAG}]
        if self.categories:
            payload["categories"] = self.categories
        if self.use_batch_id:
            payload["batch_id"] = self.batch_id()
        return payload

    def encode_arrow(self, table: Any, now: datetime) -> Any | None:
        """Each record's personalization as JSON text, built column-wise with Arrow (the hot
        path for large sends); None (the per-record path) for template mode or oversize
        bodies."""
        if self.template_id is not None:
            return None
        if "template_id" in table.schema.names and table.column("template_id").null_count < len(
            table
        ):
            return None
        body = table.column("body")
        if pc.any(pc.greater(pc.binary_length(body), MAX_SUBSTITUTION_BYTES)).as_py():
            return None
        now_s = epoch_seconds(now)
        at = pc.cast(
            pc.strptime(table.column("send_at"), format="%Y-%m-%dT%H:%M:%SZ", unit="s"),
            pa.int64(),
        )
        scheduled = pc.and_(pc.greater(at, now_s), pc.less_equal(at, now_s + 72 * 3600))
        send_at = pc.if_else(
            scheduled,
            pc.binary_join_element_wise(',"send_at":', pc.cast(at, pa.string()), ""),
            "",
        )
        subject = table.column("subject")
        text = {
            "to": table.column("to"),
            "decision_id": table.column("decision_id"),
            "customer_id": table.column("customer_id"),
            "agent": table.column("agent"),
            "message_id": table.column("message_id"),
            "subject": subject,
            "body": body,
        }
        # one scan for characters JSON must escape; usually none, and each value is then
        # quoted by the literal parts around it (no per-column escaping pass)
        everything = pc.binary_join_element_wise(*(pc.fill_null(c, "") for c in text.values()), "")
        clean = not pc.any(pc.match_substring_regex(everything, _NEEDS_ESCAPE)).as_py()

        def quoted(name: str) -> list[Any]:
            column = text[name]
            return ['"', column, '"'] if clean else [_json_text(column)]

        subject_part = pc.fill_null(
            pc.binary_join_element_wise(',"subject":', *quoted("subject"), ""), ""
        )
        parts: list[Any] = [
            '{"to":[{"email":',
            *quoted("to"),
            '}],"custom_args":{"decision_id":',
            *quoted("decision_id"),
            ',"customer_id":',
            *quoted("customer_id"),
            ',"agent":',
            *quoted("agent"),
            ',"message_id":',
            *quoted("message_id"),
            "}",
            subject_part,
            ',"substitutions":{"' + BODY_TAG + '":',
            *quoted("body"),
            "}",
            send_at,
            "}",
        ]
        merged: list[Any] = []
        for part in parts:  # adjacent literals become one
            if isinstance(part, str) and merged and isinstance(merged[-1], str):
                merged[-1] += part
            else:
                merged.append(part)
        return pc.binary_join_element_wise(*merged, "")

    def _envelope(self) -> tuple[bytes, bytes]:
        """The request body around the personalizations array (substitution mode)."""
        rest: dict[str, Any] = {
            "from": {
                "email": self.from_email,
                **({"name": self.from_name} if self.from_name else {}),
            },
            "subject": "(no subject)",
            "content": [{"type": self.content_type, "value": BODY_TAG}],
        }
        if self.categories:
            rest["categories"] = self.categories
        if self.use_batch_id:
            rest["batch_id"] = self.batch_id()
        tail = dumps(rest)
        return b'{"personalizations":[', b"]," + tail[1:]

    def send_batch(self, batch: MessageBatch, now: datetime) -> BatchResult:
        if batch.encoded is not None:
            head, tail = self._envelope()
            body = head + _joined(batch.encoded) + tail
            return self._post(body, len(batch))
        groups: dict[str | None, list[int]] = {}
        for i, template_id in enumerate(batch.template_id):
            groups.setdefault(template_id or self.template_id, []).append(i)
        if len(groups) > 1:  # one request per dynamic template
            return send_groups(batch, groups, lambda _, part: self.send_batch(part, now))
        template_id = next(iter(groups))
        oversize = [
            i
            for i, b in enumerate(batch.body)
            if len(b) * 4 > MAX_SUBSTITUTION_BYTES and len(b.encode()) > MAX_SUBSTITUTION_BYTES
        ]
        if oversize and template_id is None:
            return self._without(batch, oversize, now, "body_too_large")
        return self._post(dumps(self.payload(batch, now, template_id)), len(batch))

    def _post(self, body: bytes, n: int) -> BatchResult:
        response = self.request("POST", "/v3/mail/send", data=body, headers=self._headers)
        if response.status_code == 202:
            return BatchResult.uniform(
                n,
                DeliveryStatus.DELIVERED,
                provider_id=response.headers.get("X-Message-Id"),
            )
        self.raise_for_request(response, "sendgrid")
        raise _rejection(response, self.describe_error(response))

    def _without(
        self, batch: MessageBatch, bad: list[int], now: datetime, code: str
    ) -> BatchResult:
        result = BatchResult.uniform(len(batch), DeliveryStatus.FAILED_PERMANENT, code)
        good = [i for i in range(len(batch)) if i not in set(bad)]
        if good:
            sent = self.send_batch(batch.take(good), now)
            result.put(good, sent)
        return result

    def lookup(self, batch: MessageBatch) -> dict[str, Lookup]:
        """Email Activity API (`GET /v3/messages`), one decision id per query: found → held;
        a definitive empty answer → absent. Throttling raises RetryableError; a missing
        add-on or permission raises LookupUnavailable."""
        out: dict[str, Lookup] = {}
        for d in batch.decision_id:
            response = self.request(
                "GET",
                "/v3/messages",
                params={"query": f"unique_args['decision_id']=\"{d}\"", "limit": "10"},
            )
            if response.status_code == 429 or response.status_code >= 500:
                raise RetryableError(
                    f"activity_{response.status_code}", wait_s=self.vendor_wait_s(response)
                )
            if response.status_code != 200:
                raise LookupUnavailable(
                    f"destination {self.name!r}: the Email Activity API answered HTTP "
                    f"{response.status_code} (it is a paid add-on and needs the "
                    "messages.read scope); records with an unknown outcome stay unknown"
                )
            try:
                found = loads(response.content).get("messages")
            except (ValueError, AttributeError):
                continue  # not an answer: unknown
            if not isinstance(found, list):
                continue
            out[d] = Lookup.HELD if found else Lookup.ABSENT  # bounced or not: it was sent
        return out


def _rejection(response: Any, detail: str) -> RejectedBatchError:
    """A 4xx from Mail Send: per record when SendGrid names personalizations (their indices),
    else the request's settings (from, content, template, batch id) are wrong."""
    fields: list[str] = []
    try:
        for error in loads(response.content).get("errors") or []:
            fields.append(str((error or {}).get("field") or ""))
    except (ValueError, AttributeError):
        pass
    indices = []
    for name in fields:
        parts = name.split(".")
        if len(parts) > 1 and parts[0] == "personalizations" and parts[1].isdigit():
            indices.append(int(parts[1]))
    field = fields[0] if fields and fields[0] else "request"
    code = "invalid_recipient" if field.endswith(".email") else "invalid_request"
    code = f"{code}:{response.status_code}:{field}"
    if indices:
        return RejectedBatchError(code, indices=indices)
    return RejectedBatchError(f"{code}: {detail}", per_record=False)
