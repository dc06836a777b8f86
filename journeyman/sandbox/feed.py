"""The raw rows as an ETL tool (or an ESP webhook sync) would load them — including its mess.

Bad rows at small seeded rates (≈0.5 % each): customer rows with NULL customer_id, malformed
e-mail (`jane.doe@`), malformed phone (`555-0100`), unknown time zone (`Mars/Olympus_Mons`), the
same customer row loaded twice; and message events re-sent with the same event_id.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import numpy as np
import pyarrow as pa

from journeyman.sandbox.creative import CATEGORIES
from journeyman.sandbox.population import CHANNELS, DEFECT_RATE, Traits
from journeyman.sandbox.regions import COUNTRIES, PHONE_CODES, PHONE_DIGITS, TIME_ZONES
from journeyman.tables import RAW_TABLES, arrow_schema

DUPLICATE_RATE = 0.005
UNKNOWN_TIME_ZONE = "Mars/Olympus_Mons"
FIRST = np.array(
    [
        "jane",
        "john",
        "maria",
        "wei",
        "aiko",
        "liam",
        "emma",
        "noah",
        "olivia",
        "lucas",
        "mia",
        "arjun",
        "priya",
        "sofia",
        "mateo",
        "yuki",
        "chloe",
        "omar",
        "fatima",
        "lena",
        "jonas",
        "amara",
        "kofi",
        "ana",
        "diego",
        "hana",
        "ravi",
        "zoe",
        "leo",
        "nina",
    ]
)
LAST = np.array(
    [
        "doe",
        "smith",
        "garcia",
        "wang",
        "tanaka",
        "brown",
        "mueller",
        "silva",
        "rossi",
        "khan",
        "patel",
        "kim",
        "nguyen",
        "lopez",
        "schmidt",
        "martin",
        "okafor",
        "dubois",
        "sato",
        "cohen",
        "novak",
        "santos",
        "jones",
        "ito",
        "singh",
    ]
)
DOMAINS = np.array(
    [
        "gmail.com",
        "yahoo.com",
        "outlook.com",
        "icloud.com",
        "hotmail.com",
        "proton.me",
        "example.org",
        "mail.com",
    ]
)
MALFORMED_EMAIL = np.array(["{}@", "{}.gmail.com", "{}@@gmail.com", "{} @outlook.com"])
MALFORMED_PHONE = np.array(["555-0100", "(212) 555-0199", "0171 23", "+1-555", "12345"])

RAW_SCHEMAS = {t: arrow_schema(f"raw.{t}") for t in RAW_TABLES}

EPOCH = np.datetime64("1970-01-01T00:00:00", "us")


def day_time(day_numbers: np.ndarray) -> np.ndarray:
    """Fractional day numbers → datetime64[us] (UTC, naive)."""
    micros = np.round(np.asarray(day_numbers, dtype=np.float64) * 86_400e6).astype(np.int64)
    return EPOCH + micros.astype("timedelta64[us]")


def numbered(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    """Ids like `ord-h00000042`: prefix + zero-padded numbers (works for empty arrays)."""
    if len(numbers) == 0:
        return np.array([], dtype=str)
    return np.char.add(prefix, np.char.zfill(np.asarray(numbers).astype(str), width))


def loaded_at(day: date) -> datetime:
    """When the nightly ETL loads what happened on `day` (02:00 UTC the next day)."""
    return datetime.combine(day + timedelta(days=1), time(2))


def events_table(
    ids: np.ndarray,
    decision: np.ndarray,
    customer: np.ndarray,
    channel: np.ndarray,
    kind: str,
    at: np.ndarray,
    loaded: datetime | np.ndarray,
) -> pa.Table:
    """raw.message_events rows of one event type: event ids `evt-<id>-<kind>`; `loaded` is one
    load instant for all rows or one per row."""
    n = len(ids)
    return pa.table(
        {
            "event_id": np.char.add(np.char.add("evt-", ids.astype(str)), "-" + kind),
            "decision_id": decision,
            "customer_id": customer,
            "channel": channel,
            "event_type": np.full(n, kind),
            "occurred_at": at.astype("datetime64[us]"),
            "_loaded_at": np.broadcast_to(np.asarray(loaded, dtype="datetime64[us]"), (n,)),
        },
        schema=RAW_SCHEMAS["message_events"],
    )


def _digits(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    return np.array([str(v).zfill(width) for v in rng.integers(0, 10**width, size=n)])


def customers_table(rng: np.random.Generator, traits: Traits, signup_at: np.ndarray) -> pa.Table:
    """raw.customers rows for the population, with the feed's bad rows mixed in."""
    n = traits.n
    first, last = rng.choice(FIRST, n), rng.choice(LAST, n)
    local = np.char.add(np.char.add(first, "."), last)
    local = np.char.add(local, rng.integers(1, 999, n).astype(str))
    email = np.char.add(np.char.add(local, "@"), rng.choice(DOMAINS, n)).astype(object)
    bad_email = traits.defect == 1
    patterns = rng.choice(MALFORMED_EMAIL, n)
    email[bad_email] = [
        p.format(x) for p, x in zip(patterns[bad_email], local[bad_email], strict=True)
    ]
    email[~traits.reachable[:, 0]] = None

    region = traits.region.astype(np.int64)
    codes, widths = np.array(PHONE_CODES), np.array(PHONE_DIGITS)
    national = _digits(rng, n, 11)
    phone = np.array(
        ["+" + c + d[:w] for c, d, w in zip(codes[region], national, widths[region], strict=True)],
        dtype=object,
    )
    bad_phone = traits.defect == 2
    phone[bad_phone] = rng.choice(MALFORMED_PHONE, int(bad_phone.sum()))
    phone[~traits.reachable[:, 1]] = None

    token = _tokens(rng, n)
    token[~traits.reachable[:, 2]] = None

    tz = np.array(TIME_ZONES, dtype=object)[region]
    tz[traits.defect == 3] = UNKNOWN_TIME_ZONE
    country = np.array(COUNTRIES, dtype=object)[region]
    loaded = signup_at.astype("datetime64[D]") + np.timedelta64(1, "D") + np.timedelta64(2, "h")
    rows = {
        "customer_id": traits.customer_id.astype(object),
        "email": email,
        "phone": phone,
        "push_token": token,
        "time_zone": tz,
        "country": country,
        "signup_at": signup_at,
        "_loaded_at": loaded.astype("datetime64[us]"),
    }
    # rows whose id was lost upstream, and rows the connector loaded twice (re-synced later)
    n_bad = rng.binomial(n, DEFECT_RATE)
    n_dup = rng.binomial(n, DUPLICATE_RATE)
    null_src = rng.choice(n, n_bad, replace=False)
    dup_src = rng.choice(n, n_dup, replace=False)
    extra_ids = np.concatenate([np.full(n_bad, None, dtype=object), rows["customer_id"][dup_src]])
    src = np.concatenate([null_src, dup_src])
    cols = {}
    for name, values in rows.items():
        extra = extra_ids if name == "customer_id" else values[src]
        if name == "_loaded_at":
            extra = extra + np.timedelta64(1, "h")
        cols[name] = np.concatenate([values, extra])
    return pa.table(cols, schema=RAW_SCHEMAS["customers"])


