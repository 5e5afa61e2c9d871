"""The source-kind registry: a kind's name -> ``"module:attr"``, imported when first used.

A kind is an object with (see :class:`SourceKind`):

- ``Config``: the pydantic model of its configuration keys (``[usecase.<u>.sources.<s>]``);
- ``http``: whether it calls a third-party HTTP API (then its extractions share the run's
  HTTP concurrency budget, and the use case may serve it from an embedded server);
- ``extract(config, ctx, partition) -> (schema, batches)``: one partition as Arrow tables;
- ``snapshot(config, ctx, as_of) -> (schema, batches)``: a whole reference table (kinds that
  cannot take snapshots raise :class:`SnapshotUnsupported`).

Built-in kinds are listed in :data:`KINDS`; a third party adds one with
:func:`register_kind` (or a ``headwater.source_kinds`` entry point) without editing the
core, and a use case brings its own by declaring ``source_kinds`` (registered by
:func:`register_usecase_kinds` when the platform loads it). This module imports only
pydantic: reading or checking the configuration never loads a database driver or an HTTP
library until a kind is actually used.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable, Iterator
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

if TYPE_CHECKING:
    import pyarrow as pa

    from headwater.core.config import SourceConfig
    from headwater.core.partitions import Partition
    from headwater.core.usecase import SourceContext

#: Entry-point group through which installed packages add source kinds.
ENTRY_POINT_GROUP = "headwater.source_kinds"

#: Built-in kinds: name -> "module:attribute" of the kind object.
KINDS: dict[str, str] = {
    "sql": "headwater.data.sources.sql:KIND",
    "openmeteo": "headwater.data.sources.openmeteo:KIND",
    "json_pages": "headwater.data.sources.json_pages:KIND",
}
_loaded: dict[str, SourceKind] = {}
_entry_points_read = False


class UnknownSourceKind(ValueError):
    """A configured kind is not registered."""


class SnapshotUnsupported(ValueError):
    """The kind cannot extract a whole table as a dated snapshot."""


class SourceOptionsError(ValueError):
    """A source's kind-specific keys are missing or invalid."""


