"""The BG/NBD repurchase model and the gamma-gamma spend model (decisioning/repurchase.py) and
`journeyman fit repurchase`."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from scipy.integrate import quad
from scipy.special import betaln, hyp2f1

from journeyman import settings
from journeyman.decisioning import repurchase as rp
from journeyman.orchestration.fit_command import fit

SHARED = settings.PROJECT_ROOT.parent / "shared"
CDNOW_SUMMARY = SHARED / "datasets" / "cdnow" / "cdnow_customers_summary.csv"
PAPER = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
PARAMS = rp.BgNbdParams(r=0.5, alpha=3.0, a=0.8, b=2.5)


def _lbeta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def test_log_likelihood_matches_the_papers_formula_by_hand():
    """Eq. 6 for one repeat customer and one without a repeat purchase, in plain lgamma."""
    r, alpha, a, b = PARAMS.r, PARAMS.alpha, PARAMS.a, PARAMS.b
    x, t_x, T = 2, 10.0, 20.0
    gamma_part = math.lgamma(r + x) - math.lgamma(r) + r * math.log(alpha)
    alive = math.exp(gamma_part + _lbeta(a, b + x) - _lbeta(a, b) - (r + x) * math.log(alpha + T))
    dead = math.exp(
        gamma_part + _lbeta(a + 1, b + x - 1) - _lbeta(a, b) - (r + x) * math.log(alpha + t_x)
    )
    never = r * math.log(alpha / (alpha + T))  # x = 0: (α / (α+T))^r
    ours = rp.bgnbd_log_likelihood(PARAMS, [x, 0], [t_x, 0.0], [T, T])
    assert ours == pytest.approx([math.log(alive + dead), never], rel=1e-12)
    data = rp._Data(rp.check_summary([x, 0], [t_x, 0.0], [T, T]))
    theta = np.log([r, alpha, a, b])
    assert rp._objective(theta, data)[0] == pytest.approx(-ours.mean(), rel=1e-12)


def _random_customers(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact BG/NBD draws: x = min(Poisson(λT) arrivals, the repeat purchase after which the
    customer drops out), t_x the x-th of the arrivals, uniform on (0, T]."""
    rng = np.random.default_rng(seed)
    T = rng.uniform(5, 40, n)
    arrivals = rng.poisson(rng.gamma(0.5, 1 / 3.0, n) * T)
    x = np.minimum(arrivals, rng.geometric(rng.beta(0.8, 2.5, n))).astype(float)
    t_x = np.zeros(n)
    t_x[x > 0] = T[x > 0] * rng.beta(x[x > 0], arrivals[x > 0] - x[x > 0] + 1)
    return x, t_x, T


