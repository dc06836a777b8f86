"""Agent configuration, policies, guardrails and holdouts: plain Python and numpy, no Dagster."""
