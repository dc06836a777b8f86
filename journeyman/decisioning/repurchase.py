"""Repurchase timing and spend per customer: the BG/NBD and gamma-gamma models.

BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): while alive, a
customer buys at Poisson rate λ ~ Gamma(r, α); after each repeat purchase they drop out for good
with probability p ~ Beta(a, b). A customer is summarised by x (repeat purchases, i.e. purchase
days after the first one), t_x (time from the first to the last purchase, "recency") and T (time
from the first purchase to the end of the observation period), all times in one unit (weeks
in the paper). Fitted by maximum likelihood: L-BFGS-B on the log-parameters with the analytic
gradient; the terms that depend on x alone are summed once per distinct x, customers without
a repeat purchase once per distinct T (a million customers fit in about a second).

Per customer: P(alive | x, t_x, T); E[Y(t) | x, t_x, T], the expected purchases in the next t
(the paper's eq. 10, its Gaussian hypergeometric function taken through Euler's transformation,
which stays finite for heavy buyers and long horizons where the printed form overflows, and its
singular parameter values stepped over); and the time to the next purchase. Given alive, that
time is exponential with rate λ, and λ | alive ~ Gamma(r + x, α + T), so it is Lomax distributed:
P(W > w | alive) = ((α + T) / (α + T + w))^(r + x). `time_to_next_purchase` returns a quantile
of W given alive (the median by default; always finite, whereas the mean (α + T) / (r + x - 1)
is infinite when r + x ≤ 1). A dead customer never buys again, so read it next to P(alive);
`probability_purchase_within` combines both.

Gamma-gamma (Fader, Hardie & Lee 2005, "RFM and CLV"; Colombo & Jiang 1999): a customer's order
values are Gamma(p, ν) with ν ~ Gamma(q, v) across customers, independent of the purchase
process. Fitted on repeat customers' mean repeat-order value; gives each customer's expected
average order value (a credibility-weighted mix of their own mean and the population mean).
"""

from __future__ import annotations

import csv
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import OptimizeResult, minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1
from threadpoolctl import ThreadpoolController

ArrayLike = np.ndarray | list[float] | tuple[float, ...] | float

#: Column names accepted for each summary field, in order of preference (any case).
SUMMARY_COLUMNS = {"frequency": ("frequency", "x"), "recency": ("recency", "t_x"), "T": ("T",)}
_LOG_BOUND = 30.0  # |log parameter| bound, relative to the data's time scale for alpha
#: Eq. 10's singular parameter values are stepped over (interpolated linearly) within these.
_NEAR_A_ONE, _NEAR_INTEGER_R_MINUS_A, _NEAR_A_PLUS_B_ONE = 1e-5, 1e-4, 1e-5


class RepurchaseDataError(ValueError):
    """Customer summaries that the models cannot use (the message says where and how to fix)."""


@dataclass(frozen=True)
class FitInfo:
    """How a maximum-likelihood fit went."""

    log_likelihood: float
    iterations: int
    converged: bool
    n: int
    seconds: float
    message: str = ""


@dataclass(frozen=True)
class BgNbdParams:
    """BG/NBD parameters: λ ~ Gamma(shape r, rate alpha), p ~ Beta(a, b); `fit` if fitted."""

    r: float
    alpha: float
    a: float
    b: float
    fit: FitInfo | None = None


@dataclass(frozen=True)
class GammaGammaParams:
    """Gamma-gamma parameters: order value ~ Gamma(p, ν), ν ~ Gamma(q, rate v); `fit` if fitted."""

    p: float
    q: float
    v: float
    fit: FitInfo | None = None


@dataclass(frozen=True)
class Summary:
    """Validated per-customer summaries (float64 arrays of equal length); `ids` if read."""

    frequency: np.ndarray
    recency: np.ndarray
    T: np.ndarray
    ids: list[str] | None = None


def _at_index(i: int) -> str:
    return f"customer at index {i}"


