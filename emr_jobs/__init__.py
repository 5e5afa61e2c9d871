"""Spark entrypoints, run as EMR steps (or with spark-submit locally)."""
