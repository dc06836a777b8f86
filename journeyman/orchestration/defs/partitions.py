"""The explicit clock: one daily partition per logical date."""

import dagster as dg

daily = dg.DailyPartitionsDefinition(start_date="2025-01-01", timezone="UTC")
WAREHOUSE_POOL = "warehouse"  # every DuckDB-touching asset: one writer per file
# Each logical date is its own run: every step reads the one partition key as its clock.
ONE_DAY_PER_RUN = dg.BackfillPolicy.multi_run(max_partitions_per_run=1)