class SourceOptions(BaseModel):
    """Base of every kind's configuration model: unknown keys are errors, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


#: The forms of a credential reference: resolved when a request is made, never in config files.
SECRET_SCHEMES = ("ssm:", "secretsmanager:", "env:")


class HttpAuth(SourceOptions):
    """A credential sent with every request: as header ``header`` or query parameter ``param``.

    ``value`` is a reference, never the secret: ``ssm:/path``, ``secretsmanager:name[#key]``
    (resolved as database URLs are) or ``env:NAME`` (an environment variable), read when a
    partition is extracted. The secret is masked in every log line and error message.
    """

    header: Annotated[str, Field(min_length=1)] | None = None
    param: Annotated[str, Field(min_length=1)] | None = None
    value: Annotated[str, Field(min_length=1)]

    @model_validator(mode="after")
    def _one_place_and_a_reference(self) -> HttpAuth:
        if (self.header is None) == (self.param is None):
            raise ValueError(
                "set exactly one of header (a header name, e.g. 'token') or param "
                "(a query parameter name, e.g. 'api_key')"
            )
        if not self.value.startswith(SECRET_SCHEMES) or self.value.endswith(":"):
            # The offending text is not echoed: it may be the secret itself.
            raise ValueError(
                "value must be a reference, not the secret: 'ssm:/path', "
                "'secretsmanager:name[#key]' or 'env:VARIABLE'"
            )
        return self


class HttpSourceOptions(SourceOptions):
    """The HTTP policy every HTTP kind shares: where to call, how fast, how patiently."""

    base_url: Annotated[str, Field(min_length=1)]
    # `headwater run` starts the use case's embedded server at base_url (local stages).
    embedded_server: bool = False
    # Requests per second the embedded server accepts before answering 429 (0 = no limit).
    embedded_server_rate_limit: Annotated[float, Field(ge=0)] = 0.0
    rate_limit_per_second: Annotated[float, Field(gt=0)] = 5.0
    timeout_seconds: Annotated[float, Field(gt=0)] = 10.0
    max_retries: Annotated[int, Field(ge=0)] = 5
    # An API key or token sent with every request (``[...sources.<s>.auth]``).
    auth: HttpAuth | None = None


Batches = tuple["pa.Schema", Iterator["pa.Table"]]


class SourceKind(Protocol):
    """What a source kind provides to the pipeline."""

    #: The pydantic model of the kind's configuration keys.
    Config: type[SourceOptions]
    #: Whether the kind calls an HTTP API (shares the run's HTTP concurrency budget).
    http: bool

    def extract(self, config: Any, ctx: SourceContext, partition: Partition) -> Batches:
        """The schema and Arrow batches of one partition of the source."""
        ...

    def snapshot(self, config: Any, ctx: SourceContext, as_of: date) -> Batches:
        """The schema and Arrow batches of the whole source as of ``as_of``."""
        ...


def register_kind(name: str, target: str | SourceKind) -> None:
    """Register kind ``name`` as ``"module:attr"`` (imported when first used) or an object."""
    if not name or not name.replace("_", "").isalnum():
        raise ValueError(f"invalid source kind name {name!r}")
    _loaded.pop(name, None)
    if isinstance(target, str):
        if target.count(":") != 1:
            raise ValueError(f"source kind {name!r}: expected 'module:attr', got {target!r}")
        KINDS[name] = target
    else:
        KINDS[name] = f"<object {type(target).__name__}>"
        _loaded[name] = target


def register_usecase_kinds(usecase: Any) -> list[str]:
    """Register the kinds a use case brings (its optional ``source_kinds``); return their names.

    Loading the use case again is harmless; a kind already registered to another target
    (a built-in, an entry point, another use case's) is refused rather than replaced.
    """
    declared = getattr(usecase, "source_kinds", None) or {}
    _read_entry_points()
    for name, target in declared.items():
        if not isinstance(target, str) or target.count(":") != 1:
            raise ValueError(
                f"use case {usecase.name!r}: source_kinds[{name!r}] must be 'module:attr', "
                f"got {target!r}"
            )
        if KINDS.get(name, target) != target:
            raise ValueError(
                f"use case {usecase.name!r} brings source kind {name!r} ({target}), "
                f"but {name!r} is already {KINDS[name]}: choose another name"
            )
        if name not in KINDS:
            register_kind(name, target)
    return sorted(declared)


def _read_entry_points() -> None:
    global _entry_points_read
    if _entry_points_read:
        return
    _entry_points_read = True
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        KINDS.setdefault(entry.name, entry.value)


def known_kinds() -> list[str]:
    """The registered kind names, sorted."""
    _read_entry_points()
    return sorted(KINDS)


def get_kind(name: str) -> SourceKind:
    """The kind registered as ``name`` (imported on first use); the error lists known kinds."""
    if name in _loaded:
        return _loaded[name]
    _read_entry_points()
    target = KINDS.get(name)
    if target is None:
        raise UnknownSourceKind(
            f"unknown source kind {name!r} (known kinds: {', '.join(known_kinds())})"
        )
    module_name, _, attr = target.partition(":")
    try:
        kind = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UnknownSourceKind(f"source kind {name!r} ({target}) cannot be loaded: {exc}") from exc
    _loaded[name] = kind
    return kind


def validate_source(config: SourceConfig, where: str = "source") -> Any:
    """Validate a source's kind-specific keys against its kind's model; return the model."""
    kind = get_kind(config.kind)
    try:
        return kind.Config.model_validate(config.options())
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<source>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SourceOptionsError(f"{where} (kind {config.kind!r}): {problems}") from None


R = TypeVar("R")


def request_of(ctx: SourceContext, expected: type[R], kind: str) -> R:
    """The use case's request for this source, checked to be the type ``kind`` reads."""
    request = ctx.request
    if not isinstance(request, expected):
        raise TypeError(
            f"use case {ctx.usecase!r}: source_request({ctx.source!r}) must return a "
            f"{expected.__name__} for kind {kind!r}, got {type(request).__name__}"
        )
    return request


def no_snapshot(kind: str) -> Callable[..., Batches]:
    """A ``snapshot`` for kinds that have none: it raises naming the kind."""

    def snapshot(config: Any, ctx: SourceContext, as_of: date) -> Batches:
        raise SnapshotUnsupported(
            f"source {ctx.source!r} of use case {ctx.usecase!r} is of kind {kind!r}, "
            "which cannot be extracted whole as a snapshot"
        )

    return snapshot
