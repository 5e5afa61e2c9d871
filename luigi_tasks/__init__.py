"""Luigi orchestration: tasks that fan out one function invocation per partition."""

import warnings

with warnings.catch_warnings():
    # Luigi warns at import unless luigi.cfg sets core.autoload_range; the tasks never use the
    # range tools, and an import-time DeprecationWarning breaks runs with warnings as errors.
    warnings.filterwarnings("ignore", r"\s*Autoloading range tasks", DeprecationWarning)
    import luigi  # noqa: F401  (imported here, once, with the warning silenced)
