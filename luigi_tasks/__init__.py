"""Luigi orchestration: tasks that fan out one function invocation per partition."""
