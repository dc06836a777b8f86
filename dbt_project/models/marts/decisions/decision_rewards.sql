-- One row per decision that was acted on (exclusion_reason NULL: a message, or "send nothing")
-- or held out, emitted only once its attribution window has closed (window_end <= as-of).
-- Outcomes count in (reference_at, window_end]: an order at the send does not count, an order at
-- exactly window_end does. Duplicate orders / events count once.
{{ decision_outcomes('attribution_window_days') }}
