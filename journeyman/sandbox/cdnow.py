"""Import CDNOW-format purchase histories into the raw tables, so the agents run on real behaviour.

The file has one transaction per line, whitespace-separated: `customer_id date number_of_cds
dollar_value` (date YYYYMMDD). A first line without digits is a header; blank lines are ignored;
malformed lines are skipped and reported with their line numbers. What the file has no column for
is synthetic, clearly labelled, and deterministic in `seed`:

- raw.orders: one row per line. order_id `cdnow-<customer>-<yyyymmdd>-<n>` (the file's customer
  and date, before any shift; n counts that customer's lines of that day from 1); ordered_at is
  the date at a pseudo-random local time (the sandbox's order-hour profile) in the customer's time
  zone, converted to UTC; amount = dollar_value; discount_amount NULL; category CATEGORY.
- raw.customers: `cdnow-<customer>`; e-mail `cdnow-<customer>@example.invalid` (a reserved TLD),
  a phone number from the fictional NANP range +1 NPA 555-0100…0199, push token
  `synthetic-cdnow-<customer>`, each present with the sandbox population's reach per channel;
  time zone and country from the sandbox's region mix; signup_at up to a week before the first
  order.
- raw.consents: one row per reachable channel, recorded at signup, opted in with the sandbox
  population's opt-in rate per channel (else opted out).

Every draw hashes (seed, purpose, customer[, file date, n]), so a customer or an order gets the
same values whatever else the file holds. `shift_to` moves every date by a whole number of days.
The load is one transaction; a second load is refused unless `replace`.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from journeyman.sandbox.population import CHANNELS, CONSENT_RATE, REACHABLE
from journeyman.sandbox.purchases import ORDER_HOUR_WEIGHTS
from journeyman.sandbox.regions import COUNTRIES, SHARES, TIME_ZONES
from journeyman.tables import RAW_TABLES_DDL, arrow_schema
from journeyman.warehouse import Warehouse, WarehouseError, append_arrow, split_statements

#: CDNOW sold CDs; dbt's seed product_categories has no `music` (staging would exclude such rows
#: as unknown_category), so every CDNOW order is filed under its nearest category
CATEGORY = "electronics"
PREFIX = "cdnow-"
EMAIL_DOMAIN = "example.invalid"  # RFC 2606: never resolves, so nothing can be delivered
PUSH_PREFIX = "synthetic-"
SIGNUP_MAX_DAYS = 7.0  # signup_at lies up to this many days before the first order
LISTED_BAD_LINES = 20
#: geographic-style NANP area codes (no N9X, N11 or N00); NPA-555-0100…0199 is fictional in all
AREA_CODES = np.array(
    [a for a in range(200, 1000) if (a // 10) % 10 != 9 and a % 100 not in (0, 11)]
)
_MASK = (1 << 64) - 1
_NUMBER = r"^-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$"
_REASONS = {
    1: "expected 4 fields (customer_id date number_of_cds dollar_value), found {n}",
    2: "customer_id {0!r} is not a whole number",
    3: "date {1!r} is not a valid YYYYMMDD date",
    4: "number_of_cds {2!r} is not a whole number >= 0",
    5: "dollar_value {3!r} is negative",
    6: "dollar_value {3!r} is not a finite number",
}


class CdnowError(RuntimeError):
    """The file cannot be loaded; the message says why and what to do."""


@dataclass(frozen=True)
class BadLine:
    line: int  # 1-based line number in the file
    reason: str


@dataclass(frozen=True)
class Transactions:
    """The valid lines of a CDNOW-format file, in file order."""

    customer: np.ndarray  # int64 customer numbers
    day: np.ndarray  # datetime64[D], the file's dates
    amount: np.ndarray  # float64 dollar values
    lines_read: int  # data lines: not blank, not the header
    skipped: int  # malformed lines
    bad: list[BadLine] = field(default_factory=list)  # the first LISTED_BAD_LINES of them

    @property
    def n_customers(self) -> int:
        """How many distinct customers the valid lines name."""
        return len(np.unique(self.customer))


@dataclass(frozen=True)
class CdnowTables:
    """The raw rows of one load."""

    customers: pa.Table
    consents: pa.Table
    orders: pa.Table
    shift_days: int


@dataclass(frozen=True)
class LoadSummary:
    lines_read: int
    orders: int
    customers: int
    skipped: int
    first: date  # UTC dates of the first and last ordered_at, after shifting
    last: date
    shift_days: int
    replaced: int  # cdnow orders deleted first (--replace)
    bad: list[BadLine]

    def line(self) -> str:
        """The one-line summary the command prints."""
        shift = f", shifted by {self.shift_days:+,} days" if self.shift_days else ""
        again = f", replacing {self.replaced:,} orders" if self.replaced else ""
        return (
            f"cdnow: {self.lines_read:,} lines read, {self.orders:,} orders loaded, "
            f"{self.customers:,} customers, {self.skipped:,} lines skipped; orders "
            f"{self.first} to {self.last} (UTC{shift}){again}"
        )


# -- parsing ----------------------------------------------------------------------------------


def _matches(values: pa.Array, pattern: str) -> np.ndarray:
    return pc.match_substring_regex(values, pattern).to_numpy(zero_copy_only=False)


def _dates(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """YYYYMMDD strings → (datetime64[D] days, valid calendar date?)."""
    ok = _matches(text, r"^[0-9]{8}$")
    digits = pc.cast(pc.if_else(pa.array(ok), text, "19700101"), pa.int64()).to_numpy()
    y, m, d = digits // 10000, digits // 100 % 100, digits % 100
    ok &= (y >= 1) & (m >= 1) & (m <= 12) & (d >= 1)
    month = ((y - 1970) * 12 + np.clip(m, 1, 12) - 1).astype("datetime64[M]")
    start = month.astype("datetime64[D]")
    ok &= d <= ((month + 1).astype("datetime64[D]") - start).astype(np.int64)
    return start + (np.clip(d, 1, 31) - 1).astype("timedelta64[D]"), ok


def _check_fields(cols: list[pa.Array]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lines of 4 fields → (reason code, 0 if valid; customer; day; amount)."""
    customer, day, count, amount = cols
    customer_ok = _matches(customer, r"^[0-9]{1,15}$")
    days, day_ok = _dates(day)
    count_ok = _matches(count, r"^[0-9]{1,15}$")
    numeric = _matches(amount, _NUMBER)
    values = pc.cast(pc.if_else(pa.array(numeric), amount, "0"), pa.float64()).to_numpy()
    negative = numeric & (values < 0)
    checks = [~customer_ok, ~day_ok, ~count_ok, negative, ~numeric | ~np.isfinite(values)]
    code = np.select(checks, [2, 3, 4, 5, 6], 0).astype(np.int8)
    ids = pc.cast(pc.if_else(pa.array(customer_ok), customer, "0"), pa.int64()).to_numpy()
    return code, ids, days, values