@pytest.mark.parametrize(
    "point", [(0.5, 3.0, 0.8, 2.5), (0.243, 4.414, 0.793, 2.426), (3.0, 40.0, 2.5, 0.4)]
)
def test_analytic_gradient_matches_central_differences(point):
    data = rp._Data(rp.check_summary(*_random_customers(500, 1)))
    theta, h = np.log(point), 1e-5
    _, grad = rp._objective(theta, data)
    numeric = [
        (rp._objective(theta + h * e, data)[0] - rp._objective(theta - h * e, data)[0]) / (2 * h)
        for e in np.eye(4)
    ]
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_gamma_gamma_gradient_and_likelihood_by_hand():
    p, q, v, x, m = 6.0, 3.5, 15.0, 3.0, 40.0
    hand = (
        math.lgamma(p * x + q)
        - math.lgamma(p * x)
        - math.lgamma(q)
        + q * math.log(v)
        + (p * x - 1) * math.log(m)
        + p * x * math.log(x)
        - (p * x + q) * math.log(v + x * m)
    )
    ours = rp.gamma_gamma_log_likelihood(rp.GammaGammaParams(p, q, v), [x, 0.0], [m, 0.0])
    assert ours == pytest.approx([hand], rel=1e-12)  # x = 0 customers are left out
    rng = np.random.default_rng(2)
    xs = rng.integers(1, 8, 300).astype(float)
    ms = rng.gamma(5.0, 8.0, 300)
    theta, h = np.log([p, q, v]), 1e-5
    args = (xs, ms, np.log(ms))
    _, grad = rp._gg_objective(theta, *args)
    numeric = [
        (rp._gg_objective(theta + h * e, *args)[0] - rp._gg_objective(theta - h * e, *args)[0])
        / (2 * h)
        for e in np.eye(3)
    ]
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_predictions_are_monotone_as_the_theory_says():
    p = rp.BgNbdParams(**PAPER)
    # P(alive) is 1 without a repeat purchase, and increases with recency for x ≥ 1
    assert rp.probability_alive(p, [0, 0], [0.0, 0.0], [5.0, 38.0]) == pytest.approx([1, 1])
    for x in (1, 3, 10):
        alive = rp.probability_alive(p, np.full(39, x), np.arange(39.0), np.full(39, 38.86))
        assert (np.diff(alive) > 0).all() and (alive < 1).all()
    # a customer who just bought: more past purchases, more expected future purchases
    x = np.arange(0, 30.0)
    recent = rp.expected_purchases(p, 39.0, x, np.where(x > 0, 38.0, 0.0), np.full(30, 38.0))
    assert (np.diff(recent) > 0).all()
    # at every recency: increasing in recency; and in frequency while recency is high, whereas a
    # frequent buyer long silent is probably gone (the iso-value curves of "RFM and CLV")
    for x in (1.0, 5.0):
        ey = rp.expected_purchases(p, 39.0, np.full(39, x), np.arange(39.0), np.full(39, 38.86))
        assert (np.diff(ey) > 0).all()
    silent = rp.expected_purchases(p, 39.0, [1.0, 10.0], [2.0, 2.0], [38.86, 38.86])
    assert silent[1] < silent[0]
    # longer horizons, more purchases
    assert (
        np.diff([rp.expected_purchases(p, t, 2, 30.0, 38.0)[0] for t in (1, 10, 100)]) > 0
    ).all()


def _expected_by_quadrature(p: rp.BgNbdParams, t: float, x: int, t_x: float, T: float) -> float:
    """E[Y(t) | data] = P(alive) E[(1 − ((α+T)/(α+T+πt))^(r+x)) / π], π ~ Beta(a, b+x): the
    purchases of an alive customer integrated over λ in closed form and over π numerically."""

    def integrand(u: float) -> float:  # π = eᵘ
        pi = math.exp(u)
        log_weight = (p.a - 1) * u + (p.b + x - 1) * math.log1p(-pi) - betaln(p.a, p.b + x)
        ratio = -math.log1p(pi * t / (p.alpha + T))
        return math.exp(log_weight) * -math.expm1((p.r + x) * ratio)

    low = -30 - 40 / p.a  # the integrand decays like e^(a u) as u → −∞
    points = [low / 2, low / 4, -10, -3]
    value, _ = quad(integrand, low, 0, limit=400, epsabs=0, epsrel=1e-11, points=points)
    return float(rp.probability_alive(p, x, t_x, T)[0]) * value


@pytest.mark.parametrize(
    "params",
    [
        rp.BgNbdParams(**PAPER),
        rp.BgNbdParams(2.0, 1.0, 3.5, 0.4),
        # eq. 10's singular points, stepped over: a = 1, r − a an integer, a + b = 1
        rp.BgNbdParams(0.243, 4.414, 1 + 3e-6, 2.426),
        rp.BgNbdParams(0.5, 3.0, 2.5, 1.5),
        rp.BgNbdParams(1.0, 3.0, 1.0, 2.0),
        rp.BgNbdParams(0.3, 2.0, 0.4, 0.6),
    ],
)
def test_expected_purchases_match_an_independent_integral(params):
    cases = [(39, 2, 30.43, 38.86), (39, 0, 0.0, 38.86), (1000, 50, 38, 39), (0.5, 3, 1, 39)]
    for t, x, t_x, T in cases:
        ours = rp.expected_purchases(params, t, x, t_x, T)[0]
        assert ours == pytest.approx(_expected_by_quadrature(params, t, x, t_x, T), rel=1e-7)


