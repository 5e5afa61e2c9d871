"""Monitoring measures: reference profiles, drift, live metrics and estimated performance."""
