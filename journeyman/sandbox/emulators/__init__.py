"""Local vendor emulators: loopback HTTP servers that behave like SendGrid, Twilio, FCM, Braze,
Klaviyo, Mailchimp Transactional and a generic webhook receiver.

In a thread::

    with SendGridEmulator(api_key="SG.test") as sg:      # starts on 127.0.0.1:<ephemeral>
        dest = SendGridDestination(api_key="SG.test", from_email="a@b.c", base_url=sg.url)
        ...
        sg.counts["decision-1"], sg.deliveries(), sg.inject("429", times=3)

In its own process: ``python -m journeyman.sandbox.emulators sendgrid --port 8025`` (or
`EmulatorProcess("sendgrid")`, whose `EmulatorClient` reads deliveries and injects faults
through `/_emulator/...`). See docs/connectors.md.

One module per vendor (`sendgrid`, `twilio`, `fcm`, `braze`, `klaviyo`, `mailchimp`, `webhook`)
on `base.VendorEmulator` (routes, authentication, validation, rejection) and `server.Emulator`
(the loopback server, fault injection, delivery records, the control API).
"""

from journeyman.sandbox.emulators.braze import BrazeEmulator
from journeyman.sandbox.emulators.client import EmulatorClient, EmulatorProcess
from journeyman.sandbox.emulators.fcm import FcmEmulator
from journeyman.sandbox.emulators.klaviyo import KlaviyoEmulator
from journeyman.sandbox.emulators.mailchimp import MailchimpEmulator
from journeyman.sandbox.emulators.sendgrid import SendGridEmulator
from journeyman.sandbox.emulators.server import Delivery, Emulator, Fault
from journeyman.sandbox.emulators.spec import spec_available, spec_dir
from journeyman.sandbox.emulators.twilio import TwilioEmulator
from journeyman.sandbox.emulators.webhook import WebhookEmulator

EMULATORS: dict[str, type[Emulator]] = {
    "sendgrid": SendGridEmulator,
    "twilio": TwilioEmulator,
    "fcm": FcmEmulator,
    "braze": BrazeEmulator,
    "klaviyo": KlaviyoEmulator,
    "mailchimp": MailchimpEmulator,
    "webhook": WebhookEmulator,
}

__all__ = [
    "EMULATORS",
    "BrazeEmulator",
    "Delivery",
    "Emulator",
    "EmulatorClient",
    "EmulatorProcess",
    "Fault",
    "FcmEmulator",
    "KlaviyoEmulator",
    "MailchimpEmulator",
    "SendGridEmulator",
    "TwilioEmulator",
    "WebhookEmulator",
    "spec_available",
    "spec_dir",
]
