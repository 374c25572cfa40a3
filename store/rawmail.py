"""Raw mails on disk, named by their SHA-256 and written crash-safely.

A batch of mails is written in two steps: each mail to a temporary file as
it comes, then at ``RawBatch.sync`` (before the commit that records them)
all files are flushed to disk together, renamed to their names and the
directories flushed. A file therefore appears whole or not at all, and one
flush per batch costs far less than one per mail.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lifeline.errors import StoreError

# fsync waits on the disk, not the CPU: a few at a time let the file
# system write them in one journal commit.
_SYNC_THREADS = 8


def digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def relative_path(sha256: str) -> str:
    return f"mail/{sha256[:2]}/{sha256}.eml"


class RawBatch:
    """Raw mails written for one transaction; ``sync`` before committing."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._pending: dict[Path, Path] = {}  # target → temporary file

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
            target.parent.mkdir(parents=True, exist_ok=True)
            self._pending[target] = _write_temporary(target, raw)
        except OSError as exc:
            raise _store_error(target, exc) from exc
        return sha256, relative

    def sync(self) -> None:
        """Make every file of the batch durable under its name."""
        if not self._pending:
            return
        try:
            with ThreadPoolExecutor(_SYNC_THREADS) as pool:
                list(pool.map(_fsync_path, self._pending.values()))
            for target, temporary in self._pending.items():
                os.replace(temporary, target)
            directories = {target.parent for target in self._pending}
            with ThreadPoolExecutor(_SYNC_THREADS) as pool:
                list(pool.map(_fsync_path, directories))
        except OSError as exc:
            raise _store_error(next(iter(self._pending)), exc) from exc
        finally:
            self.discard()

    def discard(self) -> None:
        """Remove the temporary files not yet renamed (the batch failed)."""
        for temporary in self._pending.values():
            temporary.unlink(missing_ok=True)
        self._pending.clear()


def _write_temporary(target: Path, raw: bytes) -> Path:
    fd, temporary = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return Path(temporary)


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
