"""The daily loop: dbt models → decisions → deliveries, once per logical date."""

import dagster as dg

from journeyman.orchestration.defs.partitions import daily

daily_loop = dg.define_asset_job(
    "daily_loop",
    selection=dg.AssetSelection.all(include_sources=False)
    - dg.AssetSelection.key_prefixes(["raw"], ["journeyman"]),
    partitions_def=daily,
    description="Build the warehouse as of the day, decide for every agent, deliver.",
)

# 00:10 UTC: build as of today, decide for today, deliver (scheduled sends go out ahead).
daily_loop_schedule = dg.build_schedule_from_partitioned_job(
    daily_loop, hour_of_day=0, minute_of_hour=10
)
