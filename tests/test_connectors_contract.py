"""Contract tests: each destination against its vendor emulator over real loopback HTTP, every
request validated against the vendor's OpenAPI document (or documented limits)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from connector_helpers import fast_retry, make_ledger, make_messages, needs_spec, utc_now

from journeyman.connectors.braze import BrazeDestination
from journeyman.connectors.destination import AuthError, DestinationError
from journeyman.connectors.fcm import FcmDestination
from journeyman.connectors.klaviyo import KlaviyoDestination
from journeyman.connectors.mailchimp import MailchimpTransactionalDestination
from journeyman.connectors.registry import build_destination
from journeyman.connectors.sendgrid import SendGridDestination
from journeyman.connectors.sync import sync
from journeyman.connectors.twilio import TwilioDestination
from journeyman.connectors.webhook import WebhookDestination
from journeyman.sandbox.emulators import (
    BrazeEmulator,
    FcmEmulator,
    KlaviyoEmulator,
    MailchimpEmulator,
    SendGridEmulator,
    TwilioEmulator,
    WebhookEmulator,
)

SID = "AC" + "1" * 32


def assert_exactly_once(emulator, messages) -> None:
    ids = [m.decision_id for m in messages]
    assert {d: emulator.counts[d] for d in ids} == dict.fromkeys(ids, 1)
    assert emulator.stats()["validation_errors"] == []


@needs_spec("sendgrid_mail_v3.json")
def test_sendgrid_batches_schedules_and_defers(tmp_path):
    now = utc_now()
    with SendGridEmulator(api_key="SG.contract") as sg:
        dest = SendGridDestination(
            api_key="SG.contract", from_email="news@shop.example", base_url=sg.url
        )
        dest.check()
        due = make_messages(1500, send_at=now - timedelta(minutes=1), prefix="due")
        later = make_messages(3, send_at=now + timedelta(hours=5), prefix="later")
        too_far = make_messages(2, send_at=now + timedelta(hours=80), prefix="far")
        retry, _ = fast_retry()
        report = sync(
            dest, make_ledger(tmp_path, "sendgrid"), due + later + too_far, now, retry=retry
        )
        assert (report.sent, report.delivered, report.deferred) == (1503, 1503, 2)
        assert_exactly_once(sg, due + later)
        assert sg.requests_by_path["/v3/mail/send"] == 2  # 1000 + 503: the per-request limit
        assert sg.requests_by_path["/v3/mail/batch"] == 1  # one batch id for the run
        by_id = {d.decision_id: d for d in sg.deliveries()}
        assert by_id[due[0].decision_id].send_at is None  # due: sent now
        assert by_id[later[0].decision_id].send_at == later[0].send_at  # scheduled ahead
        assert by_id[due[7].decision_id].body == due[7].body  # per-recipient content
        assert by_id[due[7].decision_id].subject == due[7].subject
        assert not any(m.decision_id in sg.counts for m in too_far)


def test_sendgrid_check_rejects_a_wrong_key():
    with SendGridEmulator(api_key="SG.right") as sg:
        dest = SendGridDestination(api_key="SG.wrong", from_email="a@shop.example", base_url=sg.url)
        with pytest.raises(AuthError, match="rejected the credentials"):
            dest.check()
        assert sg.recipients == 0


@needs_spec("twilio_api_v2010_messages.json")
def test_twilio_schedules_inside_its_window_and_defers_the_rest(tmp_path):
    now = utc_now()
    with TwilioEmulator(account_sid=SID, auth_token="tok-contract") as tw:
        dest = TwilioDestination(
            account_sid=SID,
            auth_token="tok-contract",
            messaging_service_sid="MG" + "2" * 32,
            base_url=tw.url,
        )
        dest.check()

        def sms(n, ahead, prefix, base):
            return make_messages(
                n,
                channel="sms",
                send_at=now + ahead,
                prefix=prefix,
                to=lambda i: f"+1415555{base + i:04d}",
            )

        due = sms(3, timedelta(0), "due", 0)
        soon = sms(2, timedelta(minutes=10), "soon", 100)
        sched = sms(2, timedelta(hours=3), "sch", 200)
        far = sms(1, timedelta(days=40), "far", 300)
        ledger = make_ledger(tmp_path, "twilio")
        report = sync(dest, ledger, due + soon + sched + far, now)
        assert (report.delivered, report.deferred) == (5, 3)  # 10 min ahead: dispatch later
        statuses = {m["to"] + m["body"]: m["status"] for m in tw.messages}
        assert statuses[sched[0].to + sched[0].body] == "scheduled"
        assert statuses[due[0].to + due[0].body] == "queued"
        assert tw.stats()["validation_errors"] == []
        # the dispatch sensor 10 minutes later sends what became due
        later = sync(dest, ledger, due + soon + sched + far, now + timedelta(minutes=10))
        assert (later.delivered, later.skipped_already_settled, later.deferred) == (2, 5, 1)
        assert tw.recipients == 7


def test_fcm_oauth_token_is_cached_and_unregistered_tokens_are_permanent(tmp_path):
    now = utc_now()
    with FcmEmulator() as fcm:
        dest = FcmDestination(service_account_json=fcm.service_account_json())
        dest.base_url = fcm.url
        dest.check()
        messages = make_messages(5, channel="push", send_at=now)
        fcm.reject_recipients([messages[2].to])
        big = make_messages(1, channel="push", send_at=now, prefix="big")
        big = [type(big[0])(**{**big[0].to_dict(), "body": "x" * 5000})]
        deferred = make_messages(1, channel="push", send_at=now + timedelta(hours=2), prefix="d")
        report = sync(dest, make_ledger(tmp_path, "fcm"), messages + big + deferred, now)
        assert (report.delivered, report.failed_permanent, report.deferred) == (4, 2, 1)
        assert report.errors["unregistered_token"] == 1
        assert report.errors["payload_too_large"] == 1
        assert report.invalid_recipients == [messages[2].decision_id]
        assert fcm.token_requests == 1  # cached across all requests (check refreshed it once)
        assert big[0].decision_id not in fcm.counts  # oversize never sent
        assert fcm.stats()["validation_errors"] == []


def test_braze_track_and_schedule_modes(tmp_path):
    now = utc_now()
    with BrazeEmulator(api_key="braze-key", campaign_id="cmp-9") as bz:
        track = BrazeDestination("braze", api_key="braze-key", base_url=bz.url)
        track.check()
        msgs = make_messages(160, send_at=now + timedelta(hours=1))
        report = sync(track, make_ledger(tmp_path, "braze"), msgs, now)
        assert report.delivered == 160
        assert bz.requests_by_path["/users/track"] == 3  # 75 + 75 + 10
        schedule = BrazeDestination(
            "braze_sched",
            api_key="braze-key",
            mode="schedule",
            campaign_id="cmp-9",
            base_url=bz.url,
        )
        more = make_messages(60, send_at=now + timedelta(hours=2), prefix="sched")
        report = sync(schedule, make_ledger(tmp_path, "braze_sched"), more, now)
        assert report.delivered == 60
        assert bz.requests_by_path["/campaigns/trigger/schedule/create"] == 2  # 50 + 10
        assert_exactly_once(bz, msgs + more)


@needs_spec("klaviyo_bulk_create_events.json")
def test_klaviyo_bulk_events_and_dedup_by_unique_id(tmp_path):
    now = utc_now()
    with KlaviyoEmulator(api_key="pk_contract") as kl:
        dest = KlaviyoDestination(api_key="pk_contract", base_url=kl.url)
        dest.check()
        msgs = make_messages(1200, send_at=now)
        report = sync(dest, make_ledger(tmp_path, "klaviyo"), msgs, now)
        assert report.delivered == 1200
        assert kl.requests_by_path["/api/event-bulk-create-jobs"] == 2
        # a re-send (e.g. after a crash) is de-duplicated by unique_id at the vendor
        dest.send(msgs[:10])
        assert kl.duplicates_ignored == 10
        assert_exactly_once(kl, msgs)
        single = KlaviyoDestination("kl1", api_key="pk_contract", bulk=False, base_url=kl.url)
        one = make_messages(2, send_at=now, prefix="single")
        assert sync(single, make_ledger(tmp_path, "kl1"), one, now).delivered == 2
        job = dest.import_profiles([{"email": "a@shop.example", "external_id": "c1"}])
        assert job and kl.profiles_imported == 1
        assert kl.stats()["validation_errors"] == []


@needs_spec("mailchimp_transactional_messages_send.json")
def test_mailchimp_transactional_per_recipient_status(tmp_path):
    now = utc_now()
    with MailchimpEmulator(api_key="md-contract") as mc:
        dest = MailchimpTransactionalDestination(
            api_key="md-contract", from_email="news@shop.example", base_url=f"{mc.url}/api/1.0"
        )
        dest.check()
        msgs = make_messages(6, send_at=now + timedelta(hours=30))
        mc.reject_recipients([msgs[1].to])
        report = sync(dest, make_ledger(tmp_path, "mailchimp"), msgs, now)
        assert (report.delivered, report.failed_permanent) == (5, 1)
        assert report.errors["rejected"] == 1
        delivered = {d.decision_id: d for d in mc.deliveries()}
        assert delivered[msgs[0].decision_id].send_at == (now + timedelta(hours=30)).strftime(
            "%Y-%m-%d %H:%M:%S"
        )
        assert delivered[msgs[0].decision_id].body == msgs[0].body
        assert mc.stats()["validation_errors"] == []


def test_webhook_is_signed_and_dispatched_when_due(tmp_path):
    now = utc_now()
    with WebhookEmulator(secret="whsec-contract") as wh:
        dest = WebhookDestination(url=f"{wh.url}/hooks/journeyman", secret="whsec-contract")
        dest.check()
        due = make_messages(250, send_at=now)
        later = make_messages(5, send_at=now + timedelta(hours=1), prefix="later")
        report = sync(dest, make_ledger(tmp_path, "webhook"), due + later, now)
        assert (report.delivered, report.deferred) == (250, 5)
        assert wh.auth_failures == 0
        assert_exactly_once(wh, due)
        bad = WebhookDestination(url=f"{wh.url}/hooks/journeyman", secret="wrong-secret")
        with pytest.raises(AuthError):
            bad.check()


def test_registry_builds_every_kind_and_reports_bad_settings(tmp_path):
    assert build_destination("f", "file", {"root": str(tmp_path)}).name == "f"
    sg = build_destination("sg", "sendgrid", {"api_key": "SG.x", "from_email": "a@b.example"})
    assert isinstance(sg, SendGridDestination)
    with pytest.raises(DestinationError, match="unknown kind"):
        build_destination("x", "carrier-pigeon", {})
    with pytest.raises(DestinationError, match="bad settings") as info:
        build_destination("sg", "sendgrid", {"api_key": "SG.sentinel", "nope": 1})
    assert "SG.sentinel" not in str(info.value)


@needs_spec("sendgrid_mail_v3.json")
def test_sendgrid_arrow_fast_path_matches_the_per_record_payload(tmp_path):
    import orjson
    import pyarrow as pa

    from journeyman.connectors.destination import MESSAGE_FIELDS, MessageBatch

    now = utc_now()
    msgs = make_messages(2500, send_at=now + timedelta(hours=1))
    odd = msgs[3].to_dict() | {"body": 'quote " back\\ nl\n tab\t ctl\x01 é', "subject": None}
    msgs[3] = type(msgs[3])(**odd)
    batch = MessageBatch.from_messages(msgs)
    table = pa.table(
        {f: getattr(batch, f) for f in MESSAGE_FIELDS if f not in ("tags", "variables")}
    )
    dest = SendGridDestination(
        api_key="SG.arrow", from_email="news@shop.example", use_batch_id=False
    )
    encoded = [orjson.loads(x) for x in dest.encode_arrow(table, now).to_pylist()]
    assert encoded == dest.payload(batch, now)["personalizations"]
    plain = [orjson.loads(x) for x in dest.encode_arrow(table.slice(4), now).to_pylist()]
    assert plain == dest.payload(batch.slice(4, 2500), now)["personalizations"]  # no escapes
    with SendGridEmulator(api_key="SG.arrow") as sg:
        dest = SendGridDestination(
            api_key="SG.arrow", from_email="news@shop.example", base_url=sg.url
        )
        report = sync(dest, make_ledger(tmp_path, "sendgrid"), table, now, concurrency=2)
        assert report.delivered == 2500
        assert_exactly_once(sg, msgs)
        assert {d.decision_id: d.body for d in sg.deliveries()}[msgs[3].decision_id] == odd["body"]


def test_render_column_matches_jinja():
    import pyarrow as pa

    from journeyman.connectors.render import render, render_column

    table = pa.table({"first_name": ["Ada", 'Bo"b'], "days": [3, 40], "score": [0.5, 1.25]})
    for source in (
        "Hi {{ first_name }}, {{days}} days",
        "{{ first_name|upper }}!",
        "score {{ score }}",
        "static",
    ):
        expected = [render(source, row) for row in table.to_pylist()]
        assert render_column(source, table).to_pylist() == expected


def test_arrow_tables_are_dispatched_like_message_lists(tmp_path):
    """The column-wise filter (Arrow tables) and the per-record one agree: due, scheduled
    ahead, deferred, already settled, left in flight."""
    import pyarrow as pa

    from journeyman.connectors.destination import MESSAGE_FIELDS, MessageBatch

    now = utc_now()
    msgs = (
        make_messages(6, send_at=now, prefix="due")
        + make_messages(4, send_at=now + timedelta(hours=10), prefix="ahead")
        + make_messages(3, send_at=now + timedelta(hours=80), prefix="late")
    )
    settled = [m.decision_id for m in msgs[:2]]
    stuck = [msgs[2].decision_id]
    outcomes = {}
    with SendGridEmulator(api_key="SG.paths") as sg:
        for kind in ("list", "arrow"):
            ledger = make_ledger(tmp_path / kind, "sendgrid")
            first = [m for m in msgs if m.decision_id in settled]
            sync(
                SendGridDestination(
                    api_key="SG.paths", from_email="a@shop.example", base_url=sg.url
                ),
                ledger,
                first,
                now,
            )
            ledger.mark_in_flight_bulk(stuck, [1], now, fresh=False)
            batch = MessageBatch.from_messages(msgs)
            table = pa.table(
                {f: getattr(batch, f) for f in MESSAGE_FIELDS if f not in ("tags", "variables")}
            )
            given = msgs if kind == "list" else table
            report = sync(
                SendGridDestination(
                    api_key="SG.paths", from_email="a@shop.example", base_url=sg.url
                ),
                ledger,
                given,
                now,
                concurrency=2,
            )
            metadata = report.as_metadata()
            assert metadata.pop("batch_id")  # one per run
            outcomes[kind] = (metadata, ledger.statuses())
    assert outcomes["list"][0]["delivered"] == 7
    assert outcomes["list"][0]["deferred"] == 3
    assert outcomes["arrow"] == outcomes["list"]
