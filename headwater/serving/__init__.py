"""Serving without a JVM: the registry as the API reads it, scoring, prediction."""
