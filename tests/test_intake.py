"""Signed event intake: vendor test vectors, forged / replayed / tampered events, exactly once."""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn
from backends import backend_params, new_warehouse
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from journeyman import settings as project_settings
from journeyman import signing
from journeyman.intake.app import create_app, request_url
from journeyman.intake.config import IntakeConfigError, IntakeSettings
from journeyman.intake.store import EventStore
from journeyman.tables import ensure_raw_tables
from journeyman.warehouse import Warehouse, WarehouseError

SHARED = project_settings.PROJECT_ROOT.parent / "shared"
VECTORS_FILE = SHARED / "api_specs" / "signature_vectors.json"
needs_vectors = pytest.mark.skipif(
    not VECTORS_FILE.exists(),
    reason=f"vendor signature vectors not found at {VECTORS_FILE} (needs the shared/ checkout)",
)

SENTINEL_TOKEN = "SENTINEL-twilio-token-7f3a9c"
SENTINEL_SECRET = "SENTINEL-webhook-secret-51be"
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


# -- helpers -----------------------------------------------------------------------------


def vectors() -> dict[str, Any]:
    return json.loads(VECTORS_FILE.read_text())


def ec_keypair() -> tuple[bytes, str]:
    """A fresh P-256 key: (private PEM, public key as SendGrid shows it: base64 DER)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, base64.b64encode(der).decode()


def tamper_text(text: str, alphabet: str | None = None) -> Iterator[str]:
    """Every one-character change of text (each position, each other character of alphabet)."""
    for i, ch in enumerate(text):
        for other in alphabet or chr(ord(ch) ^ 1):
            if other != ch:
                yield text[:i] + other + text[i + 1 :]


def tamper_bytes(data: bytes) -> Iterator[bytes]:
    """Each byte flipped in turn, plus the last byte dropped and one byte appended."""
    for i in range(len(data)):
        yield data[:i] + bytes([data[i] ^ 1]) + data[i + 1 :]
    yield data[:-1]
    yield data + b" "


class Receiver:
    """A live uvicorn server on 127.0.0.1 running the intake app in a thread."""

    def __init__(self, settings: IntakeSettings, **app_kwargs: Any) -> None:
        self.settings = settings
        self.app = create_app(settings, **app_kwargs)
        self.warehouse = Warehouse(settings.warehouse)
        self.session = requests.Session()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            proxy_headers=True,
            forwarded_allow_ips="127.0.0.1",
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]})
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "receiver did not start"
            time.sleep(0.01)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.session.post(self.base + path, timeout=10, **kwargs)

    def stored(self) -> list[tuple]:
        if not self.warehouse.table_exists("raw", "message_events"):
            return []
        return [
            tuple(r)
            for r in self.warehouse.rows(
                "select event_id, decision_id, customer_id, channel, event_type, occurred_at "
                "from raw.message_events order by event_id"
            )
        ]

    def metric(self, line_prefix: str) -> int:
        text = self.session.get(self.base + "/metrics", timeout=10).text
        values = [ln.rsplit(" ", 1)[1] for ln in text.splitlines() if ln.startswith(line_prefix)]
        assert len(values) == 1, f"{line_prefix!r} not exactly once in /metrics"
        return int(values[0])

    def stop(self) -> None:
        self.session.close()
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Callable[..., Receiver]]:
    """Starts receivers, each on a new warehouse of `backend` (default: a DuckDB file)."""
    started: list[Receiver] = []
    with ExitStack() as warehouses:

        def start(backend: str = "duckdb", **overrides: Any) -> Receiver:
            app_kwargs = {k: overrides.pop(k) for k in ("store",) if k in overrides}
            location = overrides.pop("warehouse", None)
            if location is None:
                folder = tmp_path / f"wh{len(started)}"
                folder.mkdir()
                location = warehouses.enter_context(new_warehouse(backend, folder, "intake"))
            base = IntakeSettings(warehouse=location)
            server = Receiver(replace(base, **overrides), **app_kwargs)
            started.append(server)
            return server

        yield start
        for server in started:
            server.stop()


def generic_post(
    server: Receiver, events: list[dict], *, secret: str = SENTINEL_SECRET, ts: int | None = None
) -> requests.Response:
    body = json.dumps({"events": events}).encode()
    timestamp = str(int(time.time()) if ts is None else ts)
    headers = {
        signing.WEBHOOK_SIGNATURE_HEADER: signing.webhook_signature(secret, timestamp, body),
        signing.WEBHOOK_TIMESTAMP_HEADER: timestamp,
        "Content-Type": "application/json",
    }
    return server.post("/webhooks/generic", data=body, headers=headers)


def sendgrid_post(
    server: Receiver, pem: bytes, events: list[dict], *, ts: int | None = None
) -> requests.Response:
    body = json.dumps(events).encode() + b"\r\n"
    timestamp = str(int(time.time()) if ts is None else ts)
    headers = {
        signing.SENDGRID_SIGNATURE_HEADER: signing.sign_sendgrid(pem, timestamp, body),
        signing.SENDGRID_TIMESTAMP_HEADER: timestamp,
        "Content-Type": "application/json",
    }
    return server.post("/webhooks/sendgrid", data=body, headers=headers)


def twilio_post(
    server: Receiver, token: str, query: str, form: dict[str, str]
) -> requests.Response:
    url = f"{server.base}/webhooks/twilio?{query}"
    signature = signing.twilio_signature(token, url, form)
    return server.post(
        f"/webhooks/twilio?{query}", data=form, headers={signing.TWILIO_SIGNATURE_HEADER: signature}
    )


def generic_event(event_id: str, event_type: str = "open", **extra: Any) -> dict:
    return {
        "event_id": event_id,
        "decision_id": f"winback-20240105-{event_id}",
        "customer_id": f"c-{event_id}",
        "channel": "push",
        "event_type": event_type,
        "occurred_at": "2024-01-05T10:00:00Z",
        **extra,
    }


# -- the vendors' own test vectors -------------------------------------------------------


@needs_vectors
def test_twilio_vector_verifies_and_every_one_byte_tamper_fails() -> None:
    v = vectors()["twilio_request_validation"]
    token, url, params, sig = v["auth_token"], v["url"], v["params"], v["expected_signature"]
    assert signing.twilio_signature(token, url, params) == sig
    assert signing.verify_twilio(token, url, params, sig)
    assert signing.verify_twilio(token, url.replace(".com/", ".com:443/"), params, sig)
    assert not any(signing.verify_twilio(token, url, params, s) for s in tamper_text(sig, B64))
    assert not any(signing.verify_twilio(token, u, params, sig) for u in tamper_text(url))
    assert not any(signing.verify_twilio(t, url, params, sig) for t in tamper_text(token))
    for name, value in params.items():
        for changed in tamper_text(value):
            assert not signing.verify_twilio(token, url, {**params, name: changed}, sig)
    assert not signing.verify_twilio(token, url, {**params, "Extra": "1"}, sig)
    assert not signing.verify_twilio(token, url, params, "")


@needs_vectors
def test_sendgrid_vector_verifies_and_every_one_byte_tamper_fails() -> None:
    v = vectors()["sendgrid_signed_event_webhook"]
    key, sig, ts = v["public_key_base64_der"], v["signature_base64"], v["timestamp"]
    body = v["payload"].encode()
    assert body.endswith(b"\r\n")
    assert signing.verify_sendgrid(key, sig, ts, body)
    assert not signing.verify_sendgrid(key, sig, ts, body.rstrip(b"\r\n"))
    assert not any(signing.verify_sendgrid(key, s, ts, body) for s in tamper_text(sig, B64))
    assert not any(signing.verify_sendgrid(key, sig, t, body) for t in tamper_text(ts))
    assert not any(signing.verify_sendgrid(key, sig, ts, b) for b in tamper_bytes(body))
    assert not signing.verify_sendgrid(ec_keypair()[1], sig, ts, body)  # another key
    assert not signing.verify_sendgrid("not a key", sig, ts, body)


@needs_vectors
def test_sendgrid_vector_through_the_receiver(receiver: Callable[..., Receiver]) -> None:
    v = vectors()["sendgrid_signed_event_webhook"]
    ts, sig, body = v["timestamp"], v["signature_base64"], v["payload"].encode()
    vector_clock = lambda: int(ts) + 30  # noqa: E731 - the vector was signed in 2020
    server = receiver(sendgrid_public_key=v["public_key_base64_der"], clock=vector_clock)

    def post(signature: str, timestamp: str, data: bytes) -> requests.Response:
        headers = {
            signing.SENDGRID_SIGNATURE_HEADER: signature,
            signing.SENDGRID_TIMESTAMP_HEADER: timestamp,
        }
        return server.post("/webhooks/sendgrid", data=data, headers=headers)

    tampered = [
        *((s, ts, body) for s in tamper_text(sig)),
        *((sig, t, body) for t in tamper_text(ts)),
        *((sig, ts, b) for b in tamper_bytes(body)),
    ]
    statuses = {post(*request).status_code for request in tampered}
    assert statuses == {403}
    assert server.stored() == []
    assert server.metric(
        'journeyman_intake_requests_rejected_total{source="sendgrid",reason="bad_signature"}'
    ) == len(tampered)

    first, again = post(sig, ts, body), post(sig, ts, body)  # SendGrid retries the same batch
    assert first.status_code == again.status_code == 200, first.text
    assert first.json()["accepted"] == 1 and again.json() == {
        "accepted": 0,
        "duplicates": 1,
        "ignored": 0,
        "invalid": 0,
    }
    event = json.loads(body)[0]
    assert server.stored() == [
        (event["sg_event_id"], None, None, "email", "bounce", datetime(2020, 9, 14, 19, 41, 32))
    ]


@needs_vectors
def test_sendgrid_vector_is_stale_under_the_real_clock(receiver: Callable[..., Receiver]) -> None:
    v = vectors()["sendgrid_signed_event_webhook"]
    server = receiver(sendgrid_public_key=v["public_key_base64_der"])
    response = server.post(
        "/webhooks/sendgrid",
        data=v["payload"].encode(),
        headers={
            signing.SENDGRID_SIGNATURE_HEADER: v["signature_base64"],
            signing.SENDGRID_TIMESTAMP_HEADER: v["timestamp"],
        },
    )
    assert (response.status_code, response.json()["reason"]) == (401, "stale")
    assert server.stored() == []


@needs_vectors
def test_twilio_vector_through_the_receiver(receiver: Callable[..., Receiver]) -> None:
    v = vectors()["twilio_request_validation"]
    path_and_query = v["url"].removeprefix("https://mycompany.com")
    server = receiver(
        twilio_auth_token=v["auth_token"],
        public_url="https://mycompany.com",
        twilio_path=path_and_query.split("?")[0],
    )

    def post(query_path: str, form: dict, signature: str) -> requests.Response:
        headers = {signing.TWILIO_SIGNATURE_HEADER: signature}
        return server.post(query_path, data=form, headers=headers)

    params, sig = v["params"], v["expected_signature"]
    accepted = post(path_and_query, params, sig)
    # a verified voice callback, not a message status: acknowledged, nothing to record
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["ignored"] == 1

    query_start = path_and_query.index("?") + 1
    bad_queries = (
        path_and_query[:query_start] + q for q in tamper_text(path_and_query[query_start:])
    )
    bad_forms = (
        {**params, name: changed}
        for name, value in params.items()
        for changed in tamper_text(value)
    )
    statuses = [post(q, params, sig).status_code for q in bad_queries]
    statuses += [post(path_and_query, f, sig).status_code for f in bad_forms]
    statuses += [post(path_and_query, params, s).status_code for s in tamper_text(sig, B64)]
    assert set(statuses) == {403}
    assert post(path_and_query, params, "").status_code == 401

    other_host = receiver(
        twilio_auth_token=v["auth_token"],
        public_url="https://mycompanz.com",
        twilio_path=path_and_query.split("?")[0],
    )
    headers = {signing.TWILIO_SIGNATURE_HEADER: sig}
    assert other_host.post(path_and_query, data=params, headers=headers).status_code == 403


# -- round trips with generated keys -------------------------------------------------------


def test_sign_verify_round_trips_with_generated_keys() -> None:
    pem, public = ec_keypair()
    body = b'[{"event":"open"}]\r\n'
    signature = signing.sign_sendgrid(pem, "1700000000", body)
    assert signing.verify_sendgrid(public, signature, "1700000000", body)
    pem_armoured = "-----BEGIN PUBLIC KEY-----\n" + public + "\n-----END PUBLIC KEY-----\n"
    assert signing.verify_sendgrid(pem_armoured, signature, "1700000000", body)
    assert not signing.verify_sendgrid(ec_keypair()[1], signature, "1700000000", body)
    assert not signing.verify_sendgrid(public, signature, "1700000001", body)

    url, params = "https://example.com/webhooks/twilio?decision_id=d1", {"B": "2", "A": "1"}
    sig = signing.twilio_signature("tok", url, params)
    assert signing.verify_twilio("tok", url, params, sig)
    assert signing.twilio_signature("tok", url, {"A": "1", "B": "2"}) == sig  # order-free
    assert signing.twilio_signature("tok", url, {"A": ["2", "1"]}) == signing.twilio_signature(
        "tok", url + "A1A2", {}
    )
    assert not signing.verify_twilio("tok2", url, params, sig)

    webhook_sig = signing.webhook_signature("s3cret", "1700000000", b"{}")
    assert webhook_sig.startswith("sha256=") and len(webhook_sig) == 7 + 64
    assert signing.verify_webhook("s3cret", "1700000000", b"{}", webhook_sig)
    assert not signing.verify_webhook("s3cret", "1700000001", b"{}", webhook_sig)
    assert not signing.verify_webhook("other", "1700000000", b"{}", webhook_sig)
    assert not signing.verify_webhook("s3cret", "1700000000", b"{}", webhook_sig.upper())

    assert signing.timestamp_is_fresh("1000", 1200, 300)
    assert signing.timestamp_is_fresh("1500", 1200, 300)  # small clock skew both ways
    assert not signing.timestamp_is_fresh("899", 1200, 300)
    assert not signing.timestamp_is_fresh("1501", 1200, 300)
    assert not signing.timestamp_is_fresh("1e3", 1200, 300)
    assert not signing.timestamp_is_fresh("", 1200, 300)


# -- receiving events: exactly once ---------------------------------------------------------


@pytest.mark.parametrize("backend", backend_params())
def test_signed_events_from_each_vendor_land_exactly_once(
    receiver: Callable[..., Receiver], backend: str
) -> None:
    pem, public = ec_keypair()
    keys = {"sendgrid_public_key": public, "twilio_auth_token": SENTINEL_TOKEN}
    server = receiver(backend, webhook_secret=SENTINEL_SECRET, **keys)
    sg = [
        {
            "event": "delivered",
            "sg_event_id": "sg-1",
            "timestamp": 1704448800,
            "decision_id": "d-1",
            "customer_id": "c-1",
            "email": "a@example.com",
        },
        {
            "event": "spamreport",
            "sg_event_id": "sg-2",
            "timestamp": 1704448860,
            "decision_id": "d-1",
            "customer_id": "c-1",
        },
        {"event": "processed", "sg_event_id": "sg-3", "timestamp": 1704448700},
        {
            "event": "group_unsubscribe",
            "sg_event_id": "sg-4",
            "timestamp": 1704448900,
            "decision_id": "d-1",
            "customer_id": "c-1",
        },
        {
            "event": "delivered",
            "sg_event_id": "sg-1",
            "timestamp": 1704448800,
            "decision_id": "d-1",
            "customer_id": "c-1",
        },  # repeated within the request
        {"event": "open", "timestamp": 1704448900},  # no sg_event_id: skipped as invalid
    ]
    first = sendgrid_post(server, pem, sg)
    assert first.json() == {"accepted": 3, "duplicates": 1, "ignored": 1, "invalid": 1}
    retry = sendgrid_post(server, pem, sg)  # the vendor retries with a fresh signature
    assert retry.json() == {"accepted": 0, "duplicates": 4, "ignored": 1, "invalid": 1}

    delivered = {"MessageSid": "SM123", "MessageStatus": "delivered", "To": "+14155550123"}
    query = "decision_id=d-2&customer_id=c-2"
    assert twilio_post(server, SENTINEL_TOKEN, query, delivered).json()["accepted"] == 1
    assert twilio_post(server, SENTINEL_TOKEN, query, delivered).json()["duplicates"] == 1
    failed = {**delivered, "MessageSid": "SM124", "MessageStatus": "failed", "ErrorCode": "30003"}
    assert twilio_post(server, SENTINEL_TOKEN, query, failed).json()["accepted"] == 1
    sent = {**delivered, "MessageStatus": "sent"}
    assert twilio_post(server, SENTINEL_TOKEN, query, sent).json()["ignored"] == 1

    events = [generic_event("g-1"), generic_event("g-2", "click"), generic_event("g-1")]
    assert generic_post(server, events).json()["accepted"] == 2
    assert generic_post(server, events[:1]).json()["duplicates"] == 1

    rows = server.stored()
    assert [r[:5] for r in rows] == [
        ("SM123:delivered", "d-2", "c-2", "sms", "delivered"),
        ("SM124:failed", "d-2", "c-2", "sms", "bounce"),
        ("g-1", "winback-20240105-g-1", "c-g-1", "push", "open"),
        ("g-2", "winback-20240105-g-2", "c-g-2", "push", "click"),
        ("sg-1", "d-1", "c-1", "email", "delivered"),
        ("sg-2", "d-1", "c-1", "email", "complaint"),
        ("sg-4", "d-1", "c-1", "email", "unsubscribe"),
    ]
    assert rows[4][5] == datetime(2024, 1, 5, 10, 0) and rows[2][5] == datetime(2024, 1, 5, 10, 0)
    assert (
        server.warehouse.scalar("select count(*) from raw.message_events where _loaded_at is null")
        == 0
    )
    assert server.metric('journeyman_intake_events_accepted_total{source="sendgrid"}') == 3
    assert server.metric('journeyman_intake_events_duplicates_total{source="sendgrid"}') == 5
    assert server.metric('journeyman_intake_events_accepted_total{source="twilio"}') == 2
    assert server.metric('journeyman_intake_requests_accepted_total{source="generic"}') == 2


@pytest.mark.parametrize("backend", backend_params())
def test_concurrent_retries_store_each_event_once(
    receiver: Callable[..., Receiver], backend: str
) -> None:
    server = receiver(backend, webhook_secret=SENTINEL_SECRET)
    batches = [[generic_event(f"e-{(i + j) % 40}") for j in range(10)] for i in range(60)]
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda b: generic_post(server, b), batches))
    assert {r.status_code for r in responses} == {200}
    assert sum(r.json()["accepted"] for r in responses) == 40
    assert sum(r.json()["duplicates"] for r in responses) == 600 - 40
    assert server.warehouse.scalar(
        "select count(*) = 40 and count(distinct event_id) = 40 from raw.message_events"
    )


@pytest.mark.parametrize("backend", backend_params())
def test_events_the_raw_table_already_holds_are_duplicates(
    receiver: Callable[..., Receiver], backend: str, tmp_path: Path
) -> None:
    """Events loaded before the intake first ran (an upgrade, an ETL backfill) are not
    stored again (PostgreSQL: they seed the intake's key table)."""
    with new_warehouse(backend, tmp_path, "seeded") as location:
        warehouse = Warehouse(location)
        ensure_raw_tables(warehouse)
        warehouse.execute(
            "insert into raw.message_events values ('old-1', null, null, 'push', 'open', :at, :at)",
            {"at": datetime(2024, 1, 5, 9, 0)},
        )
        server = receiver(warehouse=location, webhook_secret=SENTINEL_SECRET)
        answer = generic_post(server, [generic_event("old-1"), generic_event("new-1")])
        assert answer.json()["accepted"] == 1 and answer.json()["duplicates"] == 1
        assert [r[0] for r in server.stored()] == ["new-1", "old-1"]
        server.stop()  # before the database is dropped


def test_a_copy_within_the_retry_horizon_is_a_duplicate_even_at_another_time(
    receiver: Callable[..., Receiver], tmp_path: Path
) -> None:
    """DuckDB looks for copies among the events of the days around a post's (the vendors'
    retry horizon, so that a lookup reads the recent days, not the history): a copy re-sent
    with another time inside it is a duplicate; one further apart is stored, for staging to
    drop as `duplicate_event_id`."""
    location = str(tmp_path / "warehouse.duckdb")
    server = receiver(warehouse=location, webhook_secret=SENTINEL_SECRET)
    generic_post(server, [generic_event("e-1"), generic_event("e-2")])
    near = generic_event("e-1", occurred_at="2024-01-08T09:00:00Z")  # 71 h later
    far = generic_event("e-2", occurred_at="2024-01-10T11:00:00Z")  # 5 days later
    assert generic_post(server, [near]).json()["duplicates"] == 1
    assert generic_post(server, [far]).json()["accepted"] == 1
    assert sorted(r[0] for r in server.stored()) == ["e-1", "e-2", "e-2"]
    server.stop()


def test_serve_events_refuses_several_workers_on_a_duckdb_file(tmp_path: Path) -> None:
    """DuckDB allows one writing process per file: `--workers 2` is one error line, exit 2."""
    env = {
        **os.environ,
        project_settings.WAREHOUSE_ENV: str(tmp_path / "warehouse.duckdb"),
        "WEBHOOK_SECRET": SENTINEL_SECRET,
    }
    command = [str(Path(sys.executable).parent / "journeyman"), "serve-events", "--workers", "2"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    assert "PostgreSQL" in lines[0] and "one writing process" in lines[0]
    assert SENTINEL_SECRET not in done.stderr and not (tmp_path / "warehouse.duckdb").exists()


# -- forged, replayed, tampered: never stored ------------------------------------------------


def test_forged_replayed_and_tampered_events_never_reach_the_warehouse(
    receiver: Callable[..., Receiver],
) -> None:
    pem, public = ec_keypair()
    forger_pem, _ = ec_keypair()
    server = receiver(
        sendgrid_public_key=public, twilio_auth_token=SENTINEL_TOKEN, webhook_secret=SENTINEL_SECRET
    )
    sg_event = [{"event": "open", "sg_event_id": "forged", "timestamp": 1704448800}]
    now = int(time.time())
    rejected = {
        "unsigned sendgrid": server.post("/webhooks/sendgrid", json=sg_event),
        "sendgrid, wrong key": sendgrid_post(server, forger_pem, sg_event),
        "sendgrid, stale": sendgrid_post(server, pem, sg_event, ts=now - 301),
        "sendgrid, future": sendgrid_post(server, pem, sg_event, ts=now + 301),
        "unsigned generic": server.post("/webhooks/generic", json={"events": [generic_event("x")]}),
        "generic, wrong secret": generic_post(server, [generic_event("x")], secret="guess"),
        "generic, stale replay": generic_post(server, [generic_event("x")], ts=now - 3600),
        "unsigned twilio": server.post(
            "/webhooks/twilio", data={"MessageSid": "SMx", "MessageStatus": "delivered"}
        ),
        "twilio, wrong token": twilio_post(
            server, "guess", "decision_id=d", {"MessageSid": "SMx", "MessageStatus": "delivered"}
        ),
    }
    body = json.dumps({"events": [generic_event("x")]}).encode()
    ts = str(now)
    good = signing.webhook_signature(SENTINEL_SECRET, ts, body)
    headers = {signing.WEBHOOK_SIGNATURE_HEADER: good, signing.WEBHOOK_TIMESTAMP_HEADER: ts}
    rejected["generic, tampered body"] = server.post(
        "/webhooks/generic", data=body.replace(b'"open"', b'"click"'), headers=headers
    )
    rejected["generic, tampered timestamp"] = server.post(
        "/webhooks/generic",
        data=body,
        headers={**headers, signing.WEBHOOK_TIMESTAMP_HEADER: str(now + 1)},
    )
    twilio_form = {"MessageSid": "SMx", "MessageStatus": "delivered"}
    twilio_sig = signing.twilio_signature(
        SENTINEL_TOKEN, f"{server.base}/webhooks/twilio?customer_id=c1", twilio_form
    )
    rejected["twilio, tampered query"] = server.post(
        "/webhooks/twilio?customer_id=c2",
        data=twilio_form,
        headers={signing.TWILIO_SIGNATURE_HEADER: twilio_sig},
    )
    expected = {
        "unsigned sendgrid": (401, "unsigned"),
        "sendgrid, wrong key": (403, "bad_signature"),
        "sendgrid, stale": (401, "stale"),
        "sendgrid, future": (401, "stale"),
        "unsigned generic": (401, "unsigned"),
        "generic, wrong secret": (403, "bad_signature"),
        "generic, stale replay": (401, "stale"),
        "unsigned twilio": (401, "unsigned"),
        "twilio, wrong token": (403, "bad_signature"),
        "generic, tampered body": (403, "bad_signature"),
        "generic, tampered timestamp": (403, "bad_signature"),
        "twilio, tampered query": (403, "bad_signature"),
    }
    assert {k: (r.status_code, r.json()["reason"]) for k, r in rejected.items()} == expected
    assert server.stored() == []

    def rejected_count(source: str, reason: str) -> int:
        return server.metric(
            f'journeyman_intake_requests_rejected_total{{source="{source}",reason="{reason}"}}'
        )

    assert rejected_count("sendgrid", "stale") == 2
    assert rejected_count("generic", "bad_signature") == 3
    assert rejected_count("twilio", "unsigned") == 1
    assert rejected_count("twilio", "bad_signature") == 2
    assert server.metric('journeyman_intake_requests_accepted_total{source="sendgrid"}') == 0


def test_malformed_oversized_and_unconfigured_requests(
    receiver: Callable[..., Receiver],
) -> None:
    server = receiver(webhook_secret=SENTINEL_SECRET, max_body_bytes=4096)
    assert generic_post(server, [generic_event("a", "purchase")]).status_code == 400
    assert generic_post(server, [generic_event("a", occurred_at="yesterday")]).status_code == 400
    assert generic_post(server, [{"event_type": "open"}]).status_code == 400
    ts = str(int(time.time()))
    body = b"{not json"
    headers = {
        signing.WEBHOOK_SIGNATURE_HEADER: signing.webhook_signature(SENTINEL_SECRET, ts, body),
        signing.WEBHOOK_TIMESTAMP_HEADER: ts,
    }
    assert server.post("/webhooks/generic", data=body, headers=headers).status_code == 400
    big = [generic_event(f"big-{i}") for i in range(100)]
    assert generic_post(server, big).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while streaming
        yield from (b"x" * 1024 for _ in range(8))

    assert server.post("/webhooks/generic", data=chunks()).status_code == 413
    unconfigured = server.post("/webhooks/sendgrid", data=b"[]")
    assert unconfigured.status_code == 503 and "SENDGRID_WEBHOOK_PUBLIC_KEY" in unconfigured.text
    assert server.stored() == []
    prefix = 'journeyman_intake_requests_rejected_total{source="generic",reason='
    assert server.metric(prefix + '"malformed"}') == 4
    assert server.metric(prefix + '"too_large"}') == 2
    health = server.session.get(server.base + "/healthz", timeout=5)
    assert health.json() == {"status": "ok", "sources": ["generic"]}


def test_busy_warehouse_answers_503_so_the_vendor_retries(
    receiver: Callable[..., Receiver], tmp_path: Path
) -> None:
    class BusyStore(EventStore):
        def write(self, rows):  # noqa: ANN001, ANN202 - test double
            raise WarehouseError("The warehouse file is locked by another process")

    store = BusyStore(Warehouse(tmp_path / "busy.duckdb"))
    server = receiver(webhook_secret=SENTINEL_SECRET, store=store)
    response = generic_post(server, [generic_event("a")])
    assert response.status_code == 503 and response.headers["Retry-After"]


# -- reverse proxy --------------------------------------------------------------------------


def test_twilio_behind_a_reverse_proxy(receiver: Callable[..., Receiver]) -> None:
    form = {"MessageSid": "SM9", "MessageStatus": "delivered"}
    public = "https://events.example.com/webhooks/twilio?decision_id=d9&customer_id=c9"
    sig = signing.twilio_signature(SENTINEL_TOKEN, public, form)
    headers = {signing.TWILIO_SIGNATURE_HEADER: sig}
    path = "/webhooks/twilio?decision_id=d9&customer_id=c9"

    configured = receiver(
        twilio_auth_token=SENTINEL_TOKEN, public_url="https://events.example.com/"
    )
    assert configured.post(path, data=form, headers=headers).json()["accepted"] == 1

    # without JOURNEYMAN_PUBLIC_URL: Host as forwarded, scheme from a trusted X-Forwarded-Proto
    forwarded = receiver(twilio_auth_token=SENTINEL_TOKEN)
    proxied = {**headers, "Host": "events.example.com", "X-Forwarded-Proto": "https"}
    assert forwarded.post(path, data=form, headers=proxied).json()["accepted"] == 1
    assert forwarded.post(path, data=form, headers=headers).status_code == 403

    scope = {"path": "/a b", "raw_path": b"/a%20b", "query_string": b"x=1", "headers": []}
    assert request_url(scope, "https://h.example/prefix") == "https://h.example/prefix/a%20b?x=1"


# -- secrets ----------------------------------------------------------------------------------


def test_no_secret_in_logs_responses_or_errors(
    receiver: Callable[..., Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = receiver(twilio_auth_token=SENTINEL_TOKEN, webhook_secret=SENTINEL_SECRET)
    responses = [
        twilio_post(server, "wrong", "decision_id=d", {"MessageSid": "S", "MessageStatus": "x"}),
        twilio_post(server, SENTINEL_TOKEN, "decision_id=d", {"MessageSid": "S"}),
        generic_post(server, [generic_event("a")], secret="wrong"),
        generic_post(server, [generic_event("a", "nope")]),
        generic_post(server, [generic_event("a")]),
        server.session.get(server.base + "/metrics", timeout=5),
        server.session.get(server.base + "/healthz", timeout=5),
    ]
    server.stop()
    texts = [r.text for r in responses] + [str(dict(r.headers)) for r in responses]
    texts += [rec.getMessage() for rec in caplog.records] + [caplog.text]
    texts += [repr(server.settings), str(server.settings)]
    env = {"TWILIO_AUTH_TOKEN": SENTINEL_TOKEN, "SENDGRID_WEBHOOK_PUBLIC_KEY": SENTINEL_SECRET}
    with pytest.raises(IntakeConfigError) as bad_key:
        IntakeSettings.from_env(env)
    texts.append(str(bad_key.value))
    assert caplog.records, "the receiver should log its decisions"
    for text in texts:
        assert SENTINEL_TOKEN not in text and SENTINEL_SECRET not in text


def test_settings_from_env(tmp_path: Path) -> None:
    _, public = ec_keypair()
    env = {
        "JOURNEYMAN_WAREHOUSE": str(tmp_path / "w.duckdb"),
        "SENDGRID_WEBHOOK_PUBLIC_KEY": public,
        "TWILIO_AUTH_TOKEN": SENTINEL_TOKEN,
        "WEBHOOK_SECRET": "",
        "JOURNEYMAN_PUBLIC_URL": "https://events.example.com",
        "JOURNEYMAN_INTAKE_MAX_AGE_S": "120",
        "JOURNEYMAN_INTAKE_TWILIO_PATH": "/twilio/status",
    }
    s = IntakeSettings.from_env(env)
    assert s.warehouse == tmp_path / "w.duckdb" and s.max_age_s == 120
    assert s.enabled_sources() == ["sendgrid", "twilio"] and s.twilio_path == "/twilio/status"
    assert IntakeSettings.from_env({}).max_age_s == 300
    for bad in (
        {"JOURNEYMAN_PUBLIC_URL": "events.example.com"},
        {"JOURNEYMAN_INTAKE_MAX_AGE_S": "soon"},
        {"JOURNEYMAN_INTAKE_SENDGRID_PATH": "webhooks"},
    ):
        with pytest.raises(IntakeConfigError):
            IntakeSettings.from_env(bad)


def test_twilio_receipt_time_is_the_carriers_done_date_when_given():
    from datetime import datetime

    from journeyman.intake.events import twilio_status_event

    form = {"MessageSid": ["SM1"], "MessageStatus": ["delivered"], "RawDlrDoneDate": ["2603021405"]}
    parsed = twilio_status_event(form, {"decision_id": ["d1"]}, received_at=2_000_000_000.0)
    assert parsed.rows[0].occurred_at == datetime(2026, 3, 2, 14, 5)
    for bad in ("26030214", "2613021405", "abcdefghij"):  # wrong length, month 13, not digits
        form["RawDlrDoneDate"] = [bad]
        parsed = twilio_status_event(form, {}, received_at=2_000_000_000.0)
        assert parsed.rows[0].occurred_at == datetime(2033, 5, 18, 3, 33, 20)  # time of receipt
