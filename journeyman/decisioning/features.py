"""Discover the bandit's feature columns from the dbt manifest.

A column of the `customer_features` model is a feature when its YAML carries
`meta: {feature: true}` (under `config:` in dbt ≥ 1.10). Adding a feature is a dbt change only.
"""

from __future__ import annotations

import json
from pathlib import Path

from journeyman.decisioning.schema import AgentConfig, AgentConfigError

FEATURES_MODEL = "customer_features"


def discover_features(manifest_path: str | Path, model: str = FEATURES_MODEL) -> list[str]:
    """Feature column names of `model`, in the order the YAML lists them."""
    manifest = json.loads(Path(manifest_path).read_text())
    nodes = [
        n
        for n in manifest["nodes"].values()
        if n.get("resource_type") == "model" and n.get("name") == model
    ]
    if not nodes:
        raise LookupError(f"model {model!r} is not in the dbt manifest {manifest_path}")
    features = []
    for name, column in nodes[0]["columns"].items():
        meta = {**(column.get("meta") or {}), **((column.get("config") or {}).get("meta") or {})}
        if meta.get("feature") is True:
            features.append(name)
    return features


def agent_features(agent: AgentConfig, available: list[str], source: str = "") -> list[str]:
    """The agent's feature list (all discovered features unless it names a subset); every
    feature it or a policy's `params.personalise` names must be a discovered one."""
    if agent.features is not None:
        named = list(agent.features)  # what `personalise` names was checked against these at load
    else:
        named = [
            f
            for spec in (agent.policy, *agent.baselines)
            for fs in (spec.params.get("personalise") or {}).values()
            if fs != "all"
            for f in fs
        ]
    unknown = [f for f in named if f not in available]
    if unknown:
        where = f"{source}: " if source else f"agent {agent.name}: "
        raise AgentConfigError(
            f"{where}field `features` (or `policy.params.personalise`) names {unknown}, which "
            f"are not feature columns of {FEATURES_MODEL}; use some of {available} or mark the "
            "column `meta: {feature: true}` in the dbt model YAML"
        )
    if agent.features is None:
        return list(available)
    return list(agent.features)