def _bad_lines(fields: pa.ListArray, code: np.ndarray, numbers: np.ndarray) -> list[BadLine]:
    out = []
    for pos in np.flatnonzero(code)[:LISTED_BAD_LINES]:
        values = [v[:40] for v in fields[int(pos)].as_py()]
        reason = _REASONS[int(code[pos])].format(*values, n=len(values))
        out.append(BadLine(int(numbers[pos]), reason))
    return out


def parse_transactions(text: str) -> Transactions:
    """Parse CDNOW-format text (vectorised with Arrow); malformed lines are counted, not fatal."""
    lines = pc.utf8_trim_whitespace(pa.array(text.split("\n"), pa.large_string()))
    keep = pc.not_equal(lines, "").to_numpy(zero_copy_only=False)
    first = np.flatnonzero(keep)[:1]
    if first.size and not re.search(r"\d", lines[int(first[0])].as_py()):
        keep[first[0]] = False  # a header
    numbers = np.flatnonzero(keep) + 1
    fields = pc.split_pattern_regex(lines.filter(pa.array(keep)), r"\s+")
    four = pc.equal(pc.list_value_length(fields), 4).to_numpy(zero_copy_only=False)
    flat = pc.list_flatten(fields.filter(pa.array(four)))
    columns = [flat.take(pa.array(np.arange(j, len(flat), 4))) for j in range(4)]
    code = np.ones(len(numbers), dtype=np.int8)
    code[four], customer, day, amount = _check_fields(columns)
    valid = code[four] == 0
    return Transactions(
        customer=customer[valid],
        day=day[valid],
        amount=amount[valid],
        lines_read=len(numbers),
        skipped=int(np.count_nonzero(code)),
        bad=_bad_lines(fields, code, numbers),
    )


