"""Learning policies over the linear posterior: Thompson sampling, LinUCB, ε-greedy.

All three score every (customer, action) with factored action features, so hundreds of joint
actions cost one matrix product, not one model each. Propensities are exact:

- `linear_ts` draws M parameter vectors from the posterior once per day and agent; each customer
  uses draw ⌊u·M⌋ of a deterministic uniform u. The policy's randomness is exactly that choice, so
  P(a | x) = (number of draws whose best allowed action is a) / M — computed, not estimated.
  Scores are float32 (ties go to the lower action index); customers are scored in groups that
  share an allowed set, on those actions only, so guardrail masks cost no masking pass; the
  chunks are scored on `settings.decide_threads()` threads (the same choices for any number).
- `lin_ucb` is deterministic given the day's statistics: propensity 1.
- `epsilon_greedy`: (1 − ε)·[a is the greedy action] + ε / |allowed|.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from journeyman.decisioning.action_features import ActionFeatures
from journeyman.decisioning.hashing import hash64
from journeyman.decisioning.learning import ArmStatistics, RewardPosterior
from journeyman.decisioning.policies.base import (
    Choice,
    DecisionContext,
    Policy,
    PolicyParamsError,
    pick_among,
)
from journeyman.decisioning.policies.hurdle import REVENUE_MODELS, fit_hurdle
from journeyman.decisioning.prior import PRIORS, fit_with_prior
from journeyman.decisioning.schema import AgentConfig
from journeyman.settings import decide_threads

_CHUNK = 20_000
_SCORE_ELEMENTS = 1 << 20  # float32 scores per Thompson chunk (4 MiB: stays in cache)
_MIN_ROWS = 256
_GROUP_MIN_ROWS = 128  # smaller allowed-set groups are scored together, with their mask
#: the action-feature families `personalise` may name besides the agent's tag keys
PERSONALISED_FAMILIES = ("send", "channel", "hour", "message", "subject")


class LinearPolicy(Policy):
    """Shared machinery: fit the posterior from warehouse statistics, then score.

    `revenue_model`: how statistics with an order split (a revenue goal learning from the
    outcome) are learned: `hurdle` (default; P(order) × order value, `policies.hurdle`) or
    `linear` (one linear model of the revenue). Other statistics always fit one linear model.
    """

    defaults: Mapping[str, Any] = {
        "ridge": 1.0,
        "prior": "empirical_bayes",
        "personalise": None,
        "revenue_model": "hurdle",
    }
    #: parameters added after policy versions were first recorded, left out of the version's
    #: digest at these values, so a policy that behaves as before keeps its version
    unversioned_defaults: Mapping[str, Any] = {"revenue_model": "hurdle"}
    learns = True

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        if self.params["prior"] not in PRIORS:
            raise ValueError(
                f"`prior` must be one of {', '.join(PRIORS)}; got {self.params['prior']!r}"
            )
        if self.params["revenue_model"] not in REVENUE_MODELS:
            raise ValueError(
                f"`revenue_model` must be one of {', '.join(REVENUE_MODELS)}; "
                f"got {self.params['revenue_model']!r}"
            )
        _check_personalise(self.params["personalise"])
        self.posterior: RewardPosterior | None = None
        self.phi: np.ndarray | None = None
        self.trained_on = "prior"
        self.prior_ridges: list[float] | None = None  # [λ₀, λ₁, λ₂, λ₃] of the last empirical fit
        # the hurdle's strengths per part (order, value, rest), each part's warm start
        self.hurdle_ridges: dict[str, list[float] | None] = {}

    def check_agent(self, agent: AgentConfig) -> None:
        """`personalise` names families of this agent's action features and, where the agent
        lists its features, only those (else the features are checked against the discovered
        ones at run time: `features.agent_features`)."""
        personalise = self.params["personalise"]
        if not personalise:
            return
        tags = sorted({k for m in agent.dimensions.messages for k in m.tags})
        families = [*PERSONALISED_FAMILIES, *tags]
        for name, features in personalise.items():
            if name not in families:
                raise PolicyParamsError(
                    "params.personalise", f"unknown family {name!r}; use some of {families}"
                )
            if agent.features is None or features == "all":
                continue
            unknown = [f for f in features if f not in agent.features]
            if unknown:
                raise PolicyParamsError(
                    f"params.personalise.{name}",
                    f"{unknown} are not in the agent's `features`; add them there or use some "
                    f"of {agent.features}",
                )

    def fit(self, stats: ArmStatistics, actions: ActionFeatures, action_ids: Sequence[str]) -> None:
        """Posterior from the agent's statistics (under the `prior` param: the hierarchical
        prior fitted by empirical Bayes, see decisioning.prior, or a fixed ridge); the version
        then names the data it saw. The prior strengths warm-start from the previous fit.
        Statistics with an order split learn through the hurdle (`revenue_model`), whose
        `prior_ridges` are its order model's."""
        ridge, prior = float(self.params["ridge"]), str(self.params["prior"])
        personalise = self.params["personalise"]
        if stats.ordered is not None and self.params["revenue_model"] == "hurdle":
            self.posterior, parts = fit_hurdle(
                stats, actions, action_ids, ridge, prior, self.hurdle_ridges, personalise
            )
            self.hurdle_ridges = {k: v or self.hurdle_ridges.get(k) for k, v in parts.items()}
            self.prior_ridges = parts["order"] or self.prior_ridges
        else:
            self.posterior, ridges = fit_with_prior(
                stats.without_orders(),
                actions,
                action_ids,
                ridge,
                prior,
                start=self.prior_ridges,
                personalise=personalise,
            )
            self.prior_ridges = ridges or self.prior_ridges
        self.phi = actions.matrix
        self.trained_on = f"n{stats.observations}-{stats.digest()}"

    @property
    def version(self) -> str:
        shown = {
            k: v
            for k, v in self.params.items()
            if k not in self.unversioned_defaults or v != self.unversioned_defaults[k]
        }
        digest = hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()
        return f"{self.name}@{digest[:8]}#{self.trained_on}"

    def scores(self, ctx: DecisionContext) -> np.ndarray:
        posterior, phi = self._ready(ctx)
        return posterior.expected(ctx.features, phi)

    def _ready(self, ctx: DecisionContext) -> tuple[RewardPosterior, np.ndarray]:
        if self.posterior is None or self.phi is None:
            raise RuntimeError(f"policy {self.name} was not fitted before choosing")
        if self.phi.shape[0] != ctx.actions.size:
            raise RuntimeError("action features do not match the action space")
        return self.posterior, self.phi


