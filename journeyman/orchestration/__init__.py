"""Dagster definitions composing dbt, decisioning and connectors; nothing imports this."""
