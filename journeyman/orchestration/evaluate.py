"""`journeyman evaluate …`: judge policies on real logged data before they touch customers."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from journeyman import settings
from journeyman.decisioning.candidate_evaluation import (
    CandidateEvaluationError,
    CandidateReport,
    candidate_from_group,
    evaluate_candidate,
)
from journeyman.decisioning.config import AgentConfig, AgentConfigError, load_agent, load_agents
from journeyman.decisioning.replay import (
    DEFAULT_BATCH_SIZE,
    ReplayError,
    build_replay_policy,
    load_logs,
    parse_param,
    replay,
)
from journeyman.warehouse import Warehouse, WarehouseError


@click.group()
def evaluate() -> None:
    """Offline evaluation of policies on logged data."""


def _propensity(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not 0 < value <= 1:
        raise click.BadParameter(f"must be in (0, 1], got {value:g}")
    return value


@evaluate.command("replay")
@click.option(
    "--logs",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV of logged events (header row), one row per decision.",
)
@click.option("--action-column", required=True, help="Column holding the logged action.")
@click.option("--reward-column", required=True, help="Numeric column holding the reward.")
@click.option(
    "--propensity",
    required=True,
    type=float,
    callback=_propensity,
    help="Probability with which the uniformly random logger chose each action, in (0, 1].",
)
@click.option(
    "--features",
    required=True,
    help="Comma-separated context columns; numeric ones as-is, others one-hot encoded.",
)
@click.option(
    "--agent-policy",
    default="linear_ts",
    show_default=True,
    help="Registered policy name (linear_ts, lin_ucb, epsilon_greedy, uniform_random, …).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=DEFAULT_BATCH_SIZE,
    show_default=True,
    help="Logged events per learning batch (one 'day'); the policy is refitted between batches.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Stream order and draws.")
@click.option(
    "--policy-param",
    "policy_params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a policy parameter (repeatable), e.g. exploration=1 prior=fixed.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def replay_command(
    logs: Path,
    action_column: str,
    reward_column: str,
    propensity: float,
    features: str,
    agent_policy: str,
    batch_size: int,
    seed: int,
    policy_params: tuple[str, ...],
    as_json: bool,
) -> None:
    """Replay a policy through uniformly-random logged data (Li et al., 2011): events streamed
    in a seeded random order, the policy chooses from each context, only events whose logged
    action equals the choice count and teach it, refitted every --batch-size events. Reports
    the policy's mean reward over matched events (exploration included) with a 95 % interval,
    next to every static action's value on the same data."""
    try:
        params = dict(parse_param(p) for p in policy_params)
    except ReplayError as exc:
        raise click.BadParameter(str(exc), param_hint="--policy-param") from None
    try:
        build_replay_policy(agent_policy, params)
    except ReplayError as exc:
        hint = "--policy-param" if params and "unknown policy" not in str(exc) else "--agent-policy"
        raise click.BadParameter(str(exc), param_hint=hint) from None
    try:
        data = load_logs(logs, action_column, reward_column, features.split(","))
        result = replay(data, agent_policy, propensity, batch_size, seed, params)
    except ReplayError as exc:
        raise click.ClickException(str(exc)) from None
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(result.to_json()))
        return
    best = result.best_static
    width = max(len(a) for a in [*result.static, result.policy]) + 2
    click.echo(
        f"Replay of {result.policy} on {logs.name}: {result.events} logged events, "
        f"{result.matched_events} matched, {result.batches} batches of {result.batch_size}, "
        f"seed {result.seed}"
    )
    click.echo(f"{'':{width}}  {'value':>10}  {'95 % interval':>23}  {'events':>7}")
    v = result.value
    click.echo(
        f"{result.policy:{width}}  {v.value:10.5f}  [{v.low:10.5f}, {v.high:10.5f}]  {v.n:7d}"
    )
    for action, e in result.static.items():
        mark = " (best static)" if action == best else ""
        click.echo(
            f"{action:{width}}  {e.value:10.5f}  [{e.low:10.5f}, {e.high:10.5f}]  {e.n:7d}{mark}"
        )
    ratio = result.to_json()["ratio_vs_best_static"]
    if ratio is not None:
        click.echo(f"policy / best static ({best}): {ratio:.3f}")
    shares = ", ".join(f"{a} {s:.1%}" for a, s in result.chosen_share.items())
    click.echo(f"policy's choices: {shares}; {result.seconds:.1f} s")