def _check_personalise(value: object) -> None:
    """`personalise`: None (every interaction) or {family: "all" | [customer features]}."""
    if value is None:
        return
    fix = "use a mapping like {send: all, channel: all, hour: [active_hour_cos, active_hour_sin]}"
    if not isinstance(value, Mapping):
        raise ValueError(f"`personalise` must be a mapping of action-feature families; {fix}")
    for name, features in value.items():
        listed = isinstance(features, list) and all(isinstance(f, str) for f in features)
        if features != "all" and not listed:
            raise ValueError(
                f"`personalise.{name}` must be `all` or a list of customer features; {fix}"
            )


def _argmax_allowed(scores: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    masked = np.where(allowed, scores, -np.inf)
    best = masked.argmax(axis=-1)
    return np.where(allowed.any(axis=-1), best, -1)


class LinearThompsonSampling(LinearPolicy):
    """Thompson sampling with M posterior draws per day (params: ridge, prior, personalise,
    exploration, draws). `exploration` scales the draws' spread around the posterior mean: 0.5
    (the default) samples a posterior of half the standard deviation — better than the exact
    one (1.0) on Hillstrom's real logs, as Chapelle & Li (2011) found on theirs, and in the
    sandbox (docs/learning-history.md)."""

    name = "linear_ts"
    defaults = {**LinearPolicy.defaults, "exploration": 0.5, "draws": 32}

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        self._draw_cache: tuple | None = None  # (key, posterior, Φ, stacked weights)

    @property
    def probability_grid(self) -> int:  # type: ignore[override]
        return int(self.params["draws"])  # a uniform u picks draw floor(u · draws)

    def _stacked_weights(self, ctx: DecisionContext) -> np.ndarray:
        """The day's M weight matrices as one float32 (K, d+1, M) block: [a, :, m] = W_m[:, a].

        The draws depend only on the seed key and the fitted state, so a day decided in many
        chunks (streaming) samples them once.
        """
        posterior, phi = self._ready(ctx)
        draws = int(self.params["draws"])
        exploration = float(self.params["exploration"])
        key = (ctx.seed_key, self.trained_on, draws, exploration)
        cached = self._draw_cache
        if cached is not None and cached[0] == key and cached[1] is posterior and cached[2] is phi:
            return cached[3]
        seed = int(hash64([f"{ctx.seed_key}#{self.trained_on}"], "linear_ts")[0])
        rng = np.random.default_rng(seed)
        weights = posterior.sample_weights(phi, draws, rng)  # (M, d+1, K)
        if exploration != 1.0:
            center = posterior.center_weights(phi)[None]
            weights = center + exploration * (weights - center)
        stacked = np.ascontiguousarray(weights.transpose(2, 1, 0), dtype=np.float32)
        self._draw_cache = (key, posterior, phi, stacked)
        return stacked

    def choose(self, ctx: DecisionContext, allowed: np.ndarray, u: np.ndarray) -> Choice:
        posterior, phi = self._ready(ctx)
        draws = int(self.params["draws"])
        stacked = self._stacked_weights(ctx)
        k = phi.shape[0]
        n = len(u)
        action = np.full(n, -1, dtype=np.int64)
        propensity = np.ones(n)
        draw = np.minimum((np.asarray(u) * draws).astype(np.int64), draws - 1)
        allowed = np.asarray(allowed, dtype=bool)
        tasks = []  # (weights, rows, allowed action indices or None = scored with the mask)
        for rows, actions in _mask_groups(allowed):
            if actions is not None and len(actions) == 0:
                continue  # nothing allowed: -1 with propensity 1
            weights = stacked if actions is None or len(actions) == k else stacked[actions]
            chunk = max(_MIN_ROWS, _SCORE_ELEMENTS // (weights.shape[0] * draws))
            for start in range(0, _count(rows, n), chunk):
                tasks.append((weights, _part(rows, start, chunk), actions))

        def score(part: list) -> None:
            buffer = np.empty(0, dtype=np.float32)
            for weights, idx, actions in part:
                xt = _standardized32(posterior, ctx.features[idx])
                mask = allowed[idx] if actions is None else None
                size = weights.shape[0] * len(xt) * draws
                if len(buffer) < size:  # one reused buffer: fresh ones per chunk cost page faults
                    buffer = np.empty(size, dtype=np.float32)
                out = buffer[:size].reshape(weights.shape[0], len(xt), draws)
                best, prop = _thompson_chunk(weights, xt, mask, draw[idx], out)
                action[idx] = best if actions is None else actions[best]
                propensity[idx] = prop

        _in_parallel(score, tasks, min(decide_threads(), len(tasks)))
        return Choice(action=action, propensity=propensity)


def _in_parallel(work: Callable[[list], None], tasks: list, threads: int) -> None:
    """Run `work` over the tasks in `threads` interleaved shares, one thread each.

    numpy releases the GIL in the matrix products and reductions, so threads scale; BLAS is held
    to one thread meanwhile (its own threads would compete with ours). Each task writes only its
    own customers' rows, so the result does not depend on the number of threads.
    """
    if threads <= 1:
        work(tasks)
        return
    blas = _blas_controller().limit(limits=1, user_api="blas")
    with blas, ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, [tasks[i::threads] for i in range(threads)]))