def test_expected_purchases_stay_finite_where_the_direct_hypergeometric_fails():
    """Eq. 10 as printed, ₂F₁(r+x, b+x; a+b+x−1; z), overflows for heavy buyers over long
    horizons; the Euler-transformed form stays finite and tends to its limit, E[1/π] for an
    alive customer: (a+b+x−1)/(a−1) when a > 1."""
    p = rp.BgNbdParams(0.7, 3.0, 2.3, 1.5)
    x, T = np.array([200.0, 500.0]), np.array([78.0, 78.0])
    z = 1e7 / (p.alpha + T + 1e7)
    with np.errstate(all="ignore"):
        direct = hyp2f1(p.r + x, p.b + x, p.a + p.b + x - 1, z)
    assert not np.isfinite(direct).all()
    ey = rp.expected_purchases(p, 1e7, x, T, T)
    limit = (p.a + p.b + x - 1) / (p.a - 1) * rp.probability_alive(p, x, T, T)
    np.testing.assert_allclose(ey, limit, rtol=1e-3)
    small = rp.expected_purchases(p, 39.0, 3, 30.0, 38.0)[0]  # where both forms work
    zs = 39.0 / (p.alpha + 38.0 + 39.0)
    g = (1 - zs) ** (p.r + 3) * hyp2f1(p.r + 3, p.b + 3, p.a + p.b + 2, zs)
    printed = (p.a + p.b + 2) / (p.a - 1) * (1 - g) * rp.probability_alive(p, 3, 30.0, 38.0)[0]
    assert small == pytest.approx(printed, rel=1e-10)


def test_time_to_next_purchase_is_the_lomax_quantile():
    p = rp.BgNbdParams(**PAPER)
    x, T = np.array([0.0, 2.0, 10.0]), np.array([38.0, 38.0, 38.0])
    median = rp.time_to_next_purchase(p, x, T)
    survival = ((p.alpha + T) / (p.alpha + T + median)) ** (p.r + x)
    np.testing.assert_allclose(survival, 0.5, rtol=1e-12)
    assert (np.diff(median) < 0).all()  # more purchases, sooner
    alive = rp.probability_alive(p, x, T, T)
    within = rp.probability_purchase_within(p, 1e40, x, T, T)
    np.testing.assert_allclose(within, alive, rtol=1e-6)  # eventually, iff alive


def test_gamma_gamma_recovers_simulated_parameters():
    rng = np.random.default_rng(3)
    p, q, v, n = 6.0, 4.0, 15.0, 20_000
    nu = rng.gamma(q, 1 / v, n)
    x = rng.integers(1, 10, n).astype(float)
    mean_spend = rng.gamma(p * x, 1 / (nu * x))  # the mean of x Gamma(p, ν) order values
    fitted = rp.fit_gamma_gamma(x, mean_spend)
    assert fitted.fit is not None and fitted.fit.converged and fitted.fit.n == n
    assert (fitted.p, fitted.q, fitted.v) == pytest.approx((p, q, v), rel=0.15)
    at_truth = rp.gamma_gamma_log_likelihood(rp.GammaGammaParams(p, q, v), x, mean_spend).sum()
    assert fitted.fit.log_likelihood >= at_truth
    aov = rp.expected_average_order_value(fitted, [0.0, 1.0, 100.0], [0.0, 50.0, 50.0])
    assert aov[0] == pytest.approx(fitted.p * fitted.v / (fitted.q - 1))
    assert aov[0] < aov[1] < aov[2] < 50.0  # pulled from the population mean towards their own
    with pytest.raises(rp.RepurchaseDataError, match="positive order values"):
        rp.fit_gamma_gamma([1.0, 2.0, 1.0], [10.0, 0.0, 5.0])


