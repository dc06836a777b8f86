"""The explicit clock: one daily partition per logical date."""

import dagster as dg

daily = dg.DailyPartitionsDefinition(start_date="2025-01-01", timezone="UTC")
WAREHOUSE_POOL = "warehouse"  # every DuckDB-touching asset: one writer per file
