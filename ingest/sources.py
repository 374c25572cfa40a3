"""Raw mails from files: single .eml files, Maildir folders, mbox files."""

from __future__ import annotations

import logging
import mailbox
from collections.abc import Callable, Iterator
from pathlib import Path

from ingest.pipeline import Incoming
from lifeline.errors import LifelineError

logger = logging.getLogger(__name__)

_Loader = Callable[[], bytes]


def count(paths: list[Path]) -> int:
    """How many mails ``read`` will yield, for progress reporting."""
    return sum(1 for _ in _entries(paths))


def read(paths: list[Path]) -> Iterator[Incoming]:
    """Every mail under ``paths``, in a stable order. The received time is
    left to the pipeline, which takes it from the mail's own headers."""
    for label, load in _entries(paths):
        yield Incoming(raw=load(), label=label)


def _entries(paths: list[Path]) -> Iterator[tuple[str, _Loader]]:
    for path in paths:
        if path.is_dir() and (path / "cur").is_dir():
            yield from _maildir(path)
        elif path.is_dir():
            for child in sorted(path.glob("*.eml")):
                yield child.name, _file_loader(child)
        elif path.is_file() and _is_mbox(path):
            yield from _mbox(path)
        elif path.is_file():
            yield path.name, _file_loader(path)
        else:
            raise LifelineError(
                f"{path}: no such file or folder; give .eml files, a Maildir "
                f"(a folder with cur/ and new/) or an mbox file"
            )


def _file_loader(path: Path) -> _Loader:
    return lambda: path.read_bytes()


def _maildir(path: Path) -> Iterator[tuple[str, _Loader]]:
    box = mailbox.Maildir(path, factory=None, create=False)
    for key in sorted(box.keys()):
        yield f"{path.name}/{key}", _maildir_loader(box, key)


def _maildir_loader(box: mailbox.Maildir, key: str) -> _Loader:
    return lambda: box.get_bytes(key)


def _mbox(path: Path) -> Iterator[tuple[str, _Loader]]:
    box = mailbox.mbox(path, create=False)
    for number, key in enumerate(box.keys(), start=1):
        yield f"{path.name}#{number}", _mbox_loader(box, key)


def _mbox_loader(box: mailbox.mbox, key: str) -> _Loader:
    # get_bytes gives the mail without mbox's "From " separator line.
    return lambda: box.get_bytes(key)


def _is_mbox(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(5) == b"From "