def test_fit_is_in_the_data_time_unit_and_rejects_bad_summaries():
    x, t_x, T = _random_customers(2000, 4)
    weeks = rp.fit_bgnbd(x, t_x, T)
    days = rp.fit_bgnbd(x, t_x * 7, T * 7)
    assert days.alpha == pytest.approx(7 * weeks.alpha, rel=1e-4)
    assert (days.r, days.a, days.b) == pytest.approx((weeks.r, weeks.a, weeks.b), rel=1e-4)
    with pytest.raises(rp.RepurchaseDataError, match="index 1: frequency 1, recency 9"):
        rp.fit_bgnbd([0, 1], [0, 9], [5, 5])
    with pytest.raises(rp.RepurchaseDataError, match="no customer has a repeat purchase"):
        rp.fit_bgnbd([0, 0], [0, 0], [5, 5])


@pytest.mark.skipif(
    not SHARED.exists(),
    reason="the shared real data sets (../shared/datasets) are not present in this checkout",
)
def test_cdnow_fit_reproduces_the_paper():
    """Fader, Hardie & Lee (2005), table on the 2,357-customer CDNOW sample."""
    s = rp.read_summary_csv(CDNOW_SUMMARY)
    fitted = rp.fit_bgnbd(s.frequency, s.recency, s.T)
    assert fitted.fit is not None and fitted.fit.converged and fitted.fit.n == 2357
    for name, value in PAPER.items():
        assert getattr(fitted, name) == pytest.approx(value, rel=0.01), name
    assert fitted.fit.log_likelihood == pytest.approx(-9582.4, rel=0.01)
    assert abs(fitted.fit.log_likelihood + 9582.4) < 0.1


def _run(*args: str):
    return CliRunner().invoke(fit, ["repurchase", *args])


def test_cli_fits_a_good_file_and_prints_json(tmp_path):
    x, t_x, T = _random_customers(300, 5)
    rows = zip(x.tolist(), t_x.tolist(), T.tolist(), strict=True)
    lines = ["customer,x,t_x,T"] + [f"c{i},{a!r},{b!r},{c!r}" for i, (a, b, c) in enumerate(rows)]
    path = tmp_path / "summary.csv"
    path.write_text("\n".join(lines) + "\n")
    result = _run("--summary", str(path), "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output.strip().splitlines()[-1])
    assert {"r", "alpha", "a", "b", "log_likelihood", "n", "seconds"} <= payload.keys()
    assert payload["n"] == 300
    expected = rp.fit_bgnbd(x, t_x, T)
    assert payload["r"] == pytest.approx(expected.r, rel=1e-9)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("frequency,recency,T\n1,2,10\n2,abc,10\n", "line 3, column recency: 'abc' is not a"),
        ("frequency,recency,T\n1,2,10\n\n1,12,10\n", "line 4: frequency 1, recency 12, T 10"),
        ("frequency,recency,T\n-1,0,10\n", "line 2: frequency is -1"),
        ("frequency,recency,T\n1.5,2,10\n", "frequency must be a whole number"),
        ("frequency,recency\n1,2\n", "line 1 (header): no column 'T' for T"),
        ("frequency,recency,T\n1,2\n", "line 2: 2 fields where the header has 3"),
    ],
)
def test_cli_bad_input_is_one_error_line(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    result = _run("--summary", str(path))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert str(path) in lines[0] and message in lines[0], lines[0]
    assert "Traceback" not in result.output


def test_cli_missing_file(tmp_path):
    result = _run("--summary", str(tmp_path / "absent.csv"))
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: --summary {tmp_path / 'absent.csv'}: not found; give the path of a customer "
        "summary CSV file"
    ]
