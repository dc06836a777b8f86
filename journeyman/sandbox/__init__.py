"""The sandbox: a seeded synthetic customer world that writes raw tables like a real list would.

`SandboxWorld(warehouse, seed).create(n_customers, start)` writes the population and its history;
`simulate_day(day, delivered)` loads one day of organic orders and message responses;
`truth.expected_reward(...)` gives the ground truth for oracle policies. See docs/sandbox.md.
"""

from journeyman.sandbox.outbox import read_outbox
from journeyman.sandbox.truth import Action, GroundTruth, Reward
from journeyman.sandbox.world import DaySummary, SandboxError, SandboxWorld

__all__ = [
    "Action",
    "DaySummary",
    "GroundTruth",
    "Reward",
    "SandboxError",
    "SandboxWorld",
    "read_outbox",
]