@evaluate.command("ope")
@click.option("--agent", "agent_name", required=True, help="The agent whose logs are evaluated.")
@click.option(
    "--candidate",
    required=True,
    help="An agent file (FILE.yml) whose policy is evaluated, or one of the agent's own groups "
    "(treatment, business_as_usual, random_control).",
)
@click.option(
    "--policy-param",
    "policy_params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a parameter of the candidate's policy (repeatable), e.g. exploration=1.",
)
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="Only decisions from this day.")
@click.option("--resamples", type=click.IntRange(min=50), default=500, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def ope_command(
    agent_name: str,
    candidate: str,
    policy_params: tuple[str, ...],
    since: datetime | None,
    resamples: int,
    seed: int,
    as_json: bool,
) -> None:
    """What a candidate policy would have earned per decision on the agent's logged decisions
    (IPW, self-normalised IPW, direct method, doubly robust; 95 % bootstrap intervals), next to
    what the logged policies earned. See docs/evaluation.md."""
    from journeyman.orchestration.console import fail

    try:
        agent, cand, name = _ope_inputs(agent_name, candidate, policy_params)
        warehouse = _existing_warehouse()
        report = evaluate_candidate(
            warehouse,
            agent,
            cand,
            name,
            since.date() if since else None,
            resamples=resamples,
            seed=seed,
        )
    except (CandidateEvaluationError, AgentConfigError, ReplayError, WarehouseError) as exc:
        fail(str(exc))
    for warning in report.estimate.warnings:
        click.echo(f"warning: {warning}", err=True)
    _print_ope(report)
    if as_json:
        click.echo(json.dumps(report.to_json()))


def _ope_inputs(
    agent_name: str, candidate: str, policy_params: tuple[str, ...]
) -> tuple[AgentConfig, AgentConfig, str]:
    """The logged agent, the candidate agent (with parameter overrides) and its display name."""
    agents = {a.name: a for a in load_agents(settings.agents_dir())}
    if agent_name not in agents:
        raise CandidateEvaluationError(
            f"unknown agent {agent_name!r}; the agents are {', '.join(sorted(agents))}"
        )
    agent = agents[agent_name]
    path = Path(candidate)
    if candidate.endswith((".yml", ".yaml")) or path.exists():
        cand = load_agent(path)
    else:
        cand = candidate_from_group(agent, candidate)
    if policy_params:
        params = {**cand.policy.params, **dict(parse_param(p) for p in policy_params)}
        spec = cand.policy.model_copy(update={"params": params})
        cand = cand.model_copy(update={"policy": spec})
        suffix = " " + " ".join(policy_params)
    else:
        suffix = ""
    return agent, cand, f"{candidate}{suffix}"


def _existing_warehouse() -> Warehouse:
    return Warehouse.configured(
        f"set {settings.WAREHOUSE_ENV} to your warehouse file or URL, or run `journeyman demo` "
        "first"
    )


def _print_ope(report: CandidateReport) -> None:
    e = report.estimate
    click.echo(
        f"Off-policy evaluation of {report.candidate} on agent {report.agent}'s logs: "
        f"{e.n} decisions over {report.days} day(s), effective sample size "
        f"{e.effective_sample_size:.0f}, support gap {e.support_gap:.1%}"
    )
    click.echo(f"{'':10}  {'value':>12}  {'95 % interval':>27}")
    rows = [("logged", e.logged), *e.estimates.items()]
    for label, iv in rows:
        click.echo(f"{label:10}  {iv.value:12.5f}  [{iv.low:12.5f}, {iv.high:12.5f}]")
    groups = ", ".join(f"{g} {v:.5f}" for g, v in report.logged_by_group.items())
    click.echo(f"logged reward per decision by group: {groups}")