def _tokens(rng: np.random.Generator, n: int) -> np.ndarray:
    raw = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    return np.array([row.tobytes().hex() for row in raw], dtype=object)


def initial_consents_table(traits: Traits, signup_at: np.ndarray) -> pa.Table:
    """raw.consents at signup: one row per reachable channel (opted_in / opted_out)."""
    idx, ch = np.nonzero(traits.reachable)
    status = np.where(traits.consent0[idx, ch], "opted_in", "opted_out")
    recorded = signup_at[idx]
    loaded = recorded.astype("datetime64[D]") + np.timedelta64(26, "h")
    return pa.table(
        {
            "customer_id": traits.customer_id[idx],
            "channel": np.array(CHANNELS)[ch],
            "status": status,
            "recorded_at": recorded,
            "_loaded_at": loaded.astype("datetime64[us]"),
        },
        schema=RAW_SCHEMAS["consents"],
    )


def orders_table(
    order_ids: np.ndarray,
    customer_ids: np.ndarray,
    ordered_at: np.ndarray,
    amounts: np.ndarray,
    discounts: np.ndarray,
    categories: np.ndarray,
    loaded: np.ndarray | datetime,
) -> pa.Table:
    """raw.orders rows (category codes → names); `amounts` are paid, `discounts` the money off."""
    n = len(order_ids)
    if isinstance(loaded, datetime):
        loaded = np.full(n, np.datetime64(loaded, "us"))
    return pa.table(
        {
            "order_id": order_ids,
            "customer_id": customer_ids,
            "ordered_at": ordered_at.astype("datetime64[us]"),
            "amount": amounts.astype(np.float64),
            "discount_amount": discounts.astype(np.float64),
            "category": np.array(CATEGORIES)[categories.astype(np.int64)],
            "_loaded_at": loaded.astype("datetime64[us]"),
        },
        schema=RAW_SCHEMAS["orders"],
    )


def with_resent_events(rng: np.random.Generator, events: pa.Table) -> pa.Table:
    """Append ≈0.5 % of the events again, same event_id, loaded an hour later (webhook retries)."""
    if events.num_rows == 0:
        return events
    pick = np.flatnonzero(rng.random(events.num_rows) < DUPLICATE_RATE)
    again = events.take(pa.array(pick))
    later = again.column("_loaded_at").to_numpy() + np.timedelta64(1, "h")
    again = again.set_column(
        again.schema.get_field_index("_loaded_at"),
        "_loaded_at",
        pa.array(later, pa.timestamp("us")),
    )
    return pa.concat_tables([events, again])
