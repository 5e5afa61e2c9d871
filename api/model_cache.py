"""The production model of one use case in one process: loaded once, re-checked every N s.

Requests call :meth:`ModelCache.current`. When the check interval has passed, one
request (whichever gets the lock first) reads the ``PRODUCTION`` pointer; if it
names another version, that version is loaded completely and only then swapped in
with a single reference assignment. Meanwhile, and whenever loading fails, every
other request keeps the model it had: a request never sees a half-loaded model.

When the pointer names a version that cannot be loaded, the process serves the newest
loadable version of the pointer's history (the production before it) not rejected since (as
a rollback would choose), so that every worker answers with the same, previously promoted
model rather than with whichever version it happened to hold; ``/health`` then reports
``degraded``, naming both.

:class:`ShadowCache` holds the shadow model (``SHADOW.json``) the same way, beside it: it is
consulted from the capture thread only, never waits, and never falls back.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from headwater.core import layout
from headwater.core.logs import get_logger
from headwater.serving.predictor import ServingModel
from headwater.serving.store import DecisionKind, ModelStore, ProductionPointer

log = get_logger("api.model")

Loader = Callable[[ModelStore, ProductionPointer], ServingModel]
#: How many earlier productions a worker tries when the pointer names a version it cannot load
#: (versions rejected since they were in production are skipped, not counted).
FALLBACK_DEPTH = 3


@dataclass(frozen=True)
class CacheStatus:
    """What ``/health`` reports: the model served, when the pointer was read, the last error."""

    model: ServingModel | None
    checked_at: str | None
    error: str | None
    # The version the production pointer named at the last check (None: no pointer).
    production: str | None = None
    # The versions in production before it, newest first.
    history: tuple[str, ...] = ()

    @property
    def degraded(self) -> bool:
        """True when the pointer names a version this process does not serve (it cannot load it)."""
        served = self.model.version if self.model else None
        return self.production is not None and self.production != served


class PointerCache:
    """A model of one use case loaded from the pointer it follows, re-read every
    ``reload_seconds`` by one caller at a time: :class:`ModelCache` follows ``PRODUCTION``,
    :class:`ShadowCache` ``SHADOW.json``; each says in ``_check`` what it does on a move."""

    #: True: a caller with no model yet waits for the check under way (production: rather
    #: than answer 503); False: it never waits (the shadow: it must delay nothing).
    waits_for_first_model = False

    def __init__(
        self,
        store: ModelStore,
        reload_seconds: float,
        *,
        loader: Loader,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.reload_seconds = reload_seconds
        self._loader = loader
        self._clock = clock
        self._lock = threading.Lock()
        self._model: ServingModel | None = None
        self._next_check = float("-inf")
        self._checked_at: str | None = None
        self._error: str | None = None

    def current(self) -> ServingModel | None:
        """Return the model to use now (None: none), checking the pointer first if it is due."""
        if self._clock() >= self._next_check:
            wait = self.waits_for_first_model and self._model is None
            if self._lock.acquire(blocking=wait):
                try:
                    if self._clock() >= self._next_check:
                        self._check()
                        self._next_check = self._clock() + self.reload_seconds
                finally:
                    self._lock.release()
        return self._model

    def _check(self) -> None:
        """Read the pointer and load what it names (called under the lock, when due)."""
        raise NotImplementedError


class ModelCache(PointerCache):
    """Holds the served model of one use case and swaps it when its production pointer moves."""

    waits_for_first_model = True
    # What the pointer named at the last check (set per instance by _check; immutable defaults).
    _production: str | None = None
    _history: tuple[str, ...] = ()

    def status(self) -> CacheStatus:
        """The served model (after a due check), when the pointer was read, the last error."""
        model = self.current()
        return CacheStatus(model, self._checked_at, self._error, self._production, self._history)

    def _check(self) -> None:
        served = self._model
        pointer: ProductionPointer | None = None
        try:
            pointer = self.store.production()
            self._production = pointer.version if pointer else None
            self._history = pointer.history if pointer else ()
            if pointer is None:
                self._error = (
                    None
                    if served is None
                    else (
                        f"{self.store.uri(layout.POINTER)} disappeared; still serving "
                        f"{served.version}"
                    )
                )
                return
            if served is not None and pointer.version == served.version:
                self._error = None
                return
            started = time.perf_counter()
            model = self._loader(self.store, pointer)
        except Exception as exc:  # whatever failed, a model that can answer stays in service
            self._error = f"{type(exc).__name__}: {exc}"
            if pointer is not None:
                model = self._fall_back(pointer)
                if model is not None:
                    self._model = model
            log.error(
                "model check failed",
                model=self.store.name,
                serving=self._model.version if self._model else None,
                error=self._error,
            )
            return
        finally:
            self._checked_at = datetime.now(UTC).isoformat(timespec="seconds")
        self._model = model  # the swap: one reference assignment, after a complete load
        self._error = None
        log.info(
            "model swapped in",
            model=model.name,
            version=model.version,
            previous=served.version if served else None,
            load_ms=round(1000 * (time.perf_counter() - started)),
        )

    def _fall_back(self, pointer: ProductionPointer) -> ServingModel | None:
        """The newest version of the pointer's history that loads and was not rejected since (the
        production before the one that cannot be served), or None; a model already served from
        it is kept as is."""
        served = self._model
        candidates = (v for v in pointer.history if not self._rejected(v))
        for version in itertools.islice(candidates, FALLBACK_DEPTH):
            if served is not None and served.version == version:
                return served
            try:
                earlier = ProductionPointer(version, checksums=pointer.checksums)
                return self._loader(self.store, earlier)
            except Exception as exc:  # try the one before
                log.warning(
                    "previous production cannot be loaded either",
                    model=self.store.name,
                    version=version,
                    error=f"{type(exc).__name__}: {exc}",
                )
        return None

    def _rejected(self, version: str) -> bool:
        # A rollback skips such a version too (headwater.registry.registry): it must not be served.
        if self.store.decision(version) != DecisionKind.REJECTED:
            return False
        log.warning(
            "previous production was rejected since: not falling back to it",
            model=self.store.name,
            version=version,
        )
        return True


@dataclass(frozen=True)
class ShadowStatus:
    """What ``/health`` reports of a use case's shadow: the version named, the model loaded."""

    #: The loaded shadow model (None: off, or the named version cannot be loaded).
    model: ServingModel | None
    #: The version ``SHADOW.json`` named at the last check (None: no shadow).
    version: str | None
    checked_at: str | None
    error: str | None

    @property
    def state(self) -> str:
        """``off`` (no shadow named), ``loaded`` (scored beside production) or ``failed``."""
        if self.version is None:
            return "off"
        loaded = self.model is not None and self.model.version == self.version
        return "loaded" if loaded else "failed"


