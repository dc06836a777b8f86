"""The daily loop: journeyman tables → dbt models → decisions → deliveries, once per logical
date (the raw tables are the user's loaders' to fill: sources, not materialized here)."""

import dagster as dg

from journeyman.orchestration.defs.partitions import daily

daily_loop = dg.define_asset_job(
    "daily_loop",
    selection=dg.AssetSelection.all(include_sources=False),
    partitions_def=daily,
    description="Build the warehouse as of the day, decide for every agent, deliver.",
)

# 00:10 UTC: build as of today, decide for today, deliver (scheduled sends go out ahead).
daily_loop_schedule = dg.build_schedule_from_partitioned_job(
    daily_loop, hour_of_day=0, minute_of_hour=10
)