def check_summary(
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    where: Callable[[int], str] = _at_index,
    names: tuple[str, str, str] = ("frequency", "recency", "T"),
) -> Summary:
    """Check and convert customer summaries: finite, non-negative, whole frequencies, recency ≤ T.
    `where(i)` names the i-th customer in messages (a file line, for a CSV)."""
    arrays = [np.atleast_1d(np.asarray(v, dtype=float)) for v in (frequency, recency, T)]
    if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
        raise RepurchaseDataError(
            f"{', '.join(names)} must be 1-D and of one length; got shapes "
            f"{', '.join(str(a.shape) for a in arrays)}"
        )
    for name, values in zip(names, arrays, strict=True):
        bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise RepurchaseDataError(
                f"{where(i)}: {name} is {values[i]:g}; it must be a finite number ≥ 0 "
                "(frequency counts repeat purchases, recency and T are times since the first one)"
            )
    x, t_x, age = arrays
    for bad, fix in (
        (x != np.round(x), f"{names[0]} must be a whole number of repeat purchases"),
        (
            t_x > age,
            f"{names[1]} (time from the first to the last purchase) must not exceed {names[2]} "
            "(time from the first purchase to the end of the period), in the same unit",
        ),
    ):
        if bad.any():
            i = int(np.argmax(bad))
            values = ", ".join(f"{n} {a[i]:g}" for n, a in zip(names, arrays, strict=True))
            raise RepurchaseDataError(f"{where(i)}: {values}: {fix}")
    return Summary(x, t_x, age)


class _Data:
    """A summary prepared for repeated likelihood evaluations: customers without a repeat
    purchase grouped by T (their likelihood depends on T alone), repeat customers one by one."""

    def __init__(self, s: Summary) -> None:
        self.n = len(s.frequency)
        self.xs, inverse, self.counts = np.unique(
            s.frequency, return_inverse=True, return_counts=True
        )
        pos = s.frequency > 0
        self.T_zero, self.count_zero = np.unique(s.T[~pos], return_counts=True)
        self.x_pos = s.frequency[pos]
        self.inv_pos = inverse[pos]
        self.T_pos, self.t_pos = s.T[pos], s.recency[pos]
        self.scale = float(s.T.mean()) if s.T.mean() > 0 else 1.0