@functools.cache
def _blas_controller() -> ThreadpoolController:
    return ThreadpoolController()


def _count(rows: np.ndarray | None, n: int) -> int:
    return n if rows is None else len(rows)


def _part(rows: np.ndarray | None, start: int, size: int) -> slice | np.ndarray:
    return slice(start, start + size) if rows is None else rows[start : start + size]


def _mask_groups(allowed: np.ndarray) -> list[tuple[np.ndarray | None, np.ndarray | None]]:
    """Customers grouped by their allowed set: (rows, allowed action indices), rows None = all.

    Guardrails leave few distinct allowed sets, and scoring a group only on its allowed actions
    needs no masking and skips the blocked actions' work. Customers in sets shared by fewer than
    _GROUP_MIN_ROWS rows go together into one group scored with their mask (actions None).
    """
    n, k = allowed.shape
    if n == 0:
        return []
    if allowed.all():
        return [(None, np.arange(k))]
    packed = np.packbits(allowed, axis=1)
    if packed.shape[1] <= 8:
        wide = np.zeros((n, 8), dtype=np.uint8)
        wide[:, : packed.shape[1]] = packed
        keys = wide.view(np.uint64).reshape(-1)
    else:
        keys = np.unique(packed, axis=0, return_inverse=True)[1].reshape(-1)
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    ends = np.append(starts[1:], n)
    groups: list[tuple[np.ndarray | None, np.ndarray | None]] = []
    mixed = []
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        rows = order[start:end]
        if end - start >= _GROUP_MIN_ROWS:
            groups.append((rows, np.flatnonzero(allowed[rows[0]])))
        else:
            mixed.append(rows)
    if mixed:
        groups.append((np.sort(np.concatenate(mixed)), None))
    return groups


