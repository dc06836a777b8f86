"""`journeyman evaluate ope` on a real warehouse: the agent's own policy evaluated on its logs
reproduces the logged propensities, a business-as-usual candidate gets an estimate with
intervals, and every way it cannot answer is one clear error (exit status 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from insights_world import SHADOW_AGENT

from journeyman.decisioning import candidate_evaluation as ce
from journeyman.decisioning.config import load_agents
from journeyman.orchestration.cli import main


@pytest.fixture
def world(insights_world, monkeypatch):
    insights_world.env(monkeypatch)
    return insights_world


def _run(*args: str):
    return CliRunner().invoke(main, ["evaluate", "ope", *args])


def test_the_agents_own_policy_reproduces_the_logged_propensities(world):
    agent = {a.name: a for a in load_agents(world.agents)}["winback"]
    logs = ce.load_logged(world.warehouse, agent, None)
    assert logs.n > 50 and set(logs.group) <= {"treatment", "business_as_usual", "random_control"}
    bau = ce.candidate_from_group(agent, "business_as_usual")
    probs = ce.probabilities(world.warehouse, agent, [agent, bau], logs)
    assert probs.mismatched == 0 and probs.extra == [[], []]
    rows = np.arange(logs.n)
    assert np.allclose(probs.logging.sum(axis=1), 1.0)
    assert (probs.logging[rows, logs.action] > 0).all()  # the mixture covers what was logged
    # the mixture is the groups' shares of the candidates' (the agent's own policies') answers
    shares = [1 - sum(b.share for b in agent.baselines), *(b.share for b in agent.baselines)]
    assert (probs.logging >= shares[0] * probs.candidates[0] - 1e-12).all()
    assert (probs.logging >= shares[1] * probs.candidates[1] - 1e-12).all()


def test_a_candidate_gets_every_estimator_with_its_interval_as_json(world):
    result = _run("--agent", "winback", "--candidate", "business_as_usual", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["candidate"] == "business_as_usual" and report["n"] > 50
    for name in ("ipw", "snipw", "dm", "dr", "logged"):
        est = report[name]
        assert est["low"] <= est["value"] <= est["high"], (name, est)
    assert set(report["logged_by_group"]) >= {"treatment"}


def test_a_candidate_file_with_an_unseen_message_is_warned_about(world, tmp_path):
    import yaml

    data = yaml.safe_load((world.agents / "winback.yml").read_text())
    data["dimensions"]["messages"].append(
        {"id": "brand_new", "email": {"subject": "New", "body": "Something new"}}
    )
    path = tmp_path / "winback.yml"
    path.write_text(yaml.safe_dump(data))
    result = _run("--agent", "winback", "--candidate", str(path), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["support_gap"] > 0
    assert any("never took" in w for w in report["warnings"])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--agent", "nobody", "--candidate", "treatment"], "unknown agent 'nobody'"),
        (["--agent", "winback", "--candidate", "challenger"], "has no challenger group"),
        (["--agent", SHADOW_AGENT, "--candidate", "treatment"], "no logged decisions"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(world, args, expected):
    result = _run(*args)
    assert result.exit_code == 2
    assert expected in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_missing_warehouse_is_one_line_and_exit_2(world, monkeypatch, tmp_path):
    monkeypatch.setenv("JOURNEYMAN_WAREHOUSE", str(tmp_path / "nowhere.duckdb"))
    result = _run("--agent", "winback", "--candidate", "treatment")
    assert result.exit_code == 2 and "no warehouse at" in result.output
