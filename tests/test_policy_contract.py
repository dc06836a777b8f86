"""The policy contract: every registered policy's parameters are checked at load, fitting is a
method of every policy (so deciding and the replay need no special cases), and the agent
schema, the policies and the loader import each other in no circle."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from journeyman import settings
from journeyman.decisioning.config import AgentConfigError, load_agent
from journeyman.decisioning.decide import AgentDecider, contact_history, decide_batch
from journeyman.decisioning.learning import ArmStatistics
from journeyman.decisioning.policies import REGISTRY, Choice, Policy
from tests.test_decisioning import DAY, _agent_dict, _write, customers

PACKAGE = settings.PROJECT_ROOT / "journeyman"


@pytest.mark.parametrize("name", sorted(REGISTRY))
@pytest.mark.parametrize("where", ["policy", "baselines.1"])
def test_a_typo_in_any_policys_params_fails_at_load_naming_file_and_field(tmp_path, name, where):
    data = _agent_dict()
    spec = {"name": name, "params": {"exploraton": 0.5}}
    if where == "policy":
        data["policy"] = spec
    else:
        data["baselines"][1] = {**data["baselines"][1], **spec, "group": "challenger"}
    path = _write(tmp_path, data)
    with pytest.raises(AgentConfigError) as err:
        load_agent(path)
    message = str(err.value)
    assert str(path) in message
    assert f"{where}.params: unknown parameter(s) ['exploraton'] for policy {name!r}" in message


def test_a_baselines_personalise_is_checked_like_the_policys(tmp_path):
    data = _agent_dict()
    data["baselines"][1] = {
        "name": "lin_ucb",
        "share": 0.1,
        "params": {"personalise": {"hours": "all"}},
    }
    expected = r"baselines\.1\.params\.personalise: unknown family 'hours'"
    with pytest.raises(AgentConfigError, match=expected):
        load_agent(_write(tmp_path, data))


class _Learner(Policy):
    """A learning policy that is no linear model: always the first allowed action."""

    name = "first_allowed"
    learns = True
    fitted: list[int] = []

    def fit(self, stats, actions, action_ids) -> None:
        type(self).fitted.append(stats.observations)

    def choose(self, ctx, allowed, u) -> Choice:
        action = np.where(allowed.any(axis=1), allowed.argmax(axis=1), -1)
        return Choice(action=action, propensity=np.ones(len(u)))


def test_any_learning_policy_is_fitted_before_deciding(tmp_path, monkeypatch):
    monkeypatch.setitem(REGISTRY, _Learner.name, _Learner)
    _Learner.fitted = []
    data = _agent_dict()
    data["policy"] = {"name": _Learner.name}
    agent = load_agent(_write(tmp_path, data))
    decider = AgentDecider.build(agent, ["recency"], None)
    assert _Learner.fitted == [0]
    batch = customers(50)
    rows = decide_batch(decider, batch, DAY, contact_history(batch))
    assert rows.num_rows == 50
    decider.refit(ArmStatistics.empty(decider.feature_names))
    assert _Learner.fitted == [0, 0]


def _imports(path: Path, module: str, modules: set[str]) -> set[str]:
    """The journeyman modules `path` imports (anywhere in it, function-level imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            # a module's own packages are initialised before it whatever it imports: naming
            # them (`from journeyman.insights import summary`) is no cycle between modules
            if name and name != module and not module.startswith(f"{name}."):
                found.add(name)
    return found


@pytest.mark.parametrize(
    "package", ["decisioning", "connectors", "intake", "insights", "orchestration", "sandbox", "."]
)
def test_no_import_cycle(package):
    """No module of the package reaches itself through its imports ('.': the whole package)."""
    files = {}
    for path in (PACKAGE / package).rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {m: _imports(p, m, set(files)) for m, p in files.items()}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                if nxt == goal:
                    return True
                seen.add(nxt)
                todo.append(nxt)
        return False

    cycles = sorted(m for m in graph if reaches(m, m))
    assert cycles == []
