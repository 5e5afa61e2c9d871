"""Foundations every layer shares: configuration, errors, paths, logging, dates."""
