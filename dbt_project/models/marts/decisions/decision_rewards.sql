-- One row per decision that was acted on (exclusion_reason NULL: a message, or "send nothing")
-- or held out, emitted only once its attribution window has closed (window_end <= as-of).
-- Outcomes count in (reference_at, window_end]: an order at the send does not count, an order at
-- exactly window_end does. Duplicate orders / events count once.
-- Incremental (macros/decision_outcomes.sql): each build adds the windows closed since the last,
-- recomputing the last rewards_lookback_days; `dbt build --full-refresh` rebuilds all.
{{
    config(
        materialized='incremental',
        unique_key='decision_id',
        incremental_strategy='delete+insert',
        on_schema_change='append_new_columns'
    )
}}
{{ decision_outcomes('attribution_window_days') }}
