"""Every registered destination kind's payloads checked against the vendor's own schema.

`CONTRACTS` maps each kind of `journeyman.connectors.registry.KINDS` to the emulator (or check)
that validates what it sends and where that schema comes from: the vendors' OpenAPI documents
and Google's FCM discovery document in ../shared/api_specs, Braze's documented rules written
down as JSON Schema in the package (braze_schema.json), and journeyman's own message format
(journeyman_message_schema.json) for the file outbox and the generic webhook. A kind without an
entry fails `test_every_registered_kind_has_a_schema_contract`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests
from connector_helpers import make_ledger, make_messages, utc_now

from journeyman.connectors.destination import OutboundMessage
from journeyman.connectors.fcm import FcmDestination
from journeyman.connectors.registry import KINDS, build_destination
from journeyman.connectors.report import SyncReport
from journeyman.connectors.sync import sync
from journeyman.sandbox.emulators import (
    BrazeEmulator,
    FcmEmulator,
    KlaviyoEmulator,
    MailchimpEmulator,
    SendGridEmulator,
    TwilioEmulator,
    WebhookEmulator,
    spec_available,
)
from journeyman.sandbox.emulators.server import Request, Response
from journeyman.sandbox.emulators.spec import (
    PACKAGE_SCHEMA_DIR,
    SPEC_DIR_ENV,
    discovery_to_json_schema,
    discovery_validator,
    package_validator,
)

DATA = Path(__file__).parent / "data"
needs_fcm_discovery = pytest.mark.skipif(
    not spec_available("fcm_v1_discovery.json"),
    reason="Google's FCM discovery document fcm_v1_discovery.json not found (../shared/api_specs "
    f"absent or {SPEC_DIR_ENV} elsewhere): the FCM emulator checks documented limits only",
)
MESSAGE_SCHEMA = "journeyman_message_schema.json"
SID = "AC" + "3" * 32
VARIABLES = {"first_name": "Ada", "offer": "10%"}


@dataclass
class Outcome:
    """What one exercise sent and what the schema check said about it."""

    reports: list[SyncReport]
    messages: int  # messages handed to sync (over all its destinations)
    validated: int  # requests (or outbox lines) checked against the schema
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Contract:
    checker: str  # what validates the payloads
    schema: str  # where that schema comes from
    shared_specs: tuple[str, ...]  # vendor documents needed from ../shared/api_specs
    exercise: Callable[[Path, datetime], Outcome]


def _few(now: datetime, channel: str = "email", template: str | None = None, tag: str = ""):
    """Three due, two two-to-three hours ahead, and (with `template`) two given as the vendor's
    template with variables."""
    pick = {"sms": lambda base: lambda i: f"+1415555{base + i:04d}"}.get(channel)
    out = make_messages(3, channel=channel, send_at=now, prefix=f"{tag}due", to=pick and pick(0))
    out += make_messages(
        2,
        channel=channel,
        send_at=now + timedelta(hours=3),
        prefix=f"{tag}ahead",
        to=pick and pick(100),
    )
    if template is not None:
        out += [
            replace(m, template_id=template, body="", variables=dict(VARIABLES))
            for m in make_messages(
                2,
                channel=channel,
                send_at=now + timedelta(hours=2),
                prefix=f"{tag}tpl",
                to=pick and pick(200),
            )
        ]
    return out


def _run(tmp: Path, kind: str, settings: dict, messages: list[OutboundMessage], now, name=None):
    name = name or kind
    dest = build_destination(name, kind, settings)
    dest.check()
    return sync(dest, make_ledger(tmp / name, name), messages, now)


# -- one exercise per kind ---------------------------------------------------------------------


def _sendgrid(tmp: Path, now: datetime) -> Outcome:
    with SendGridEmulator(api_key="SG.schemas") as sg:
        msgs = _few(now, template="d-" + "a" * 32)
        settings = {"api_key": "SG.schemas", "from_email": "news@shop.example", "base_url": sg.url}
        report = _run(tmp, "sendgrid", settings, msgs, now)
        return Outcome(
            [report], len(msgs), sg.requests_by_path["/v3/mail/send"], sg.validation_errors
        )


def _twilio(tmp: Path, now: datetime) -> Outcome:
    with TwilioEmulator(account_sid=SID, auth_token="tok-schemas") as tw:
        msgs = _few(now, "sms")
        settings = {
            "account_sid": SID,
            "auth_token": "tok-schemas",
            "messaging_service_sid": "MG" + "4" * 32,
            "base_url": tw.url,
        }
        report = _run(tmp, "twilio", settings, msgs, now)
        posts = len(tw.messages)
        return Outcome([report], len(msgs), posts, tw.validation_errors)


def _fcm(tmp: Path, now: datetime) -> Outcome:
    with FcmEmulator() as fcm:
        msgs = _few(now, "push")
        settings = {"service_account_json": fcm.service_account_json(), "base_url": fcm.url}
        report = _run(tmp, "fcm", settings, msgs, now)
        path = f"/v1/projects/{fcm.project_id}/messages:send"
        return Outcome([report], len(msgs), fcm.requests_by_path[path], fcm.validation_errors)


def _braze(tmp: Path, now: datetime) -> Outcome:
    with BrazeEmulator(api_key="bz-schemas", campaign_id="cmp-default") as bz:
        bz.campaigns.add("cmp-template")
        base = {"api_key": "bz-schemas", "base_url": bz.url}
        track = _few(now, template="cmp-template", tag="track-")
        first = _run(tmp, "braze", base, track, now, name="braze_track")
        scheduled = _few(now, template="cmp-template", tag="sched-")
        settings = {**base, "mode": "schedule", "campaign_id": "cmp-default"}
        second = _run(tmp, "braze", settings, scheduled, now, name="braze_schedule")
        paths = BrazeEmulator.SCHEMAS
        assert all(bz.requests_by_path[p] > 0 for p in paths), dict(bz.requests_by_path)
        validated = sum(bz.requests_by_path[p] for p in paths)
        return Outcome([first, second], len(track + scheduled), validated, bz.validation_errors)


def _klaviyo(tmp: Path, now: datetime) -> Outcome:
    with KlaviyoEmulator(api_key="pk_schemas") as kl:
        base = {"api_key": "pk_schemas", "base_url": kl.url}
        bulk = _few(now, template="WinbackMetric", tag="bulk-")
        first = _run(tmp, "klaviyo", base, bulk, now, name="klaviyo_bulk")
        single = _few(now, tag="single-")
        second = _run(tmp, "klaviyo", {**base, "bulk": False}, single, now, name="klaviyo_one")
        validated = sum(n for p, n in kl.requests_by_path.items() if p in KlaviyoEmulator.SPECS)
        return Outcome([first, second], len(bulk + single), validated, kl.validation_errors)


def _mailchimp(tmp: Path, now: datetime) -> Outcome:
    with MailchimpEmulator(api_key="md-schemas") as mc:
        msgs = _few(now, template="winback-v2")
        settings = {
            "api_key": "md-schemas",
            "from_email": "news@shop.example",
            "base_url": f"{mc.url}/api/1.0",
        }
        report = _run(tmp, "mailchimp", settings, msgs, now)
        validated = sum(n for p, n in mc.requests_by_path.items() if "/messages/send" in p)
        return Outcome([report], len(msgs), validated, mc.validation_errors)


class SchemaCheckedWebhookEmulator(WebhookEmulator):
    """The generic webhook receiver, each body validated against journeyman's webhook schema
    (WebhookEmulator itself checks only the `{"messages": [...]}` shape)."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.checked = 0

    def handle(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                body = request.json()
            except ValueError:
                body = None
            errors = package_validator(MESSAGE_SCHEMA, "webhook_body").errors(body)
            with self.lock:
                self.checked += 1
            if errors:
                self.invalid([f"webhook {e}" for e in errors])
        return super().handle(request)


def _webhook(tmp: Path, now: datetime) -> Outcome:
    with SchemaCheckedWebhookEmulator(secret="whsec-schemas") as wh:
        msgs = _few(now, template="any-template")
        settings = {"url": f"{wh.url}/hooks/journeyman", "secret": "whsec-schemas"}
        report = _run(tmp, "webhook", settings, msgs, now)
        return Outcome([report], len(msgs), wh.checked, wh.validation_errors)


def _file(tmp: Path, now: datetime) -> Outcome:
    msgs = _few(now, template="any-template")
    root = tmp / "outbox"
    report = _run(tmp, "file", {"root": str(root)}, msgs, now, name="shadow")
    check = package_validator(MESSAGE_SCHEMA, "outbox_line")
    lines, errors = 0, []
    for path in sorted((root / "shadow").glob("*.jsonl")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            lines += 1
            errors += [f"{path.name}:{n}: {e}" for e in check.errors(json.loads(line))]
    return Outcome([report], len(msgs), lines, errors)


CONTRACTS: dict[str, Contract] = {
    "file": Contract(
        "outbox lines read back", f"package {MESSAGE_SCHEMA}#/$defs/outbox_line", (), _file
    ),
    "sendgrid": Contract(
        "SendGridEmulator",
        "SendGrid OpenAPI (sendgrid_mail_v3.json)",
        ("sendgrid_mail_v3.json",),
        _sendgrid,
    ),
    "twilio": Contract(
        "TwilioEmulator",
        "Twilio OpenAPI (twilio_api_v2010_messages.json)",
        ("twilio_api_v2010_messages.json",),
        _twilio,
    ),
    "fcm": Contract(
        "FcmEmulator",
        "Google discovery document fcm_v1_discovery.json → JSON Schema (SendMessageRequest)",
        ("fcm_v1_discovery.json",),
        _fcm,
    ),
    "braze": Contract(
        "BrazeEmulator", "package braze_schema.json (Braze's documented rules)", (), _braze
    ),
    "klaviyo": Contract(
        "KlaviyoEmulator",
        "Klaviyo OpenAPI (klaviyo_create_event.json, klaviyo_bulk_create_events.json)",
        ("klaviyo_create_event.json", "klaviyo_bulk_create_events.json"),
        _klaviyo,
    ),
    "mailchimp": Contract(
        "MailchimpEmulator",
        "Mailchimp Transactional OpenAPI (mailchimp_transactional_messages_send.json)",
        ("mailchimp_transactional_messages_send.json",),
        _mailchimp,
    ),
    "webhook": Contract(
        "SchemaCheckedWebhookEmulator",
        f"package {MESSAGE_SCHEMA}#/$defs/webhook_body",
        (),
        _webhook,
    ),
}


# -- the contract over every kind --------------------------------------------------------------


def test_every_registered_kind_has_a_schema_contract():
    missing = sorted(set(KINDS) - set(CONTRACTS))
    assert not missing, (
        f"destination kinds without a schema-validating emulator: {missing}; add an entry to "
        "CONTRACTS in tests/test_vendor_schemas.py (emulator + the vendor's schema)"
    )
    stale = sorted(set(CONTRACTS) - set(KINDS))
    assert not stale, f"CONTRACTS entries for kinds no longer registered: {stale}"
    for name in ("braze_schema.json", MESSAGE_SCHEMA):  # shipped schemas load and are valid
        assert (PACKAGE_SCHEMA_DIR / name).is_file()
        doc = json.loads((PACKAGE_SCHEMA_DIR / name).read_text(encoding="utf-8"))
        assert doc.get("$comment"), f"{name}: name its sources in a $comment"
        for definition in doc["$defs"]:
            package_validator(name, definition)  # raises on an invalid schema


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_sends_schema_valid_payloads(kind, tmp_path):
    contract = CONTRACTS.get(kind)
    if contract is None:
        pytest.fail(f"{kind}: no schema contract (see test_every_registered_kind_has_...)")
    absent = [name for name in contract.shared_specs if not spec_available(name)]
    if absent:
        pytest.skip(
            f"{kind}: the vendor schema {', '.join(absent)} is not in ../shared/api_specs "
            f"({SPEC_DIR_ENV} or the shared folder absent); its emulator would check documented "
            "limits only"
        )
    now = utc_now()
    outcome = contract.exercise(tmp_path, now)
    assert outcome.errors == [], f"{kind} payloads violate {contract.schema}"
    assert outcome.validated > 0, f"{kind}: nothing was checked against {contract.schema}"
    delivered = sum(r.delivered for r in outcome.reports)
    deferred = sum(r.deferred for r in outcome.reports)
    failed = sum(r.failed_permanent + r.failed_retryable for r in outcome.reports)
    assert failed == 0, [dict(r.errors) for r in outcome.reports]
    assert delivered + deferred == outcome.messages
    assert delivered >= 3 * len(outcome.reports)  # at least the due ones went out


# -- FCM: Google's schema is enforced ----------------------------------------------------------


def _fcm_post(fcm: FcmEmulator, body) -> requests.Response:
    dest = FcmDestination(service_account_json=fcm.service_account_json(), base_url=fcm.url)
    return requests.post(
        f"{fcm.url}/v1/projects/{fcm.project_id}/messages:send",
        data=json.dumps(body),
        headers={"Authorization": f"Bearer {dest.access_token()}"},
        timeout=10,
    )


@needs_fcm_discovery
def test_fcm_emulator_reports_requests_violating_googles_schema():
    ok = {"token": "tok-1", "notification": {"title": "Hi", "body": "There"}}
    cases = {
        "unknown field in message": ({**ok, "priority": "high"}, "'priority' was unexpected"),
        "non-string data value": ({**ok, "data": {"decision_id": 7}}, "message/data/decision_id"),
        "unknown notification field": (
            {**ok, "notification": {"title": "Hi", "sound": "ding"}},
            "'sound' was unexpected",
        ),
        "enum": ({**ok, "android": {"priority": "URGENT"}}, "message/android/priority"),
        "duration": ({**ok, "android": {"ttl": "1h"}}, "message/android/ttl"),
        "unknown top-level field": ({"message": ok, "dry_run": True}, "'dry_run' was unexpected"),
        "no message": ({"validateOnly": True}, "message: required"),
    }
    with FcmEmulator() as fcm:
        for name, (message, expected) in cases.items():
            body = (
                message
                if "message" in message or "validateOnly" in message
                else {"message": message}
            )
            before = len(fcm.validation_errors)
            response = _fcm_post(fcm, body)
            assert response.status_code == 400, name
            assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
            new = fcm.validation_errors[before:]
            assert any(expected in e for e in new), (name, new)
        assert fcm.recipients == 0
        # what Google accepts passes: proto field names, Android options, validateOnly
        good = {
            "validateOnly": False,
            "message": {
                **ok,
                "data": {"decision_id": "d-1"},
                "android": {"collapse_key": "winback", "ttl": "3600s", "priority": "HIGH"},
                "fcm_options": {"analytics_label": "winback"},
            },
        }
        before = len(fcm.validation_errors)
        assert _fcm_post(fcm, good).status_code == 200, fcm.validation_errors[before:]


class _NumericDataFcm(FcmDestination):
    """A connector bug: a number in `data` (FCM takes strings only)."""

    def payload(self, batch, i):
        body = json.loads(super().payload(batch, i))
        body["message"]["data"]["attempt"] = 1
        return json.dumps(body).encode()


@needs_fcm_discovery
def test_a_connector_payload_off_googles_schema_fails_the_contract(tmp_path):
    now = utc_now()
    with FcmEmulator() as fcm:
        dest = _NumericDataFcm(service_account_json=fcm.service_account_json(), base_url=fcm.url)
        msgs = make_messages(2, channel="push", send_at=now)
        report = sync(dest, make_ledger(tmp_path, "fcm"), msgs, now)
        assert report.failed_permanent == 2 and report.errors["invalid_argument"] == 2
        assert any("message/data/attempt" in e for e in fcm.validation_errors)
        assert fcm.recipients == 0


def test_fcm_without_the_shared_specs_checks_documented_limits_only(tmp_path, monkeypatch):
    monkeypatch.setenv(SPEC_DIR_ENV, str(tmp_path / "no-specs"))
    discovery_validator.cache_clear()
    try:
        assert discovery_validator("fcm_v1_discovery.json", "SendMessageRequest") is None
        ok = {"token": "tok-1", "notification": {"title": "Hi", "body": "There"}}
        with FcmEmulator() as fcm:
            # Google's schema is not available: an unknown field is not caught ...
            assert _fcm_post(fcm, {"message": {**ok, "priority": "high"}}).status_code == 200
            assert fcm.validation_errors == []
            # ... the documented limits still are
            two_targets = {"message": {**ok, "topic": "news"}}
            assert _fcm_post(fcm, two_targets).status_code == 400
            big = {"message": {**ok, "data": {"x": "y" * 5000}}}
            assert _fcm_post(fcm, big).status_code == 400
            reserved = {"message": {**ok, "data": {"google.x": "1"}}}
            assert _fcm_post(fcm, reserved).status_code == 400
            assert len(fcm.validation_errors) >= 3
            assert fcm.recipients == 1
    finally:
        discovery_validator.cache_clear()


# -- Braze: its documented rules ---------------------------------------------------------------


def test_braze_emulator_reports_requests_breaking_the_documented_rules():
    recipient = {"external_user_id": "c1", "trigger_properties": {"body": "hi"}}
    schedule = {"time": "2030-01-01T10:00:00Z", "in_local_time": False}
    cases = {
        "/users/track": [
            ({"attributes": [{"jm_body": "x"}]}, "attributes/0"),  # no identifier
            ({"attributes": [{"external_id": f"c{i}"} for i in range(76)]}, "attributes"),
            ({"attributes": []}, "(root)"),  # nothing to track
            ({"attributes": [{"external_id": "c1"}], "attribute": []}, "'attribute'"),
            ({"events": [{"external_id": "c1", "name": "x"}]}, "'time' is a required"),
        ],
        "/campaigns/trigger/send": [
            ({"recipients": [recipient]}, "'campaign_id' is a required"),
            ({"campaign_id": "cmp-1", "recipients": [recipient] * 51}, "recipients"),
            ({"campaign_id": "cmp-1", "recipients": [{"trigger_properties": {}}]}, "recipients/0"),
            ({"campaign_id": "cmp-1", "recipients": [recipient], "schedule": schedule}, "schedule"),
            ({"campaign_id": "cmp-1", "recipients": [recipient], "broadcast": True}, "(root)"),
        ],
        "/campaigns/trigger/schedule/create": [
            ({"campaign_id": "cmp-1", "recipients": [recipient]}, "'schedule' is a required"),
            (
                {"campaign_id": "cmp-1", "recipients": [recipient], "schedule": {"time": "soon"}},
                "schedule/time",
            ),
            (
                {
                    "campaign_id": "cmp-1",
                    "recipients": [recipient],
                    "schedule": {**schedule, "in_local_time": "yes"},
                },
                "schedule/in_local_time",
            ),
            (
                {
                    "campaign_id": "cmp-1",
                    "recipients": [recipient],
                    "schedule": {"time": "2030-01-01T10:00:00Z", "in_local_time": True},
                },
                "schedule/time",  # local time: no zone designator
            ),
        ],
    }
    with BrazeEmulator(api_key="bz-bad", campaign_id="cmp-1") as bz:
        headers = {"Authorization": "Bearer bz-bad", "Content-Type": "application/json"}
        for path, bodies in cases.items():
            for body, expected in bodies:
                before = len(bz.validation_errors)
                response = requests.post(
                    f"{bz.url}{path}", data=json.dumps(body), headers=headers, timeout=10
                )
                assert response.status_code == 400, (path, body)
                new = bz.validation_errors[before:]
                assert new and all(e.startswith(path) for e in new), (path, new)
                assert any(expected in e for e in new), (path, expected, new)
        assert bz.recipients == 0
        # the documented shapes pass
        good = {"campaign_id": "cmp-1", "recipients": [recipient], "schedule": schedule}
        response = requests.post(
            f"{bz.url}/campaigns/trigger/schedule/create",
            data=json.dumps(good),
            headers=headers,
            timeout=10,
        )
        assert response.status_code == 201


# -- the schemas themselves --------------------------------------------------------------------


def test_discovery_documents_convert_to_json_schema():
    doc = json.loads((DATA / "discovery_mini.json").read_text(encoding="utf-8"))
    from journeyman.sandbox.emulators.spec import JsonSchemaValidator

    check = JsonSchemaValidator(discovery_to_json_schema(doc, "Request"))
    good = {
        "dryRun": True,
        "item": {
            "name": "n",
            "labels": {"a": "b"},
            "priority": "HIGH",
            "count": 3,
            "bigCount": "12345678901234",
            "ttl": "3.5s",
            "at": "2026-01-01T00:00:00Z",
            "ratio": 0.5,
            "tags": ["x"],
            "payload": {"anything": [1, {"goes": None}]},
            "nothing": {},
        },
    }
    assert check.errors(good) == []
    assert check.errors({**good, "item": {"big_count": 7}}) == []  # proto name, number form
    bad = {
        "labels": ({"a": 1}, "item/labels/a"),
        "priority": ("MEDIUM", "item/priority"),
        "count": (2**31, "item/count"),
        "bigCount": ("12x", "item/bigCount"),
        "ttl": ("10 minutes", "item/ttl"),
        "at": ("tomorrow", "item/at"),
        "tags": ([1], "item/tags/0"),
        "nothing": ({"x": 1}, "item/nothing"),
        "unknown": (1, "'unknown' was unexpected"),
    }
    for name, (value, expected) in bad.items():
        errors = check.errors({"item": {name: value}})
        assert any(expected in e for e in errors), (name, errors)
    assert any("'item' is a required" in e for e in check.errors({"dryRun": False}))


def test_journeyman_message_schema_matches_outbound_message():
    message = make_messages(1)[0]
    check = package_validator(MESSAGE_SCHEMA, "outbox_line")
    assert check.errors(message.to_dict()) == []
    props = json.loads((PACKAGE_SCHEMA_DIR / MESSAGE_SCHEMA).read_text())["$defs"]["message"]
    assert set(props["properties"]) == set(OutboundMessage.__dataclass_fields__)
    assert check.errors({**message.to_dict(), "send_at": "2026-01-01 10:00"})
    assert check.errors({**message.to_dict(), "tags": {"offer": 10}})
    assert check.errors({k: v for k, v in message.to_dict().items() if k != "decision_id"})
