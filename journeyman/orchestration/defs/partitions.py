"""The explicit clock: one daily partition per logical date."""

import dagster as dg

# end_offset=1: today's partition exists from 00:00 UTC, so the daily run decides for today.
daily = dg.DailyPartitionsDefinition(start_date="2025-01-01", timezone="UTC", end_offset=1)
WAREHOUSE_POOL = "warehouse"  # every DuckDB-touching asset: one writer per file
# Each logical date is its own run: every step reads the one partition key as its clock.
ONE_DAY_PER_RUN = dg.BackfillPolicy.multi_run(max_partitions_per_run=1)
