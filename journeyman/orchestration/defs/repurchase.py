"""The repurchase model of the day as assets: fitted after dbt built the purchase summary,
read back by customer_features (the second dbt step, dbt.py)."""

from datetime import date

import dagster as dg

from journeyman.decisioning.repurchase_daily import predict_day
from journeyman.orchestration.defs.partitions import ONE_DAY_PER_RUN, WAREHOUSE_POOL, daily
from journeyman.orchestration.defs.resources import WarehouseResource
from journeyman.orchestration.defs.warehouse_tables import TABLE_KEYS

SUMMARY = dg.AssetKey(["intermediate", "int_customer_purchase_summary"])
PREDICTIONS = dg.AssetKey(["journeyman", "repurchase_predictions"])
FITS = dg.AssetKey(["journeyman", "repurchase_fits"])


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            PREDICTIONS,
            description="journeyman.repurchase_predictions: per customer with orders and run "
            "date, P(alive), expected orders in 7 / 30 days, the median days to the next order "
            "and the expected order value (BG/NBD and gamma-gamma, in days).",
            deps=[SUMMARY, *TABLE_KEYS.values()],
            group_name="decisioning",
            kinds={"python", "scipy"},
        ),
        dg.AssetSpec(
            FITS,
            description="journeyman.repurchase_fits: the day's fitted parameters and fit "
            "diagnostics, or why there was no fit.",
            deps=[SUMMARY, *TABLE_KEYS.values()],
            group_name="decisioning",
            kinds={"python", "scipy"},
        ),
    ],
    partitions_def=daily,
    backfill_policy=ONE_DAY_PER_RUN,
    pool=WAREHOUSE_POOL,
)
def repurchase_model(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """Fit BG/NBD and gamma-gamma on the day's purchase summary; write the predictions."""
    fit = predict_day(warehouse.open(), date.fromisoformat(context.partition_key))
    params = fit.bgnbd
    metadata = {
        "customers": dg.MetadataValue.int(fit.customers),
        "repeat_customers": dg.MetadataValue.int(fit.repeat_customers),
        "predictions": dg.MetadataValue.int(fit.predictions),
        "fit_seconds": dg.MetadataValue.float(round(fit.seconds, 3)),
    }
    if params is not None and params.fit is not None:
        metadata["bgnbd"] = {
            "r": params.r,
            "alpha": params.alpha,
            "a": params.a,
            "b": params.b,
            "log_likelihood": params.fit.log_likelihood,
            "converged": params.fit.converged,
        }
    if fit.note:
        context.log.warning("repurchase model: %s", fit.note)
        metadata["note"] = dg.MetadataValue.text(fit.note)
    yield dg.MaterializeResult(asset_key=PREDICTIONS, metadata=metadata)
    yield dg.MaterializeResult(asset_key=FITS)
