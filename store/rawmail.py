"""Raw mails on disk, named by their SHA-256 and written crash-safely.

A batch of mails is written in two steps: each mail to a temporary file as
it comes, flushed to disk by a few threads while the batch is stored, then
at ``RawBatch.sync`` (before the commit that records them) the flushes are
awaited, the files renamed to their names and the directories flushed. A
file therefore appears whole or not at all, and the disk's waits overlap
with the storing instead of adding to it.
"""
from __future__ import annotations

import hashlib
import os
import secrets
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from lifeline.errors import StoreError

# fsync waits on the disk, not the CPU: a few at a time let the file
# system write them in one journal commit. Files are handed to the threads
# a group at a time, as a task per file costs more than its fsync's CPU.
_SYNC_THREADS = 8
_SYNC_GROUP = 16


def digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def relative_path(sha256: str) -> str:
    return f"mail/{sha256[:2]}/{sha256}.eml"


class RawBatch:
    """Raw mails written for one transaction; ``sync`` before committing."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._pending: dict[Path, Path] = {}  # target → temporary file
        self._flushes: list[Future[None]] = []
        self._unflushed: list[Path] = []
        self._folders: set[Path] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._token = secrets.token_hex(4)

    def save(self, raw: bytes) -> tuple[str, str]:
        """Write ``raw`` to a temporary file; return (sha256, relative path).

        The same bytes are stored once, whatever the number of times they
        arrive, in this batch or before.
        """
        sha256 = digest(raw)
        relative = relative_path(sha256)
        target = self.data_dir / relative
        if target in self._pending or target.exists():
            return sha256, relative

        try:
            temporary = self._write_temporary(target, raw)
        except OSError as exc:
            raise _store_error(target, exc) from exc
        self._pending[target] = temporary
        self._unflushed.append(temporary)
        if len(self._unflushed) >= _SYNC_GROUP:
            self._flush_written()
        return sha256, relative

    def sync(self) -> None:
        """Make every file of the batch durable under its name."""
        if not self._pending:
            self.discard()
            return
        try:
            self._flush_written()
            for flush in self._flushes:
                flush.result()
            for target, temporary in self._pending.items():
                os.replace(temporary, target)
            assert self._pool is not None
            list(self._pool.map(_fsync_path, {t.parent for t in self._pending}))
        except OSError as exc:
            raise _store_error(next(iter(self._pending)), exc) from exc
        finally:
            self.discard()

    def discard(self) -> None:
        """Remove the temporary files not yet renamed (the batch failed)."""
        for flush in self._flushes:
            flush.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for temporary in self._pending.values():
            temporary.unlink(missing_ok=True)
        self._pending.clear()
        self._flushes.clear()
        self._unflushed.clear()

    def _flush_written(self) -> None:
        """Start flushing the files written since the last call."""
        if not self._unflushed:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(_SYNC_THREADS)
        self._flushes.append(self._pool.submit(_fsync_paths, self._unflushed))
        self._unflushed = []

    def _write_temporary(self, target: Path, raw: bytes) -> Path:
        folder = target.parent
        if folder not in self._folders:
            folder.mkdir(parents=True, exist_ok=True)
            self._folders.add(folder)
        # Named by this batch: another batch or another lifeline taking the
        # same mail at the same moment writes its own copy, never this one.
        temporary = folder / f"{target.name}.{os.getpid()}-{self._token}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(raw)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return temporary


def _fsync_paths(paths: list[Path]) -> None:
    for path in paths:
        _fsync_path(path)


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _store_error(target: Path, exc: OSError) -> StoreError:
    return StoreError(
        f"cannot write the raw mail to {target}: {exc.strerror}; check "
        f"that store.data_dir is writable and the disk is not full"
    )


def load(data_dir: Path, relative: str) -> bytes:
    return (data_dir / relative).read_bytes()
