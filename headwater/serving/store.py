"""Read-only view of the model registry for serving, with neither pyarrow nor pandas.

:mod:`headwater.registry.registry` writes the registry through
:class:`headwater.data.lake.Lake`, which needs pyarrow: far too heavy for the prediction
API's Lambda package. Serving only reads three kinds of objects, the production pointer
(``models/<name>/PRODUCTION.json``), the shadow pointer (``models/<name>/SHADOW.json``) and
the small JSON files of an immutable, complete version (``models/<name>/<version>/``), so
this module reads them with the standard library for ``file://`` lakes and with boto3
(created lazily, on first use, and injectable) for ``s3://`` lakes. Paths come from
:mod:`headwater.core.layout`, as the registry's do.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from headwater.core import layout

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
#: The checksum the pointer records for a serving file the version lacked when promoted: the
#: file, if written later, is refused rather than served unverified.
ABSENT = "absent"


class ModelStoreError(RuntimeError):
    """The store cannot be read, or holds something malformed."""


@dataclass(frozen=True)
class ProductionPointer:
    """The content of ``PRODUCTION.json``: the version in production, since when and why, and
    the versions in production before it, newest first (written by the registry).
    """

    version: str
    promoted_at: str = ""
    reason: str = ""
    history: tuple[str, ...] = ()
    # Per version named (production and history): sha256 of each of its serving files
    # (layout.SERVING_FILES), taken when it was promoted (ABSENT for a file it lacked then).
    checksums: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_json(self) -> bytes:
        """Serialise the pointer (stable key order)."""
        body = {**self.__dict__, "history": list(self.history)}
        return json.dumps(body, sort_keys=True, indent=2).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> ProductionPointer:
        """Parse a pointer written by :meth:`to_json`; raise ValueError, KeyError or TypeError
        when it is malformed (or names a version that is not a valid path segment)."""
        body = json.loads(data)
        history = body.get("history", ())
        if not isinstance(history, list | tuple):
            raise TypeError(f"history is {type(history).__name__}, not a list")
        checksums = body.get("checksums", {})
        if not isinstance(checksums, dict) or not all(
            isinstance(files, dict) and all(isinstance(v, str) for v in files.values())
            for files in checksums.values()
        ):
            raise TypeError("checksums is not a mapping of version to file to sha256")
        try:
            return cls(
                version=_check_name("version", body["version"]),
                promoted_at=str(body.get("promoted_at", "")),
                reason=str(body.get("reason", "")),
                history=tuple(_check_name("version", v) for v in history),
                checksums={str(v): dict(files) for v, files in checksums.items()},
            )
        except ModelStoreError as exc:
            raise ValueError(str(exc)) from None


@dataclass(frozen=True)
class ShadowPointer:
    """The content of ``SHADOW.json``: the version the API scores beside production on the same
    requests (recorded, never returned), since when and why, and its serving files' checksums
    taken when it was set (written by the registry). ``version`` is None once switched off.
    """

    version: str | None
    set_at: str = ""
    reason: str = ""
    # sha256 of each of the version's serving files (layout.SERVING_FILES), ABSENT if lacking.
    checksums: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> bytes:
        """Serialise the pointer (stable key order)."""
        return json.dumps(self.__dict__, sort_keys=True, indent=2).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> ShadowPointer:
        """Parse a pointer written by :meth:`to_json`; raise ValueError, KeyError or TypeError
        when it is malformed (or names a version that is not a valid path segment)."""
        body = json.loads(data)
        checksums = body.get("checksums", {})
        if not isinstance(checksums, dict) or not all(
            isinstance(v, str) for v in checksums.values()
        ):
            raise TypeError("checksums is not a mapping of file to sha256")
        version = body["version"]
        try:
            return cls(
                version=None if version is None else _check_name("version", version),
                set_at=str(body.get("set_at", "")),
                reason=str(body.get("reason", "")),
                checksums={str(k): v for k, v in checksums.items()},
            )
        except ModelStoreError as exc:
            raise ValueError(str(exc)) from None

    def serving_pointer(self) -> ProductionPointer:
        """The pointer :func:`~headwater.serving.predictor.load_serving_model` loads the shadow
        from: its version, verified against the checksums taken when it was set."""
        if self.version is None:
            raise ValueError("the shadow is off: there is no version to load")
        return ProductionPointer(self.version, checksums={self.version: dict(self.checksums)})


class _Backend(Protocol):
    def read(self, key: str) -> bytes | None:
        """Return the object's bytes, or None when it does not exist."""
        ...

    def uri(self, key: str) -> str:
        """Return the object's URI (for messages)."""
        ...


