"""Leftovers of killed trainings: version folders without ``_SUCCESS``, found and deleted.

A training writes its version's files first and ``_SUCCESS`` last, so a job killed
midway leaves ``models/<usecase>/<version>/`` holding only part of them (say ``spark/``)
forever; the registry refuses such a version, rightly. These functions find them, and
delete those older than a grace period (a training still running is younger), never a
version the production pointer names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow.fs as pafs

from headwater.core.layout import POINTERS, model_parts
from headwater.registry.registry import Registry


@dataclass(frozen=True)
class Leftover:
    """An incomplete version: its name, how many files it holds, and when it was last written."""

    version: str
    files: int
    modified: datetime | None

    def older_than(self, grace: timedelta, now: datetime) -> bool:
        """Whether its newest file is older than ``grace`` (an empty folder always is)."""
        return self.modified is None or now - self.modified > grace


def incomplete_versions(registry: Registry) -> list[Leftover]:
    """The versions of ``registry`` without ``_SUCCESS``, oldest name first.

    Versions the production pointer names (production and its history) are never listed.
    """
    pointer = registry.production()
    kept = {pointer.version, *pointer.history} if pointer else set()
    lake = registry.lake
    found = []
    for name in lake.list_dir(*model_parts(registry.name)):
        if name in POINTERS or name.startswith(".") or name in kept:
            continue
        if registry.is_complete(name):
            continue
        selector = pafs.FileSelector(
            lake.path(*model_parts(registry.name, name)), recursive=True, allow_not_found=True
        )
        infos = [i for i in lake.filesystem.get_file_info(selector) if i.type == pafs.FileType.File]
        times = [i.mtime for i in infos if i.mtime is not None]
        newest = max(times).astimezone(UTC) if times else None
        found.append(Leftover(version=name, files=len(infos), modified=newest))
    return found


def delete_version(registry: Registry, leftover: Leftover) -> None:
    """Delete an incomplete version's folder (refused for a complete or pointed-to one)."""
    pointer = registry.production()
    if registry.is_complete(leftover.version) or (
        pointer and leftover.version in {pointer.version, *pointer.history}
    ):
        raise ValueError(f"version {leftover.version} of model {registry.name} is not a leftover")
    path = registry.lake.path(*model_parts(registry.name, leftover.version))
    try:
        registry.lake.filesystem.delete_dir(path)
    except FileNotFoundError:
        pass


def prune_plan(
    leftovers: list[Leftover], grace: timedelta, now: datetime | None = None
) -> tuple[list[Leftover], list[Leftover]]:
    """Split leftovers into those to delete (older than ``grace``) and those kept (younger)."""
    now = now or datetime.now(UTC)
    old = [item for item in leftovers if item.older_than(grace, now)]
    return old, [item for item in leftovers if not item.older_than(grace, now)]
