"""Webhook and request signatures exactly as the vendors compute them (layer-free).

- SendGrid's Signed Event Webhook: ECDSA P-256 / SHA-256 over timestamp + raw body;
- Twilio's request signature: base64 HMAC-SHA1 over the URL + the sorted POST params;
- journeyman's generic webhook: ``sha256=<hex>`` HMAC-SHA256 over ``"<timestamp>."`` + body.

The webhook destination signs with it, the event intake verifies with it and the sandbox's
vendor emulators sign their callbacks with it. Every ``verify_*`` function returns False (never
raises) for malformed input and compares in constant time where a shared secret is involved.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"
WEBHOOK_SIGNATURE_HEADER = "X-Journeyman-Signature"
WEBHOOK_TIMESTAMP_HEADER = "X-Journeyman-Timestamp"

_EPOCH_SECONDS = re.compile(r"[0-9]{1,12}")

FormParams = Mapping[str, str | Sequence[str]]


# -- HMAC -----------------------------------------------------------------------------------


def hmac_digest(secret: str, message: bytes, algorithm: str) -> bytes:
    """HMAC of message under the UTF-8 secret with a hashlib algorithm ("sha1", "sha256")."""
    return hmac.new(secret.encode(), message, algorithm).digest()


def secrets_match(expected: str, given: str | None) -> bool:
    """True if given is the text expected, compared in constant time; False for non-text."""
    if not isinstance(given, str):
        return False
    try:
        return hmac.compare_digest(expected.encode(), given.encode())
    except UnicodeError:
        return False


# -- SendGrid Signed Event Webhook: ECDSA P-256 / SHA-256 over timestamp + raw body --------


def sendgrid_key_pair() -> tuple[bytes, str]:
    """A new P-256 key: (PKCS#8 PEM private key to sign with, the public key as SendGrid shows
    it: base64 DER SubjectPublicKeyInfo)."""
    key = ec.generate_private_key(ec.SECP256R1())
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, base64.b64encode(public_der).decode()


def sign_sendgrid(private_key_pem: bytes, timestamp: str, body: bytes) -> str:
    """Base64 DER ECDSA P-256/SHA-256 signature of timestamp + body, as SendGrid sends it."""
    key = serialization.load_pem_private_key(private_key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("SendGrid signing needs an EC P-256 private key")
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(signature).decode("ascii")


def sendgrid_headers(private_key_pem: bytes, timestamp: str, body: bytes) -> dict[str, str]:
    """The signature and timestamp headers of a SendGrid Event Webhook post."""
    return {
        SENDGRID_SIGNATURE_HEADER: sign_sendgrid(private_key_pem, timestamp, body),
        SENDGRID_TIMESTAMP_HEADER: timestamp,
    }


def load_sendgrid_public_key(public_key_b64: str) -> ec.EllipticCurvePublicKey:
    """The P-256 public key from SendGrid's base64 DER (SubjectPublicKeyInfo) text."""
    der = base64.b64decode(_strip_pem(public_key_b64), validate=True)
    key = serialization.load_der_public_key(der)
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("the SendGrid verification key must be an EC P-256 public key")
    return key


def verify_sendgrid(public_key_b64: str, signature_b64: str, timestamp: str, body: bytes) -> bool:
    """True if signature_b64 is SendGrid's signature of timestamp + body under the public key."""
    try:
        key = load_sendgrid_public_key(public_key_b64)
    except (ValueError, binascii.Error, TypeError):
        return False
    return verify_sendgrid_with_key(key, signature_b64, timestamp, body)


def verify_sendgrid_with_key(
    key: ec.EllipticCurvePublicKey, signature_b64: str, timestamp: str, body: bytes
) -> bool:
    """verify_sendgrid with an already loaded key (the receiver loads it once)."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        if base64.b64encode(signature).decode("ascii") != signature_b64:
            return False  # non-canonical base64 (e.g. altered padding bits) is a tampered header
        key.verify(signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, binascii.Error, TypeError, UnicodeError):
        return False
    return True


def _strip_pem(text: str) -> str:
    """Accept the bare base64 SendGrid shows, or the same key wrapped in PEM armour."""
    lines = [ln.strip() for ln in text.strip().splitlines()]
    return "".join(ln for ln in lines if ln and not ln.startswith("-----"))


# -- Twilio request validation: HMAC-SHA1 over URL + sorted params --------------------------


def twilio_signature(auth_token: str, url: str, params: FormParams) -> str:
    """Base64 HMAC-SHA1 of the URL followed by each POST param name+value, sorted by name."""
    payload = url
    for name in sorted(set(params)):
        value = params[name]
        values = [value] if isinstance(value, str) else list(value)
        for item in sorted(set(values)):
            payload += name + item
    digest = hmac_digest(auth_token, payload.encode(), "sha1")
    return base64.b64encode(digest).decode("ascii")


def verify_twilio(auth_token: str, url: str, params: FormParams, signature: str) -> bool:
    """True if signature is Twilio's for this URL and params (URL with and without its port)."""
    if not signature:
        return False
    ok = False
    for candidate in _url_port_variants(url):
        ok |= secrets_match(twilio_signature(auth_token, candidate, params), signature)
    return ok


def _url_port_variants(url: str) -> list[str]:
    """The URL as given, plus the default port added or removed (Twilio signs either form)."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    if default is None or not parts.hostname:
        return [url]
    userinfo, _, hostport = parts.netloc.rpartition("@")
    prefix = f"{userinfo}@" if userinfo else ""
    host = hostport.rsplit(":", 1)[0] if parts.port is not None else hostport
    if parts.port is None:
        other = prefix + f"{host}:{default}"
    elif parts.port == default:
        other = prefix + host
    else:
        return [url]
    return [url, urlunsplit(parts._replace(netloc=other))]


# -- journeyman's generic webhook: HMAC-SHA256 over "<timestamp>." + body ------------------


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` HMAC-SHA256 of ``f"{timestamp}."`` + body under the shared secret."""
    return "sha256=" + hmac_digest(secret, f"{timestamp}.".encode() + body, "sha256").hex()


def webhook_headers(secret: str, timestamp: str, body: bytes) -> dict[str, str]:
    """The timestamp and signature headers of a generic webhook post."""
    return {
        WEBHOOK_TIMESTAMP_HEADER: timestamp,
        WEBHOOK_SIGNATURE_HEADER: webhook_signature(secret, timestamp, body),
    }


def verify_webhook(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """True if signature is the generic webhook signature of timestamp + body under secret."""
    try:
        expected = webhook_signature(secret, timestamp, body)
    except (UnicodeError, AttributeError):
        return False
    return secrets_match(expected, signature)


# -- replay window --------------------------------------------------------------------------


def timestamp_is_fresh(timestamp: str, now: float, max_age_s: float) -> bool:
    """True if timestamp is epoch seconds no further than max_age_s from now (past or future)."""
    if not _EPOCH_SECONDS.fullmatch(timestamp or ""):
        return False
    return abs(now - int(timestamp)) <= max_age_s