class ShadowCache(PointerCache):
    """Holds the shadow model of one use case: loaded and verified as production's is, swapped
    when ``SHADOW.json`` moves, dropped when it is switched off.

    Consulted from the capture thread (off the request path), and it never waits for a
    check under way: the shadow can neither delay nor fail an answer. A version that cannot
    be loaded is not scored (its error is reported); nothing falls back to an older shadow.
    """

    # The version SHADOW.json named at the last check (set per instance by _check).
    _version: str | None = None

    def status(self) -> ShadowStatus:
        """The shadow named and the model loaded (after a due check), and the last error."""
        model = self.current()
        return ShadowStatus(model, self._version, self._checked_at, self._error)

    def _check(self) -> None:
        served = self._model
        try:
            pointer = self.store.shadow()
        except Exception as exc:  # an unreadable pointer: keep scoring what was loaded
            self._error = f"{type(exc).__name__}: {exc}"
            log.error("shadow pointer check failed", error=self._error)
            return
        finally:
            self._checked_at = datetime.now(UTC).isoformat(timespec="seconds")
        self._version = pointer.version if pointer else None
        if pointer is None:
            if served is not None:
                log.info("shadow switched off", model=served.name, version=served.version)
            self._model, self._error = None, None
            return
        if served is not None and served.version == pointer.version:
            self._error = None
            return
        try:
            model = self._loader(self.store, pointer.serving_pointer())
        except Exception as exc:  # the shadow is not scored; production is untouched
            self._model, self._error = None, f"{type(exc).__name__}: {exc}"
            log.error("shadow cannot be loaded", version=pointer.version, error=self._error)
            return
        self._model, self._error = model, None  # the swap, after a complete load
        log.info("shadow loaded", model=model.name, version=model.version)
