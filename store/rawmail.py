"""Raw mails on disk, named by their SHA-256 and written crash-safely."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from lifeline.errors import StoreError


def digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def relative_path(sha256: str) -> str:
    return f"mail/{sha256[:2]}/{sha256}.eml"


def save(data_dir: Path, raw: bytes, *, sync: bool = True) -> tuple[str, str]:
    """Write ``raw`` under ``data_dir`` and return (sha256, relative path).

    The file appears whole or not at all (temporary file, fsync, rename),
    so a crash can never leave half a mail that looks complete. The same
    bytes are stored once, whatever the number of times they arrive.
    """
    sha256 = digest(raw)
    relative = relative_path(sha256)
    target = data_dir / relative
    if target.exists():
        return sha256, relative

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(target, raw, sync)
    except OSError as exc:
        raise StoreError(
            f"cannot write the raw mail to {target}: {exc.strerror}; check "
            f"that store.data_dir is writable and the disk is not full"
        ) from exc
    return sha256, relative


def _write_atomically(target: Path, raw: bytes, sync: bool) -> None:
    fd, temporary = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load(data_dir: Path, relative: str) -> bytes:
    return (data_dir / relative).read_bytes()
