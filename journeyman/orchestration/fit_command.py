"""`journeyman fit …`: fit customer models on summaries exported from the warehouse."""

from __future__ import annotations

import json
from pathlib import Path

import click

from journeyman.decisioning.repurchase import RepurchaseDataError, fit_bgnbd, read_summary_csv


@click.group()
def fit() -> None:
    """Fit customer models (repurchase timing) on summary files."""


@fit.command("repurchase")
@click.option(
    "--summary",
    "summary_path",
    required=True,
    type=click.Path(path_type=Path),
    help="CSV with a header: frequency (or x: repeat purchases), recency (or t_x: time from the "
    "first to the last purchase), T (time from the first purchase to the end of the period), "
    "one row per customer; an id column is optional.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def repurchase_command(summary_path: Path, as_json: bool) -> None:
    """Fit the BG/NBD repurchase model (Fader, Hardie & Lee 2005) by maximum likelihood and
    print its parameters r, alpha (purchase rate ~ Gamma(r, alpha)), a, b (dropout probability
    ~ Beta(a, b)) and the log-likelihood. Times are in the file's unit; alpha is in that unit."""
    from journeyman.orchestration.console import fail

    if not summary_path.is_file():
        what = "a directory" if summary_path.is_dir() else "not found"
        fail(f"--summary {summary_path}: {what}; give the path of a customer summary CSV file")
    try:
        data = read_summary_csv(summary_path)
    except RepurchaseDataError as exc:
        fail(str(exc))
    try:
        params = fit_bgnbd(data.frequency, data.recency, data.T)
    except RepurchaseDataError as exc:
        fail(f"{summary_path}: {exc}")
    info = params.fit
    assert info is not None
    if not info.converged:
        click.echo(f"warning: the optimiser stopped before converging: {info.message}", err=True)
    click.echo(
        f"BG/NBD fit on {summary_path.name}: {info.n:,} customers, {info.iterations} iterations, "
        f"{info.seconds:.2f} s"
    )
    for name in ("r", "alpha", "a", "b"):
        click.echo(f"  {name:<6} {getattr(params, name):.6g}")
    click.echo(f"log-likelihood {info.log_likelihood:.4f}")
    if as_json:
        payload = {
            "r": params.r,
            "alpha": params.alpha,
            "a": params.a,
            "b": params.b,
            "log_likelihood": info.log_likelihood,
            "n": info.n,
            "seconds": round(info.seconds, 4),
            "iterations": info.iterations,
            "converged": info.converged,
        }
        click.echo(json.dumps(payload))
