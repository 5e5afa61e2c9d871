"""Headwater: raw sources to a prediction API, on a schedule, with data integrity guaranteed."""

__version__ = "0.1.0"