def bgnbd_log_likelihood(
    params: BgNbdParams, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """Each customer's log-likelihood (paper eq. 6), in log space:
    ln Γ(r+x) − ln Γ(r) + r ln α + ln B(a, b+x) − ln B(a, b) − (r+x) ln(α+T)
    + ln(1 + [x>0] a/(b+x−1) ((α+T)/(α+t_x))^(r+x))."""
    s = check_summary(frequency, recency, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x = s.frequency
    head = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + betaln(a, b + x) - betaln(a, b)
    return head - (r + x) * np.log(alpha + s.T) + np.logaddexp(0.0, _log_dead_odds(params, s))


def _log_dead_odds(params: BgNbdParams, s: Summary) -> np.ndarray:
    """ln P(dead | ·) / P(alive | ·) per customer; −inf when x = 0 (no dropout yet)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    out = np.full(s.frequency.shape, -np.inf)
    pos = s.frequency > 0
    x, T, t_x = s.frequency[pos], s.T[pos], s.recency[pos]
    out[pos] = np.log(a) - np.log(b + x - 1) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    return out


def _dot(u: np.ndarray, v: np.ndarray) -> float:
    """u·v without BLAS: a threaded BLAS dot stalls on a busy machine, einsum does not."""
    return float(np.einsum("i,i->", u, v))


def _softplus_and_expit(odds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ln(1 + eᵒ) and eᵒ / (1 + eᵒ) from one exp (beyond o = 30 both are exact to 1e-13)."""
    e = np.exp(np.minimum(odds, 30.0))
    one_plus = 1.0 + e
    return np.log(one_plus) + np.maximum(odds - 30.0, 0.0), e / one_plus


def _objective(theta: np.ndarray, d: _Data) -> tuple[float, np.ndarray]:
    """Mean negative log-likelihood over customers and its gradient in log-parameters."""
    r, alpha, a, b = np.exp(theta)
    xs, c = d.xs, d.counts
    # terms that depend on x alone, once per distinct x
    ll = _dot(c, gammaln(r + xs) + gammaln(b + xs) - gammaln(a + b + xs))
    ll += d.n * (r * np.log(alpha) - gammaln(r) + gammaln(a + b) - gammaln(b))
    g_r = _dot(c, digamma(r + xs)) + d.n * (np.log(alpha) - digamma(r))
    g_ab = d.n * digamma(a + b) - _dot(c, digamma(a + b + xs))
    g_b = g_ab + _dot(c, digamma(b + xs)) - d.n * digamma(b)
    # the alive branch −(r+x) ln(α+T): customers without a repeat purchase, grouped by T …
    log_T0 = np.log(alpha + d.T_zero)
    ll -= r * _dot(d.count_zero, log_T0)
    g_r -= _dot(d.count_zero, log_T0)
    g_alpha = d.n * r / alpha - r * _dot(d.count_zero, 1.0 / (alpha + d.T_zero))
    # … and repeat customers, with their dropped-out branch: softplus(log odds of being dead)
    rx = r + d.x_pos
    log_T, log_t = np.log(alpha + d.T_pos), np.log(alpha + d.t_pos)
    inv_T = 1.0 / (alpha + d.T_pos)
    lb = np.log(b + xs - 1, where=xs > 0, out=np.zeros_like(xs))
    log_ratio = log_T - log_t
    odds = np.log(a) - lb[d.inv_pos] + rx * log_ratio
    softplus, w = _softplus_and_expit(odds)  # w = P(dead | ·)
    ll += softplus.sum() - _dot(rx, log_T)
    g_r += _dot(w, log_ratio) - log_T.sum()
    g_alpha += _dot(w * rx, inv_T - 1.0 / (alpha + d.t_pos)) - _dot(rx, inv_T)
    w_by_x = np.bincount(d.inv_pos, weights=w, minlength=len(xs))
    g_a = g_ab + w.sum() / a
    g_b -= _dot(w_by_x[xs > 0], 1.0 / (b + xs[xs > 0] - 1))
    grad = np.array([g_r * r, g_alpha * alpha, g_a * a, g_b * b])
    return -ll / d.n, -grad / d.n


@functools.cache
def _blas_controller() -> ThreadpoolController:
    return ThreadpoolController()


def _minimize(
    objective: Callable[..., tuple[float, np.ndarray]],
    theta0: np.ndarray,
    args: tuple,
    bounds: list[tuple[float, float]],
    max_iterations: int,
) -> OptimizeResult:
    """L-BFGS-B on log-parameters with the analytic gradient. BLAS is held to one thread: its
    threads only stall on the optimiser's few-element vectors (10-100x on a busy machine)."""
    with _blas_controller().limit(limits=1, user_api="blas"):
        return minimize(
            objective,
            theta0,
            args=args,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": max_iterations, "ftol": 1e-13, "gtol": 1e-9},
        )


def fit_bgnbd(
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    init: BgNbdParams | None = None,
    max_iterations: int = 1000,
) -> BgNbdParams:
    """Maximum-likelihood BG/NBD parameters for these customers (times in any one unit)."""
    started = time.perf_counter()
    s = check_summary(frequency, recency, T)
    if not (s.frequency > 0).any():
        raise RepurchaseDataError(
            "no customer has a repeat purchase (every frequency is 0): the BG/NBD model cannot "
            "be fitted; summarise a longer period or more customers"
        )
    d = _Data(s)
    if init is None:  # λ's prior mean at the observed repeat rate
        init = BgNbdParams(1.0, float(s.T.sum() / s.frequency.sum()), 1.0, 1.0)
    theta0 = np.log([init.r, init.alpha, init.a, init.b])
    log_scale = np.log(d.scale)
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * 4
    bounds[1] = (log_scale - _LOG_BOUND, log_scale + _LOG_BOUND)
    res = _minimize(_objective, theta0, (d,), bounds, max_iterations)
    r, alpha, a, b = (float(v) for v in np.exp(res.x))
    info = FitInfo(
        log_likelihood=float(-res.fun * d.n),
        iterations=int(res.nit),
        converged=bool(res.success),
        n=d.n,
        seconds=time.perf_counter() - started,
        message=str(res.message),
    )
    return BgNbdParams(r, alpha, a, b, info)


def probability_alive(
    params: BgNbdParams, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """P(alive at T | x, t_x, T) = 1 / (1 + [x>0] a/(b+x−1) ((α+T)/(α+t_x))^(r+x)) (eq. 11);
    exactly 1 for x = 0, since dropout only follows a repeat purchase."""
    return expit(-_log_dead_odds(params, check_summary(frequency, recency, T)))


def _alive_expected_purchases(
    r: float, alpha: float, a: float, b: float, t: float, x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """E[Y(t) | alive, x, T] = (a+b+x−1)/(a−1) (1 − G), with
    G = ((α+T)/(α+T+t))^(r+x) ₂F₁(r+x, b+x; a+b+x−1; z), z = t/(α+T+t), evaluated through
    Euler's transformation G = (1−z)^(a−1) ₂F₁(a+b−1−r, a−1; a+b+x−1; z): its upper parameters
    do not grow with x, so it stays finite for heavy buyers over long horizons, where the
    printed form overflows."""
    log_1mz = np.log(alpha + T) - np.log(alpha + T + t)
    z = -np.expm1(log_1mz)
    G = np.exp((a - 1) * log_1mz) * hyp2f1(a + b - 1 - r, a - 1, a + b + x - 1, z)
    return (a + b + x - 1) / (a - 1) * (1 - G)


def _stepped_over(
    f: Callable[[float], np.ndarray], value: float, singular: float, h: float
) -> np.ndarray:
    """f(value), or, within h of `singular`, the line through f(singular ± h)."""
    if abs(value - singular) >= h:
        return f(value)
    low, high = f(singular - h), f(singular + h)
    return low + (high - low) * (value - singular + h) / (2 * h)


def _given_alive(p: BgNbdParams, t: float, x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """`_alive_expected_purchases` where eq. 10 is regular; stepped over its singular points:
    a = 1 (it divides by a − 1), r − a an integer (scipy's ₂F₁ fails near z = 1 when
    c − a − b = x + r − a + 1 is an integer) and a + b = 1 (c = 0 for x = 0). E is smooth in
    each parameter, so the line through ±h is exact to O(h²)."""

    def in_b(a: float, r: float) -> np.ndarray:
        return _stepped_over(
            lambda b: _alive_expected_purchases(r, p.alpha, a, b, t, x, T),
            p.b,
            1 - a,
            _NEAR_A_PLUS_B_ONE,
        )

    def in_r(a: float) -> np.ndarray:
        return _stepped_over(lambda r: in_b(a, r), p.r, a + round(p.r - a), _NEAR_INTEGER_R_MINUS_A)

    return _stepped_over(in_r, p.a, 1.0, _NEAR_A_ONE)


def expected_purchases(
    params: BgNbdParams, t: float, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """E[Y(t) | x, t_x, T]: expected repeat purchases in the next t (eq. 10), in T's unit:
    P(alive) × E[Y(t) | alive], the latter through `_given_alive`."""
    if not (np.isfinite(t) and t >= 0):
        raise RepurchaseDataError(f"the forecast horizon t must be a finite time ≥ 0; got {t!r}")
    s = check_summary(frequency, recency, T)
    alive = expit(-_log_dead_odds(params, s))
    return alive * _given_alive(params, float(t), s.frequency, s.T)


def time_to_next_purchase(
    params: BgNbdParams, frequency: ArrayLike, T: ArrayLike, quantile: float = 0.5
) -> np.ndarray:
    """The `quantile` of the time from T to the next purchase, given the customer is alive at T
    (the median by default): (α+T) ((1−q)^(−1/(r+x)) − 1), from the Lomax distribution in the
    module docstring. Recency does not enter: given alive, the past only informs λ."""
    if not 0 < quantile < 1:
        raise RepurchaseDataError(f"quantile must be in (0, 1); got {quantile!r}")
    s = check_summary(frequency, np.zeros_like(np.asarray(T, dtype=float)), T)
    return (params.alpha + s.T) * np.expm1(-np.log1p(-quantile) / (params.r + s.frequency))


def probability_purchase_within(
    params: BgNbdParams, w: float, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> np.ndarray:
    """P(at least one purchase in (T, T+w] | x, t_x, T) = P(alive) (1 − ((α+T)/(α+T+w))^(r+x))."""
    if not (np.isfinite(w) and w >= 0):
        raise RepurchaseDataError(f"the window w must be a finite time ≥ 0; got {w!r}")
    s = check_summary(frequency, recency, T)
    alive = expit(-_log_dead_odds(params, s))
    r_x = params.r + s.frequency
    return alive * -np.expm1(r_x * (np.log(params.alpha + s.T) - np.log(params.alpha + s.T + w)))


def _spend(
    frequency: ArrayLike, monetary_value: ArrayLike, positive: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Checked (x, m); `positive`: repeat customers' m must be > 0 (the likelihood needs it)."""
    x = np.atleast_1d(np.asarray(frequency, dtype=float))
    m = np.atleast_1d(np.asarray(monetary_value, dtype=float))
    if x.shape != m.shape or x.ndim != 1:
        raise RepurchaseDataError(f"frequency {x.shape} and monetary value {m.shape} differ")
    for bad, fix in (
        (~np.isfinite(x) | (x < 0) | (x != np.round(x)), "frequency must be a whole number ≥ 0"),
        (~np.isfinite(m) | (m < 0), "the mean order value must be a finite number ≥ 0"),
        (
            (x > 0) & (m <= 0) if positive else np.zeros(x.shape, bool),
            "the gamma-gamma likelihood needs positive order values: leave out repeat customers "
            "whose repeat orders are all free",
        ),
    ):
        if bad.any():
            i = int(np.argmax(bad))
            raise RepurchaseDataError(
                f"customer at index {i}: frequency {x[i]:g}, monetary value {m[i]:g}: {fix}"
            )
    return x, m


def gamma_gamma_log_likelihood(
    params: GammaGammaParams, frequency: ArrayLike, monetary_value: ArrayLike
) -> np.ndarray:
    """Each repeat customer's log density of their mean order value m over x orders:
    ln Γ(px+q) − ln Γ(px) − ln Γ(q) + q ln v + (px−1) ln m + px ln x − (px+q) ln(v + x m)."""
    x, m = _spend(frequency, monetary_value, positive=True)
    x, m = x[x > 0], m[x > 0]
    p, q, v = params.p, params.q, params.v
    return (
        gammaln(p * x + q)
        - gammaln(p * x)
        - gammaln(q)
        + q * np.log(v)
        + (p * x - 1) * np.log(m)
        + p * x * np.log(x)
        - (p * x + q) * np.log(v + x * m)
    )


def _gg_objective(
    theta: np.ndarray, x: np.ndarray, m: np.ndarray, log_m: np.ndarray
) -> tuple[float, np.ndarray]:
    """Mean negative gamma-gamma log-likelihood and its gradient in log-parameters."""
    p, q, v = np.exp(theta)
    px = p * x
    log_vxm = np.log(v + x * m)
    ll = gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v)
    ll += (px - 1) * log_m + px * np.log(x) - (px + q) * log_vxm
    psi = digamma(px + q)
    g_p = _dot(x, psi - digamma(px) + log_m + np.log(x) - log_vxm)
    g_q = (psi - digamma(q) + np.log(v) - log_vxm).sum()
    g_v = (q / v - (px + q) / (v + x * m)).sum()
    n = len(x)
    return -ll.sum() / n, -np.array([g_p * p, g_q * q, g_v * v]) / n


def fit_gamma_gamma(
    frequency: ArrayLike, monetary_value: ArrayLike, max_iterations: int = 1000
) -> GammaGammaParams:
    """Maximum-likelihood gamma-gamma parameters from the repeat customers (x > 0): x repeat
    orders and their mean value m each. Customers with x = 0 are ignored."""
    started = time.perf_counter()
    x, m = _spend(frequency, monetary_value, positive=True)
    x, m = x[x > 0], m[x > 0]
    if len(x) < 2:
        raise RepurchaseDataError("the gamma-gamma model needs at least 2 repeat customers")
    theta0 = np.log([1.0, 2.0, float(np.mean(m))])  # population mean p·v/(q−1) = mean m
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * 3
    res = _minimize(_gg_objective, theta0, (x, m, np.log(m)), bounds, max_iterations)
    p, q, v = (float(val) for val in np.exp(res.x))
    info = FitInfo(
        float(-res.fun * len(x)),
        int(res.nit),
        bool(res.success),
        len(x),
        time.perf_counter() - started,
        str(res.message),
    )
    return GammaGammaParams(p, q, v, info)


def expected_average_order_value(
    params: GammaGammaParams, frequency: ArrayLike, monetary_value: ArrayLike
) -> np.ndarray:
    """E[order value | x, m] = p (v + x m) / (p x + q − 1): the population mean p v / (q − 1)
    for x = 0, moving towards the customer's own mean m as x grows; inf where q ≤ 1 makes
    the population mean infinite."""
    x, m = _spend(frequency, monetary_value, positive=False)
    p, q, v = params.p, params.q, params.v
    denominator = p * x + q - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, p * (v + x * m) / denominator, np.inf)


def _summary_columns(path: Path, header: list[str]) -> dict[str, int]:
    """Which CSV column holds each summary field (case-insensitive; `x`, `t_x` accepted)."""
    lowered = [h.strip().lower() for h in header]
    found: dict[str, int] = {}
    for field, accepted in SUMMARY_COLUMNS.items():
        index = next((lowered.index(a.lower()) for a in accepted if a.lower() in lowered), None)
        if index is None:
            raise RepurchaseDataError(
                f"{path} line 1 (header): no column {' or '.join(repr(a) for a in accepted)} "
                f"for {field}; the header is {', '.join(header) or '(empty)'}; name the columns "
                "frequency, recency, T (or x, t_x, T)"
            )
        found[field] = index
    return found


def read_summary_csv(path: Path | str) -> Summary:
    """Customer summaries from a CSV with a header naming frequency (or x), recency (or t_x)
    and T, and optionally an id column (`id`, `customer_id`, else the first other column)."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = csv.reader(f)
            header = next(rows, [])
            columns = _summary_columns(path, header)
            others = [i for i in range(len(header)) if i not in columns.values()]
            lowered = [h.strip().lower() for h in header]
            id_col = next((lowered.index(n) for n in ("id", "customer_id") if n in lowered), None)
            id_col = id_col if id_col is not None else (others[0] if others else None)
            values: list[tuple[float, float, float]] = []
            lines: list[int] = []
            ids: list[str] = []
            for row in rows:
                if not row or not any(cell.strip() for cell in row):
                    continue
                values.append(_summary_row(path, rows.line_num, header, columns, row))
                lines.append(rows.line_num)
                ids.append(row[id_col].strip() if id_col is not None else str(len(ids) + 1))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RepurchaseDataError(
            f"cannot read {path}: {reason}; give a readable UTF-8 CSV file"
        ) from None
    if not values:
        raise RepurchaseDataError(f"{path} has no customer rows below its header; add some")
    x, t_x, age = np.array(values, dtype=float).T
    n_x, n_t_x, n_T = (header[columns[f]].strip() for f in SUMMARY_COLUMNS)
    s = check_summary(x, t_x, age, lambda i: f"{path} line {lines[i]}", (n_x, n_t_x, n_T))
    return Summary(s.frequency, s.recency, s.T, ids)


def _summary_row(
    path: Path, line: int, header: list[str], columns: dict[str, int], row: list[str]
) -> tuple[float, float, float]:
    """One CSV row's (frequency, recency, T) as numbers, or an error naming line and column."""
    if len(row) != len(header):
        raise RepurchaseDataError(
            f"{path} line {line}: {len(row)} fields where the header has {len(header)}; "
            "give every row one value per header column"
        )
    out = []
    for index in columns.values():
        text = row[index].strip()
        try:
            out.append(float(text))
        except ValueError:
            raise RepurchaseDataError(
                f"{path} line {line}, column {header[index].strip()}: {text!r} is not a number; "
                "frequency, recency and T must be numbers (repeat purchases, and times since "
                "the first purchase in one unit such as weeks)"
            ) from None
    return out[0], out[1], out[2]