@dataclass(frozen=True)
class _Files:
    root: Path

    def read(self, key: str) -> bytes | None:
        try:
            return (self.root / key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise ModelStoreError(f"cannot read {self.uri(key)}: {exc}") from exc

    def uri(self, key: str) -> str:
        return f"file://{self.root / key}"


class _S3:
    def __init__(
        self,
        bucket: str,
        prefix: str,
        region: str | None,
        endpoint_url: str | None,
        client: Any = None,
    ) -> None:
        self.bucket, self.prefix = bucket, prefix
        self.region, self.endpoint_url = region, endpoint_url
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            # The clients module alone (the rest of headwater.aws needs what the API lacks);
            # lazy: boto3 only for an S3 registry, off the API's cold start (file:// never needs it)
            from headwater.aws.clients import client

            self._client = client("s3", self.region, self.endpoint_url)
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def read(self, key: str) -> bytes | None:
        from botocore.exceptions import BotoCoreError, ClientError  # lazy: as boto3 above

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return response["Body"].read()
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                return None
            raise ModelStoreError(f"cannot read {self.uri(key)}: {exc}") from exc
        except BotoCoreError as exc:
            raise ModelStoreError(f"cannot read {self.uri(key)}: {exc}") from exc

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"


class DecisionKind(StrEnum):
    """The kinds of a ``decision.json`` (str-valued: the files read and compare as before).

    Defined here, not in :mod:`headwater.registry.gate`, so the API can compare kinds
    without importing the registry (and its lake, pyarrow); the gate re-exports it.
    """

    PROMOTED = "promoted"  # the gate (or an operator) put the version in production
    REJECTED = "rejected"  # the gate refused it: it must not go to production
    HELD = "held"  # an exploratory run's verdict: production untouched, still a candidate
    RETIRED = "retired"  # a rollback took it out of production


def decision_kind(body: Any) -> DecisionKind | None:
    """The kind of a ``decision.json`` body (promoted, rejected, held, retired), or None
    (no body, or a kind this version does not know)."""
    kind = body.get("decision") if isinstance(body, dict) else None
    try:
        return DecisionKind(kind) if isinstance(kind, str) else None
    except ValueError:
        return None


def is_valid_name(name: object) -> bool:
    """Tell whether name can be a model, version or file name (the registry's rule too)."""
    # Names become path segments: refuse anything that could climb out of the model's folder.
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def _check_name(kind: str, name: str) -> str:
    if not is_valid_name(name):
        raise ModelStoreError(f"{name!r} is not a valid {kind} name")
    return name


class ModelStore:
    """The versions of one model in a lake, read-only: ``file://PATH`` or ``s3://BUCKET/PREFIX``."""

    def __init__(
        self,
        lake_uri: str,
        name: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        s3_client: Any = None,
    ) -> None:
        self.name = _check_name("model", name)
        parsed = urlparse(lake_uri)
        self._backend: _Backend
        if parsed.scheme == "file":
            # Same reading as headwater.data.lake.open_lake: file://var/lake is relative to the cwd.
            root = Path(parsed.netloc + parsed.path).expanduser().resolve()
            self._backend = _Files(root)
        elif parsed.scheme == "s3":
            if not parsed.netloc:
                raise ModelStoreError(f"lake URI {lake_uri!r} names no bucket")
            prefix = parsed.path.strip("/")
            self._backend = _S3(parsed.netloc, prefix, region, endpoint_url, s3_client)
        else:
            raise ModelStoreError(
                f"unsupported lake URI {lake_uri!r}: use file://PATH or s3://BUCKET/PREFIX"
            )

    def __repr__(self) -> str:
        return f"ModelStore({self.uri()!r})"

    def uri(self, *parts: str) -> str:
        """Return the URI of ``parts`` below the model's folder."""
        return self._backend.uri("/".join(layout.model_parts(self.name, *parts)))

    def _read(self, *parts: str) -> bytes | None:
        return self._backend.read("/".join(layout.model_parts(self.name, *parts)))

    def production(self) -> ProductionPointer | None:
        """Return the production pointer, or None when no version was ever promoted."""
        raw = self._read(layout.POINTER)
        if raw is None:
            return None
        try:
            return ProductionPointer.from_json(raw)
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelStoreError(f"{self.uri(layout.POINTER)} is corrupt: {exc}") from None

    def shadow(self) -> ShadowPointer | None:
        """Return the shadow pointer, or None when no shadow is set (never, or switched off)."""
        raw = self._read(layout.SHADOW)
        if raw is None:
            return None
        try:
            pointer = ShadowPointer.from_json(raw)
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelStoreError(f"{self.uri(layout.SHADOW)} is corrupt: {exc}") from None
        return pointer if pointer.version is not None else None

    def is_complete(self, version: str) -> bool:
        """True when the version's ``_SUCCESS`` flag exists (its training run finished)."""
        return self._read(_check_name("version", version), layout.SUCCESS) is not None

    def exists(self, version: str, filename: str) -> bool:
        """True when ``<version>/<filename>`` exists."""
        return (
            self._read(_check_name("version", version), _check_name("file", filename)) is not None
        )

    def decision(self, version: str) -> DecisionKind | None:
        """The kind of the version's latest decision (``decision.json``'s ``decision``: promoted,
        rejected, held, retired), or None when it has none or it cannot be read."""
        try:
            return decision_kind(self.read_json(version, layout.DECISION))
        except ModelStoreError:
            return None

    def read_json(self, version: str, filename: str, sha256: str | None = None) -> Any:
        """Read and parse ``<version>/<filename>``; raise :class:`ModelStoreError` if absent,
        or if ``sha256`` is given and the file's is another (it changed since it was recorded),
        or is :data:`ABSENT` (the file did not exist when it was recorded).
        """
        parts = (_check_name("version", version), _check_name("file", filename))
        raw = self._read(*parts)
        if raw is None:
            raise ModelStoreError(f"{self.uri(*parts)} does not exist")
        if sha256 == ABSENT:
            raise ModelStoreError(
                f"{self.uri(*parts)} was absent when version {version} was promoted: refusing "
                f"to serve it; to serve it as it is now, roll back past {version}, then promote "
                "it again (a version the pointer names keeps its record)"
            )
        if sha256 is not None and (found := hashlib.sha256(raw).hexdigest()) != sha256:
            raise ModelStoreError(
                f"{self.uri(*parts)} changed since it was promoted (sha256 {found}, recorded "
                f"{sha256}): refusing to serve it; promote a version again or roll back"
            )
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ModelStoreError(f"{self.uri(*parts)} is not valid JSON: {exc}") from None