def read_transactions(path: Path) -> Transactions:
    """Read a CDNOW-format file; CdnowError if it cannot be read or has no valid line."""
    try:
        data = Path(path).read_bytes()
    except IsADirectoryError:
        raise CdnowError(f"{path} is a directory; give the path of a CDNOW-format file") from None
    except OSError as exc:
        raise CdnowError(f"cannot read {path}: {exc.strerror or exc}") from None
    tx = parse_transactions(data.decode("utf-8", errors="replace"))
    if len(tx.customer) == 0:
        detail = f"; line {tx.bad[0].line}: {tx.bad[0].reason}" if tx.bad else ""
        raise CdnowError(
            f"{path} has no valid CDNOW line ({tx.lines_read:,} data lines{detail}); expected "
            "whitespace-separated customer_id, date YYYYMMDD, number_of_cds, dollar_value"
        )
    return tx


# -- synthetic details ------------------------------------------------------------------------


def _splitmix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def uniform(seed: int, purpose: str, *keys: np.ndarray) -> np.ndarray:
    """A uniform [0, 1) per row, a hash of (seed, purpose, keys): same keys, same number."""
    h = _splitmix(np.full(len(keys[0]), int(seed) & _MASK, dtype=np.uint64))
    h = _splitmix(h ^ np.uint64(zlib.crc32(purpose.encode())))
    for key in keys:
        h = _splitmix(h ^ np.asarray(key).astype(np.int64).view(np.uint64))
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _pick(shares: np.ndarray, u: np.ndarray) -> np.ndarray:
    cdf = np.cumsum(shares) / np.sum(shares)
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(shares) - 1)