def _standardized32(posterior: RewardPosterior, x: np.ndarray) -> np.ndarray:
    """x̃' = [1, (x − mean) / scale] as float32 (computed in float64, then rounded)."""
    out = np.empty((len(x), len(posterior.mean) + 1), dtype=np.float32)
    out[:, 0] = 1.0
    np.divide(np.asarray(x, dtype=np.float64) - posterior.mean, posterior.scale, out=out[:, 1:])
    return out


def _first_argmax0(values: np.ndarray) -> np.ndarray:
    """argmax over axis 0 (first index on ties) of a (K, c) array, by fast outer-axis reductions
    (numpy's argmax along a short axis pays a per-row overhead)."""
    k = values.shape[0]
    rank = (k - np.arange(k, dtype=np.int32))[:, None]  # earlier index, larger rank
    top = np.equal(values, values.max(axis=0)) * rank
    return k - top.max(axis=0).astype(np.int64)


def _row_counts(flags: np.ndarray) -> np.ndarray:
    """Number of True per row of a bool (c, M) array (bit counts of the packed rows)."""
    if not hasattr(np, "bitwise_count"):  # numpy < 2
        return flags.sum(axis=1)
    packed = np.packbits(flags, axis=1)
    width = packed.shape[1]
    if width in (2, 4, 8):
        packed = packed.view(f"<u{width}")
    if packed.shape[1] == 1:
        return np.bitwise_count(packed.reshape(-1)).astype(np.int64)
    return np.bitwise_count(packed).sum(axis=1, dtype=np.int64)


