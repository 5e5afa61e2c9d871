"""The model half: Spark training, export, evaluation, comparison, reports."""
