"""Messages given as a vendor template id arrive with that template and their variables, at
every destination that has vendor templates (emulators on loopback, each request checked)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from connector_helpers import make_ledger, make_messages, needs_spec, utc_now

from journeyman.connectors.braze import BrazeDestination
from journeyman.connectors.klaviyo import KlaviyoDestination
from journeyman.connectors.mailchimp import MailchimpTransactionalDestination
from journeyman.connectors.sync import sync
from journeyman.sandbox.emulators import BrazeEmulator, KlaviyoEmulator, MailchimpEmulator

VARIABLES = {"first_name": "Ada", "offer": "10%"}


def _with_template(messages, template_id: str):
    """The first half plain, the second half given as the vendor's template."""
    half = len(messages) // 2
    return messages[:half] + [
        replace(m, template_id=template_id, body="", variables=dict(VARIABLES))
        for m in messages[half:]
    ]


@needs_spec("mailchimp_transactional_messages_send.json")
def test_mailchimp_sends_template_messages_with_send_template(tmp_path):
    now = utc_now()
    with MailchimpEmulator(api_key="md-tpl") as mc:
        dest = MailchimpTransactionalDestination(
            api_key="md-tpl", from_email="news@shop.example", base_url=f"{mc.url}/api/1.0"
        )
        msgs = _with_template(make_messages(6, send_at=now + timedelta(hours=3)), "winback-v2")
        report = sync(dest, make_ledger(tmp_path, "mailchimp"), msgs, now)
        assert report.delivered == 6
        assert mc.requests_by_path["/api/1.0/messages/send-template"] == 1
        assert mc.requests_by_path["/api/1.0/messages/send"] == 1
        assert len(mc.templates) == 3
        for name, merge in mc.templates:
            assert name == "winback-v2"
            assert {k: merge[k] for k in VARIABLES} == VARIABLES
        assert mc.stats()["validation_errors"] == []


def test_braze_schedule_triggers_the_template_campaign_with_its_variables(tmp_path):
    now = utc_now()
    with BrazeEmulator(api_key="bz-tpl", campaign_id="cmp-default") as bz:
        bz.campaigns.add("cmp-winback")
        dest = BrazeDestination(
            api_key="bz-tpl", mode="schedule", campaign_id="cmp-default", base_url=bz.url
        )
        msgs = _with_template(make_messages(8, send_at=now + timedelta(hours=2)), "cmp-winback")
        report = sync(dest, make_ledger(tmp_path, "braze"), msgs, now)
        assert report.delivered == 8
        by_campaign: dict[str, list[dict]] = {}
        for campaign, properties in bz.triggered:
            by_campaign.setdefault(campaign, []).append(properties)
        assert len(by_campaign["cmp-default"]) == 4 and len(by_campaign["cmp-winback"]) == 4
        assert all(p["first_name"] == "Ada" for p in by_campaign["cmp-winback"])
        assert bz.stats()["validation_errors"] == []


@needs_spec("klaviyo_bulk_create_events.json")
def test_klaviyo_events_carry_the_template_and_its_variables(tmp_path):
    now = utc_now()
    with KlaviyoEmulator(api_key="pk_tpl") as kl:
        dest = KlaviyoDestination(api_key="pk_tpl", base_url=kl.url)
        msgs = _with_template(make_messages(4, send_at=now), "flow-winback")
        assert sync(dest, make_ledger(tmp_path, "klaviyo"), msgs, now).delivered == 4
        properties = {d.decision_id: d.custom_args for d in kl.deliveries()}
        for m in msgs[2:]:
            assert properties[m.decision_id]["template_id"] == "flow-winback"
            assert properties[m.decision_id]["first_name"] == "Ada"
        assert "template_id" not in properties[msgs[0].decision_id]
        assert kl.stats()["validation_errors"] == []