def _thompson_chunk(
    stacked: np.ndarray,
    xt: np.ndarray,
    allowed: np.ndarray | None,
    draw: np.ndarray,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Choice and exact propensity for c customers under M draws, in O(K·c·M) float32 work.

    With S[a, i, m] the score of action a for customer i under draw m (−∞ where a is not
    allowed), draw m picks the first allowed argmax of S[:, i, m]. The customer's action a* is
    the pick of its own draw; its propensity is the share of draws that pick a*. Instead of an
    argmax per draw (slow along a short axis), a* is knocked out and one max over actions gives
    every draw's best rival: the draw picks a* iff S[a*] > rival, or on an exact tie iff no
    rival with a lower index ties — those rare ties are resolved one by one.
    """
    k, _, m_draws = stacked.shape
    c = len(xt)
    scores = np.matmul(xt[None], stacked, out=out)  # (K, c, M)
    rows = np.arange(c)
    any_allowed = None if allowed is None else allowed.any(axis=1)  # None: all allowed
    if allowed is not None and not allowed.all():
        blocked = np.flatnonzero(~allowed.T)  # rows of the (K·c, M) view
        scores.reshape(k * c, m_draws)[blocked] = -np.inf
    # (K, c), C-ordered (fancy indexing would give a Fortran-ordered, slow-to-reduce copy)
    own = np.take(scores.reshape(k, c * m_draws), rows * m_draws + draw, axis=1)
    best = _first_argmax0(own)
    if any_allowed is not None:
        best = np.where(any_allowed, best, -1)
    safe = np.maximum(best, 0)
    flat = scores.reshape(k * c, m_draws)
    mine_rows = safe * c + rows
    mine = flat[mine_rows]  # (c, M): S[a*, i, m]
    flat[mine_rows] = -np.inf
    rival = scores.max(axis=0)  # (c, M): best other allowed action per draw
    wins = _row_counts(mine > rival)
    ties = mine == rival
    if any_allowed is not None:
        ties &= any_allowed[:, None]
    if ties.any():
        flat[mine_rows] = mine
        tie_i, tie_m = np.nonzero(ties)
        first = scores[:, tie_i, tie_m].argmax(axis=0)
        np.add.at(wins, tie_i, first == best[tie_i])
    propensity = wins / m_draws
    if any_allowed is not None:
        propensity[~any_allowed] = 1.0
    return best, propensity


def _best_allowed(
    features: np.ndarray, allowed: np.ndarray, score: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Per customer, the allowed action with the highest score (-1 if none), in chunks."""
    best = np.empty(len(features), dtype=np.int64)
    for start in range(0, len(features), _CHUNK):
        sl = slice(start, start + _CHUNK)
        best[sl] = _argmax_allowed(score(features[sl]), allowed[sl])
    return best


class LinUCB(LinearPolicy):
    """Upper confidence bound: mean + α·sd (params: ridge, alpha). Deterministic."""

    name = "lin_ucb"
    defaults = {**LinearPolicy.defaults, "alpha": 1.0}

    def choose(self, ctx: DecisionContext, allowed: np.ndarray, u: np.ndarray) -> Choice:
        posterior, phi = self._ready(ctx)
        alpha = float(self.params["alpha"])

        def score(x: np.ndarray) -> np.ndarray:
            return posterior.expected(x, phi) + alpha * posterior.uncertainty(x, phi)

        action = _best_allowed(ctx.features, allowed, score)
        return Choice(action=action, propensity=np.ones(len(u)))


class EpsilonGreedy(LinearPolicy):
    """Greedy on the posterior mean, uniform over allowed actions with probability ε."""

    name = "epsilon_greedy"
    defaults = {**LinearPolicy.defaults, "epsilon": 0.1}

    def choose(self, ctx: DecisionContext, allowed: np.ndarray, u: np.ndarray) -> Choice:
        posterior, phi = self._ready(ctx)
        eps = float(self.params["epsilon"])
        greedy = _best_allowed(ctx.features, allowed, lambda x: posterior.expected(x, phi))
        explore = u < eps
        uniform = pick_among(allowed, np.ones(allowed.shape[1]), np.where(explore, u / eps, 0.0))
        action = np.where(explore, uniform, greedy)
        count = np.maximum(allowed.sum(axis=1), 1)
        propensity = (1 - eps) * (action == greedy) + eps / count
        return Choice(action=action, propensity=propensity)

    def probabilities(self, ctx: DecisionContext, allowed: np.ndarray) -> np.ndarray:
        posterior, phi = self._ready(ctx)
        eps = float(self.params["epsilon"])
        greedy = _best_allowed(ctx.features, allowed, lambda x: posterior.expected(x, phi))
        count = np.maximum(allowed.sum(axis=1, keepdims=True), 1)
        out = eps * allowed / count
        rows = np.flatnonzero(greedy >= 0)
        out[rows, greedy[rows]] += 1 - eps
        return out
