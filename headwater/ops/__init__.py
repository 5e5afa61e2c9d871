"""Operations: the run's notification, the console, pre-run checks."""
