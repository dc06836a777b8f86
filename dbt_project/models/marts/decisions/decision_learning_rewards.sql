-- The learning reward of every acted or held-out decision, over its learning window (agent goal
-- learning_window_days, else the attribution window), emitted once that window has closed:
-- decision_rewards' outcomes over the shorter window. arm_statistics_daily learns from these, so
-- an agent with a short learning window learns sooner and from less organic noise, while
-- decision_rewards and agent_group_outcomes still judge it on the full attribution window.
-- Incremental, as decision_rewards.
{{
    config(
        materialized='incremental',
        unique_key='decision_id',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns'
    )
}}
{{ decision_outcomes('learning_window_days') }}
