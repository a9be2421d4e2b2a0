"""A Parquet lake on any fsspec file system: its layout, manifests and run ids.

Layout under the lake's root (a local path or a URL such as ``s3://bucket/lake``)::

    transactions/run_id=<id>/part-00000.parquet   hive-partitioned rows, one file per partition
    manifests/run-<id>.json                       the run's manifest: the commit (manifest.py)

Every file is written under a dot-name (``.part-00000.parquet.<uuid>.tmp``) and renamed into
place; tools that list the directory skip dot-files, and readers that go by the manifest read
only the files it lists. Lake run ids start above :data:`LAKE_RUN_BASE`, a range the database's
run counter never reaches, so a lake run and a database run never share an id.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from pathlib import Path

import fsspec
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from engine.errors import NotFoundError, UsageError
from engine.lake.manifest import Manifest, Writer

LAKE_RUN_BASE = 1_000_000_000  # lake runs are 1,000,000,001 and up; the database's stay below
ABANDONED = "the process writing it stopped before it finished"


class Lake:
    """One lake: where its files are, and its manifests (read, committed, recovered)."""

    def __init__(self, url: str | Path) -> None:
        text = str(url)
        if not text.strip():
            raise UsageError("The lake location is empty; give a directory or a URL.")
        fs, root = url_to_fs(text)
        self.url = text
        self.fs: fsspec.AbstractFileSystem = fs
        self.root = root.rstrip("/")
        self.local = isinstance(fs, LocalFileSystem)

    # -- paths ---------------------------------------------------------------------------------

    def path(self, relative: str) -> str:
        """A path inside the lake, as its file system names it."""
        return f"{self.root}/{relative}"

    def reader_path(self, relative: str) -> str:
        """A path inside the lake as DuckDB opens it: a plain path on local disk, else a URL of
        the file system DuckDB reads through (:meth:`engine.store.Store.attach_lake`)."""
        full = self.path(relative)
        return full if self.local else self.fs.unstrip_protocol(full)

    @staticmethod
    def partition_path(run_id: int, index: int) -> str:
        """The relative path of a run's partition file."""
        return f"transactions/run_id={run_id}/part-{index:05d}.parquet"

    @staticmethod
    def _manifest_path(run_id: int) -> str:
        return f"manifests/run-{run_id}.json"

    # -- files ---------------------------------------------------------------------------------

    def aside(self, relative: str) -> str:
        """Where a file to be published at ``relative`` is written first: a dot-name beside it
        (directory listings and ``*.parquet`` globs skip it)."""
        final = self.path(relative)
        folder, name = final.rsplit("/", 1)
        self.fs.makedirs(folder, exist_ok=True)
        return f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"

    def publish(self, aside: str, relative: str) -> int:
        """Rename a finished aside file into place (atomic on local disks); its size."""
        size = int(self.fs.size(aside))
        self.fs.mv(aside, self.path(relative))
        return size

    def discard(self, aside: str) -> None:
        """Remove an aside file that will not be published."""
        with contextlib.suppress(Exception):
            self.fs.rm(aside)

    def write_atomically(self, relative: str, body: bytes) -> int:
        """Write a whole file aside, then rename it into place; its size in bytes."""
        aside = self.aside(relative)
        try:
            with self.fs.open(aside, "wb") as out:
                out.write(body)
            return self.publish(aside, relative)
        except BaseException:
            self.discard(aside)
            raise

    # -- manifests -----------------------------------------------------------------------------

    def commit(self, manifest: Manifest) -> None:
        """Replace the run's manifest atomically (the commit of everything it lists)."""
        body = manifest.model_dump_json(indent=1).encode()
        self.write_atomically(self._manifest_path(manifest.run_id), body)

    def manifest(self, run_id: int) -> Manifest:
        """One run's manifest. Raises :class:`NotFoundError`."""
        try:
            with self.fs.open(self.path(self._manifest_path(run_id)), "rb") as f:
                return Manifest.model_validate_json(f.read())
        except FileNotFoundError:
            raise NotFoundError(f"Simulation run {run_id} not found in the lake.") from None

    def run(self, run_id: int) -> Manifest:
        """One run's manifest as readers see it: a run whose writer died reads as interrupted.
        Raises :class:`NotFoundError`."""
        return _with_live_status(self.manifest(run_id))

    def manifests(self) -> list[Manifest]:
        """Every run's manifest, newest first; a run whose writer died reads as interrupted."""
        found = []
        for run_id in self._run_ids():
            with contextlib.suppress(NotFoundError, ValueError):
                found.append(_with_live_status(self.manifest(run_id)))
        return sorted(found, key=lambda m: m.run_id, reverse=True)

    def _run_ids(self) -> list[int]:
        folder = self.path("manifests")
        if not self.fs.exists(folder):
            return []
        ids = []
        for entry in self.fs.ls(folder, detail=False):
            name = str(entry).rsplit("/", 1)[-1]
            if name.startswith("run-") and name.endswith(".json"):
                with contextlib.suppress(ValueError):
                    ids.append(int(name[4:-5]))
        return ids

    def reserve(self, draft: Manifest) -> Manifest:
        """Give ``draft`` the next lake run id and commit it as 'running'. On a local disk the
        id is claimed by an exclusive create, so two writers never get the same one; on an
        object store two writers starting at the same instant could (give each its own lake)."""
        run_id = max([LAKE_RUN_BASE, *self._run_ids()]) + 1
        self.fs.makedirs(self.path("manifests"), exist_ok=True)
        while True:
            manifest = draft.model_copy(update={"run_id": run_id, "writer": this_writer()})
            if not self.local:
                self.commit(manifest)
                return manifest
            claim = self.path(self._manifest_path(run_id))
            try:
                fd = os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                run_id += 1
                continue
            os.close(fd)  # an empty claim; the commit below replaces it by a rename
            self.commit(manifest)
            return manifest

    def recover(self) -> list[int]:
        """Mark runs whose writer died 'interrupted' (their committed partitions stay, the row
        count is the partitions') and remove the files they left that no manifest lists (an
        aside file, or a partition renamed into place just before the kill); their ids."""
        fixed = []
        for manifest in self.manifests():
            abandoned = manifest.status == "interrupted" and manifest.error == ABANDONED
            if abandoned and self.manifest(manifest.run_id).status == "running":
                self.commit(manifest)
                self.remove_unlisted(manifest)
                fixed.append(manifest.run_id)
        return fixed

    def remove_unlisted(self, manifest: Manifest) -> None:
        """Remove the files of ``manifest``'s run that it does not list (aside files of
        attempts that died, a partition renamed into place but never committed)."""
        folder = self.path(f"transactions/run_id={manifest.run_id}")
        listed = {p.path.rsplit("/", 1)[-1] for p in manifest.partitions}
        if self.fs.exists(folder):
            for entry in self.fs.ls(folder, detail=False):
                if str(entry).rsplit("/", 1)[-1] not in listed:
                    self.fs.rm(entry)


def this_writer() -> Writer:
    """This process, as a manifest records its writer."""
    return Writer(host=socket.gethostname(), pid=os.getpid(), started=_started(os.getpid()))


def _started(pid: int) -> str:
    """A process's start time in clock ticks since boot ('' when /proc cannot tell)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the name before ")" may hold spaces


def _with_live_status(manifest: Manifest) -> Manifest:
    """A 'running' manifest whose writer (on this host) is gone, as 'interrupted'."""
    writer = manifest.writer
    if manifest.status != "running" or writer is None or writer.host != socket.gethostname():
        return manifest
    if writer.started and _started(writer.pid) == writer.started:
        return manifest  # still being written
    return manifest.model_copy(update={"status": "interrupted", "error": ABANDONED})
