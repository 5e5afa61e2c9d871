"""The use cases that ship with Headwater: one package each (``flights``, ``bikeshare``).

The contract a use case satisfies, and ``get_usecase`` that finds one by name, are in
:mod:`headwater.core.usecase`. A use-case package depends on that contract and on the
data layer's helpers (sources, contracts) only; no module outside this folder names a
use case (both checked in the suite: import-linter contracts and
``tests/usecases/test_no_usecase_names.py``).
"""
