"""Connectors to third-party data sources (HTTP APIs)."""
