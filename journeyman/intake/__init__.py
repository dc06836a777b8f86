"""Signed event intake: vendor webhooks (SendGrid, Twilio, generic) into raw.message_events."""