def local_seconds(seed: int, customer: np.ndarray, day: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Seconds after local midnight of each order: an hour from the sandbox's order-hour profile."""
    keys = (customer, day.astype(np.int64), n)
    hour = _pick(ORDER_HOUR_WEIGHTS, uniform(seed, "cdnow-hour", *keys))
    return hour * 3600 + np.floor(uniform(seed, "cdnow-second", *keys) * 3600).astype(np.int64)


def local_to_utc(region: np.ndarray, day: np.ndarray, seconds: np.ndarray) -> np.ndarray:
    """Local wall-clock times (day + seconds in each region's zone) → naive UTC datetime64[s].

    A time the clocks skip or repeat (DST) is read with the offset before the change (zoneinfo,
    fold=0)."""
    local = day.astype("datetime64[s]") + seconds.astype("timedelta64[s]")
    key = region.astype(np.int64) << 32 | (day.astype(np.int64) + (1 << 31))
    pairs, inverse = np.unique(key, return_inverse=True)
    zones = [ZoneInfo(tz) for tz in TIME_ZONES]
    start, end = np.empty(len(pairs)), np.empty(len(pairs))
    for i, k in enumerate(pairs.tolist()):
        day_k = date(1970, 1, 1) + timedelta(days=(k & 0xFFFFFFFF) - (1 << 31))
        midnight = datetime.combine(day_k, time(0), zones[k >> 32])
        start[i] = midnight.utcoffset().total_seconds()
        end[i] = midnight.replace(hour=23, minute=59, second=59).utcoffset().total_seconds()
    offset = start[inverse]
    for j in np.flatnonzero(start[inverse] != end[inverse]):  # the clocks change that day
        at = local[j].astype(datetime).replace(tzinfo=zones[int(region[j])])
        offset[j] = at.utcoffset().total_seconds()
    return local - offset.astype(np.int64).astype("timedelta64[s]")


def fictional_phones(customer: np.ndarray) -> np.ndarray:
    """+1 NPA 555-01XX: unique for customer numbers below 70,400, then repeating."""
    area = AREA_CODES[(customer // 100) % len(AREA_CODES)]
    return np.char.add(
        np.char.add(np.char.add("+1", area.astype(str)), "55501"),
        np.char.zfill((customer % 100).astype(str), 2),
    )


# -- tables -----------------------------------------------------------------------------------


def _nth(customer: np.ndarray, day: np.ndarray) -> np.ndarray:
    """1, 2, … within each run of equal (customer, day) (rows sorted by them)."""
    k = len(customer)
    new = np.r_[True, (customer[1:] != customer[:-1]) | (day[1:] != day[:-1])]
    return np.arange(k) - np.maximum.accumulate(np.where(new, np.arange(k), 0)) + 1


def _shift_days(region: np.ndarray, day: np.ndarray, seconds: np.ndarray, to: date) -> int:
    """The largest whole-day shift that puts every order before `to` 00:00 UTC."""
    limit = np.datetime64(to, "s")
    shift = int((np.datetime64(to, "D") - 1 - day.max()).astype(np.int64)) + 1
    while local_to_utc(region, day + shift, seconds).max() >= limit:
        shift -= 1
    return shift


def _customer_ids(customer: np.ndarray) -> np.ndarray:
    """`cdnow-00001`: the file's number, zero-padded to at least five digits."""
    return np.char.add(PREFIX, np.char.zfill(customer.astype(str), 5))


def _per_channel(seed: int, purpose: str, customer: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """(customers, channels) bool: a seeded draw per customer and channel at `rates`."""
    draws = [uniform(seed, f"{purpose}-{c}", customer) < rates[j] for j, c in enumerate(CHANNELS)]
    return np.column_stack(draws)


def _customers(
    seed: int, customer: np.ndarray, region: np.ndarray, first: np.ndarray, loaded: datetime
) -> tuple[pa.Table, pa.Table]:
    """raw.customers and raw.consents rows of the unique, sorted customer numbers."""
    ids = _customer_ids(customer)
    reach = _per_channel(seed, "cdnow-reach", customer, REACHABLE)
    back = uniform(seed, "cdnow-signup", customer) * SIGNUP_MAX_DAYS * 86_400
    signup = (first - np.round(back).astype("timedelta64[s]")).astype("datetime64[us]")
    email = np.char.add(np.char.add(ids, "@"), EMAIL_DOMAIN)
    token = np.char.add(PUSH_PREFIX, ids)
    customers = {
        "customer_id": ids,
        "email": pa.array(email, mask=~reach[:, 0]),
        "phone": pa.array(fictional_phones(customer), mask=~reach[:, 1]),
        "push_token": pa.array(token, mask=~reach[:, 2]),
        "time_zone": np.array(TIME_ZONES)[region],
        "country": np.array(COUNTRIES)[region],
        "signup_at": signup,
        "_loaded_at": np.full(len(ids), np.datetime64(loaded, "us")),
    }
    idx, ch = np.nonzero(reach)
    opted = _per_channel(seed, "cdnow-consent", customer, CONSENT_RATE)
    consents = {
        "customer_id": ids[idx],
        "channel": np.array(CHANNELS)[ch],
        "status": np.where(opted[idx, ch], "opted_in", "opted_out"),
        "recorded_at": signup[idx],
        "_loaded_at": np.full(len(idx), np.datetime64(loaded, "us")),
    }
    return (
        pa.table(customers, schema=arrow_schema("raw.customers")),
        pa.table(consents, schema=arrow_schema("raw.consents")),
    )


def build_tables(
    tx: Transactions, *, seed: int = 1, shift_to: date | None = None, loaded: datetime
) -> CdnowTables:
    """The raw rows of a load, sorted by customer, file date and line."""
    order = np.lexsort((np.arange(len(tx.customer)), tx.day, tx.customer))
    customer, day, amount = tx.customer[order], tx.day[order], tx.amount[order]
    unique, starts, pos = np.unique(customer, return_index=True, return_inverse=True)
    region = _pick(SHARES, uniform(seed, "cdnow-region", unique))
    n = _nth(customer, day)
    seconds = local_seconds(seed, customer, day, n)
    shift = 0 if shift_to is None else _shift_days(region[pos], day, seconds, shift_to)
    if not np.datetime64("0001-01-02") <= day.min() + shift <= np.datetime64("9999-12-30"):
        raise CdnowError(f"--shift-to {shift_to} moves dates outside the years 1 to 9999")
    ordered_at = local_to_utc(region[pos], day + shift, seconds)
    first = np.minimum.reduceat(ordered_at, starts)
    customers, consents = _customers(seed, unique, region, first, loaded)
    ids = customers.column("customer_id").to_numpy(zero_copy_only=False)[pos]
    stamp = np.char.replace(np.datetime_as_string(day, unit="D"), "-", "")
    order_ids = np.char.add(
        np.char.add(np.char.add(ids, "-"), stamp), np.char.add("-", n.astype(str))
    )
    orders = {
        "order_id": order_ids,
        "customer_id": ids,
        "ordered_at": ordered_at.astype("datetime64[us]"),
        "amount": amount,
        "discount_amount": pa.nulls(len(ids), pa.float64()),
        "category": np.full(len(ids), CATEGORY),
        "_loaded_at": np.full(len(ids), np.datetime64(loaded, "us")),
    }
    return CdnowTables(
        customers, consents, pa.table(orders, schema=arrow_schema("raw.orders")), shift
    )


# -- writing ----------------------------------------------------------------------------------


def _previous(conn: sa.Connection) -> tuple[int, int]:
    """(orders, customers) of earlier CDNOW loads (results fetched to the end: DuckDB 2 refuses
    other work on a connection with an unfinished result)."""
    ours = {"p": f"{PREFIX}%"}
    counts = [
        conn.execute(sa.text(f"select count(*) from raw.{t} where {c} like :p"), ours).fetchall()
        for t, c in (("orders", "order_id"), ("customers", "customer_id"))
    ]
    return int(counts[0][0][0]), int(counts[1][0][0])


def _write(
    conn: sa.Connection,
    tables: CdnowTables,
    replace: bool,
    on_table_written: Callable[[str], None] | None,
) -> int:
    for statement in split_statements(RAW_TABLES_DDL):
        conn.execute(sa.text(statement))
    orders, customers = _previous(conn)
    if (orders or customers) and not replace:
        raise CdnowError(
            f"already loaded: {orders:,} orders with ids {PREFIX}… and {customers:,} customers; "
            "pass --replace to reload"
        )
    if replace:
        ours = {"prefix": f"{PREFIX}%"}
        conn.execute(sa.text("delete from raw.orders where order_id like :prefix"), ours)
        for table in ("customers", "consents"):
            conn.execute(sa.text(f"delete from raw.{table} where customer_id like :prefix"), ours)
    for name, table in (
        ("raw.customers", tables.customers),
        ("raw.consents", tables.consents),
        ("raw.orders", tables.orders),
    ):
        append_arrow(conn, name, table)
        if on_table_written is not None:
            on_table_written(name)
    return orders


def write_tables(
    warehouse: Warehouse,
    tables: CdnowTables,
    *,
    replace: bool = False,
    on_table_written: Callable[[str], None] | None = None,
) -> int:
    """Write a load in one transaction (nothing stays behind on failure); the number of earlier
    CDNOW orders replaced. `on_table_written(table)` runs after each table (a test hook)."""
    try:
        with warehouse.connect() as conn:
            return _write(conn, tables, replace, on_table_written)
    except (CdnowError, WarehouseError):
        raise
    except Exception as exc:  # the driver's errors: a constraint, a full disk, …
        cause: BaseException = exc
        while cause.__context__ is not None and "transaction is aborted" in str(cause):
            cause = cause.__context__  # the clean-up's error hid the one that aborted it
        first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        raise CdnowError(
            f"loading into {warehouse.path} failed, nothing was written: {first}"
        ) from exc


def load_cdnow(
    warehouse: Warehouse,
    path: Path,
    *,
    seed: int = 1,
    shift_to: date | None = None,
    replace: bool = False,
    on_table_written: Callable[[str], None] | None = None,
) -> LoadSummary:
    """Parse a CDNOW-format file and load it into raw.customers, raw.consents and raw.orders."""
    tx = read_transactions(path)
    loaded = datetime.now(UTC).replace(tzinfo=None)
    tables = build_tables(tx, seed=seed, shift_to=shift_to, loaded=loaded)
    replaced = write_tables(warehouse, tables, replace=replace, on_table_written=on_table_written)
    ordered_at = tables.orders.column("ordered_at")
    return LoadSummary(
        lines_read=tx.lines_read,
        orders=tables.orders.num_rows,
        customers=tables.customers.num_rows,
        skipped=tx.skipped,
        first=pc.min(ordered_at).as_py().date(),
        last=pc.max(ordered_at).as_py().date(),
        shift_days=tables.shift_days,
        replaced=replaced,
        bad=tx.bad,
    )
