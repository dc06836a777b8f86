"""Dagster definitions, one file per concern; loaded by `dg.load_from_defs_folder`."""
