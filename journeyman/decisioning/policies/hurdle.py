"""A revenue goal's reward as orders × order value: the hurdle model.

Revenue is mostly zero with rare large orders. One linear model of the revenue itself learns,
per action, a mean whose noise is the order values' (on Hillstrom, sd $18 per men's e-mail
against action differences of $0.35), so Thompson sampling follows lucky large orders. The
hurdle splits the learning reward r along c = 1[the decision led to an order]:

    E[r | x, a] = P(c = 1 | x, a) · E[r | c = 1, a] + E[r · (1 − c) | x, a]

exactly (the last term is the penalties of decisions without an order; zero without penalties).
Each part has its own posterior, under the policy's prior:

- **orders**: P(order) linear in x̃' ⊗ φ(a) (`personalise` applies), fitted on c over every
  decision. Where the actions are learned apart (the prior does not pool their effects: fewer
  than eight, or `prior: fixed`), each action's order rate is treated as a binomial rate under
  Jeffreys' prior Beta(½, ½): half an order in one pseudo-decision at the average customer, so
  an action without an order yet is not taken for one that never sells, and weighted least
  squares with each action's decisions weighing 1 / p̃ₐ(1 − p̃ₐ), the Bernoulli variance at
  that prior's posterior mean p̃ₐ = (kₐ + ½) / (nₐ + 1) (kₐ orders in nₐ decisions), relative
  to the pooled rate's: a rare event's variance grows with its rate, where one residual
  variance for all actions overstates how well a low rate is known and understates a high
  one. Where the action effects are pooled (most agents: their factored actions have dozens
  of action features), the pooled prior shares what the actions have taught instead: half an
  order for each of hundreds of sparse actions would swamp the real ones, and their raw rates
  would misstate their variance;
- **order value**: E[r | order] linear in φ(a) only, fitted on the decisions with an order,
  whose action effects the evidence always pools (under the default empirical-Bayes prior,
  however few actions there are).
  Orders are a few per cent of decisions and what a message changes is mostly whether an order
  comes, not its value: when the values do not differ beyond their noise they are pooled into
  one, which multiplies every action alike, and the choice rests on P(order), learned from every
  decision. No customer feature enters it: slopes fitted on a few hundred heavy-tailed values
  cost more than they add (Hillstrom, docs/evaluation.md);
- **the rest**: E[r·(1 − c)] over every decision, as the linear model, when some decision
  without an order has a non-zero reward (penalties).

All three are linear in x̃', so the expected reward is one weight matrix per action,
W = Θ_c Φᵀ · diag(v) + Θ_e Φᵀ, and a Thompson draw W_m combines independent draws of the three:
every scoring path of the linear policies (batched draws, exact propensities, LinUCB,
ε-greedy) applies unchanged. The statistics are `ArmStatistics.ordered`: the dbt model
`arm_statistics_daily` keeps the decisions with an order in rows of their own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from journeyman.decisioning.action_features import ActionFeatures
from journeyman.decisioning.learning import ArmStatistics, LinearPosterior
from journeyman.decisioning.prior import Personalise, fit_with_prior, pools_action_effects

REVENUE_MODELS = ("hurdle", "linear")
JEFFREYS_ORDERS = 0.5  # Beta(½, ½): half an order in one pseudo-decision per action
VALUE_MIN_POOLED = 1  # the order value's action effects are pooled however few they are
_REST_TOLERANCE = 1e-9  # Σr² without an order below this share of Σr²: no such rewards


@dataclass(frozen=True)
class HurdlePosterior:
    """The three posteriors of a revenue goal (see the module docstring); expected reward of
    action a for x: x̃'ᵀ (Θ_c φ(a) · v(a) + Θ_e φ(a)), x̃' standardized as the order model's
    (whose statistics may be weighted: the rest's weights are carried over)."""

    order: LinearPosterior  # P(order | x, a), over x̃' ⊗ φ(a)
    value: LinearPosterior  # E[r | order, a], over φ(a): no customer features
    rest: LinearPosterior | None  # E[r·(1 − order) | x, a]; None: no such rewards

    @property
    def mean(self) -> np.ndarray:
        return self.order.mean

    @property
    def scale(self) -> np.ndarray:
        return self.order.scale

    @property
    def observations(self) -> int:
        return self.order.observations

    def standardize(self, x: np.ndarray) -> np.ndarray:
        """x̃' = [1, (x − mean) / scale], as the order model standardizes."""
        return self.order.standardize(x)

    def order_values(self, phi: np.ndarray) -> np.ndarray:
        """(K,) posterior-mean value of an order per action."""
        return self.value.center_weights(phi)[0]

    def center_weights(self, phi: np.ndarray) -> np.ndarray:
        """(d+1, K) the posterior-mean weights: Θ_c Φᵀ · diag(v) (+ Θ_e Φᵀ)."""
        weights = self.order.center_weights(phi) * self.order_values(phi)[None, :]
        if self.rest is not None:
            weights = weights + self._restandardize() @ self.rest.center_weights(phi)
        return weights

    def expected(self, x: np.ndarray, phi: np.ndarray) -> np.ndarray:
        """(n, K) expected rewards: P(order) × the value of an order (+ the rest)."""
        return self.standardize(x) @ self.center_weights(phi)

    def sample_weights(self, phi: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
        """(draws, d+1, K) weights of independent draws of the order model, the order value
        (and the rest), in that order from `rng`."""
        orders = self.order.sample_weights(phi, draws, rng)  # (M, d+1, K)
        values = self.value.sample_weights(phi, draws, rng)  # (M, 1, K)
        weights = orders * values
        if self.rest is not None:
            rest = self.rest.sample_weights(phi, draws, rng)
            weights = weights + np.matmul(self._restandardize()[None], rest)
        return weights

    def uncertainty(self, x: np.ndarray, phi: np.ndarray) -> np.ndarray:
        """(n, K) posterior sd of the expected reward: for independent p and v,
        Var(p·v) = v̄²·Var p + p̄²·Var v + Var p·Var v (plus the rest's variance)."""
        p, sd_p = self.order.expected(x, phi), self.order.uncertainty(x, phi)
        v = self.order_values(phi)[None, :]
        sd_v = self.value.uncertainty(np.zeros((len(x), 0)), phi)
        var = (v * sd_p) ** 2 + (p * sd_v) ** 2 + (sd_p * sd_v) ** 2
        if self.rest is not None:
            var = var + self.rest.uncertainty(x, phi) ** 2
        return np.sqrt(var)

    def _restandardize(self) -> np.ndarray:
        """(d+1, d+1) Mᵀ with the rest's x̃'_e = M x̃'_c: its weights W_e act on the order
        model's standardized features as Mᵀ W_e (the two standardize differently: the order
        model's statistics are weighted)."""
        assert self.rest is not None
        source, target = self.order, self.rest
        d1 = len(source.mean) + 1
        m = np.zeros((d1, d1))
        m[0, 0] = 1.0
        m[1:, 0] = (source.mean - target.mean) / target.scale
        m[1:, 1:] = np.diag(source.scale / target.scale)
        return m.T


def order_weights(orders: ArmStatistics) -> np.ndarray:
    """Per action, 1 / p̃(1 − p̃) at its Jeffreys-smoothed order rate p̃ = (k + ½) / (n + 1),
    relative to the pooled rate's (k orders among n decisions: Σc², n of the order indicator)."""
    k, n = orders.rr, orders.n
    rate = (k + 0.5) / (n + 1.0)
    pooled = (k.sum() + 0.5) / (n.sum() + 1.0)
    return pooled * (1.0 - pooled) / (rate * (1.0 - rate))


def with_jeffreys_prior(orders: ArmStatistics) -> ArmStatistics:
    """The order indicator's statistics plus, per action, one pseudo-decision at the mean
    customer (x̄ of all the decisions) with half an order: Jeffreys' Beta(½, ½) prior on each
    action's order rate."""
    total = float(orders.n.sum())
    xbar = np.zeros(orders.xx.shape[1])
    xbar[0] = 1.0
    if total > 0:
        xbar = orders.xx.sum(axis=0)[0] / total  # [1, x̄]
    return ArmStatistics(
        orders.feature_names,
        orders.action_ids,
        orders.n + 1.0,
        orders.xx + np.outer(xbar, xbar)[None],
        orders.xr + JEFFREYS_ORDERS * xbar[None],
        orders.rr + JEFFREYS_ORDERS,
    )


def fit_hurdle(
    stats: ArmStatistics,
    actions: ActionFeatures,
    action_ids: Sequence[str],
    ridge: float = 1.0,
    prior: str = "empirical_bayes",
    starts: Mapping[str, Sequence[float] | None] | None = None,
    personalise: Personalise | None = None,
) -> tuple[HurdlePosterior, dict[str, list[float] | None]]:
    """The hurdle posterior of statistics with an order split (`stats.ordered`), each part under
    `prior` (its strengths warm-started from `starts[part]`); returns it and the strengths
    fitted per part (`order`, `value`, `rest`; None where the prior has none)."""
    starts = starts or {}
    orders = stats.order_indicator()
    if prior != "empirical_bayes" or not pools_action_effects(actions):
        # actions learned apart: each action's order rate a binomial under Jeffreys' prior
        orders = with_jeffreys_prior(orders).weighted(order_weights(orders))
    order, order_ridges = fit_with_prior(
        orders,
        actions,
        action_ids,
        ridge,
        prior,
        starts.get("order"),
        personalise,
    )
    value, value_ridges = fit_with_prior(
        stats.order_values().select([]),
        actions,
        action_ids,
        ridge,
        prior,
        starts.get("value"),
        min_pooled=VALUE_MIN_POOLED,
    )
    rest, rest_ridges = None, None
    others = stats.without_order_rewards()
    if float(others.rr.sum()) > _REST_TOLERANCE * max(float(stats.rr.sum()), 1.0):
        rest, rest_ridges = fit_with_prior(
            others, actions, action_ids, ridge, prior, starts.get("rest"), personalise
        )
    ridges = {"order": order_ridges, "value": value_ridges, "rest": rest_ridges}
    return HurdlePosterior(order, value, rest), ridges
