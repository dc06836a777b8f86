"""What a message says, as the world reads it from `OutboundMessage.tags`.

Tags: `category` (one of CATEGORIES or `any`), `offer` (OFFERS), `tone` (TONES), `value_prop`
(VALUE_PROPS). Tags are encoded as small integer codes; unknown or missing values fall back to the
neutral code (`any` / `none` / `friendly` / `neutral`) so they change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

CATEGORIES: tuple[str, ...] = ("apparel", "beauty", "electronics", "home", "sports")
ANY_CATEGORY = len(CATEGORIES)  # code of `any` (and of unknown categories)

#: offer -> (share of the order value the customer pays, base conversion lift)
OFFERS: dict[str, tuple[float, float]] = {
    "none": (1.0, 0.0),
    "discount_10": (0.90, 0.15),
    "discount_20": (0.80, 0.35),
    "free_shipping": (0.93, 0.12),  # shipping the merchant absorbs, netted from revenue
}
OFFER_NAMES: tuple[str, ...] = tuple(OFFERS)
OFFER_PAY = np.array([v[0] for v in OFFERS.values()])
OFFER_LIFT = np.array([v[1] for v in OFFERS.values()])

TONES: tuple[str, ...] = ("friendly", "urgent", "informative", "playful")
VALUE_PROPS: tuple[str, ...] = (
    "neutral",
    "replenishment",
    "win_back",
    "new_arrivals",
    "bestsellers",
    "loyalty",
)


def _codes(values: Iterable[str | None], names: tuple[str, ...], fallback: int) -> np.ndarray:
    lookup = {name: i for i, name in enumerate(names)}
    return np.fromiter((lookup.get(v or "", fallback) for v in values), dtype=np.int8)


def category_codes(values: Iterable[str | None]) -> np.ndarray:
    """Category tag → 0..4, or ANY_CATEGORY for `any`, missing or unknown."""
    return _codes(values, CATEGORIES, ANY_CATEGORY)


def offer_codes(values: Iterable[str | None]) -> np.ndarray:
    """Offer tag → index into OFFER_NAMES (`none` for missing or unknown)."""
    return _codes(values, OFFER_NAMES, 0)


def tone_codes(values: Iterable[str | None]) -> np.ndarray:
    """Tone tag → index into TONES (`friendly`, the neutral tone, for missing or unknown)."""
    return _codes(values, TONES, 0)


def value_prop_codes(values: Iterable[str | None]) -> np.ndarray:
    """Value-proposition tag → index into VALUE_PROPS (`neutral` for missing or unknown)."""
    return _codes(values, VALUE_PROPS, 0)
