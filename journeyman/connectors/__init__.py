"""Destinations and the sync engine that delivers decisions to them (no decisioning imports)."""
