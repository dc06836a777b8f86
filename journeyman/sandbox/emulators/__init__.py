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
"""

from journeyman.sandbox.emulators.client import EmulatorClient, EmulatorProcess
from journeyman.sandbox.emulators.server import Delivery, Emulator, Fault
from journeyman.sandbox.emulators.spec import spec_available, spec_dir
from journeyman.sandbox.emulators.vendors import (
    EMULATORS,
    BrazeEmulator,
    FcmEmulator,
    KlaviyoEmulator,
    MailchimpEmulator,
    SendGridEmulator,
    TwilioEmulator,
    WebhookEmulator,
)

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
