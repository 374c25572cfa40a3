"""Raw mails from files: single .eml files, Maildir folders, mbox files,
and plain folders holding any of these, searched down to the bottom."""

from __future__ import annotations

import logging
import mailbox
from collections.abc import Callable, Iterator
from pathlib import Path

from ingest.pipeline import Incoming
from lifeline.errors import LifelineError

logger = logging.getLogger(__name__)

_Loader = Callable[[], bytes]

# The Maildir folders that hold delivered mail; tmp/ holds mail still being
# written and is never read.
_DELIVERED = ("new", "cur")


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
        if _is_maildir(path):
            yield from _maildir(path, path.name)
        elif path.is_dir():
            yield from _folder(path, "")
        elif path.is_file() and _is_mbox(path):
            yield from _mbox(path, path.name)
        elif path.is_file():
            yield path.name, _file_loader(path)
        else:
            raise LifelineError(
                f"{path}: no such file or folder; give .eml files, a Maildir "
                f"(a folder with cur/ and new/), an mbox file or a folder "
                f"holding these"
            )


def _folder(path: Path, prefix: str) -> Iterator[tuple[str, _Loader]]:
    """The .eml and .mbox files, Maildirs and folders inside ``path``, by
    name; other files (notes, exports' index files) are left alone."""
    for child in _visible(path):
        label = prefix + child.name
        if _is_maildir(child):
            yield from _maildir(child, label)
        elif child.is_dir():
            yield from _folder(child, label + "/")
        elif child.suffix.lower() == ".eml":
            yield label, _file_loader(child)
        elif child.suffix.lower() == ".mbox":
            yield from _mbox(child, label)
        else:
            logger.debug("%s: neither .eml nor .mbox, skipped", child)


def _visible(path: Path) -> list[Path]:
    """A folder's entries by name, without hidden ones (.keep, .DS_Store)."""
    return sorted(child for child in path.iterdir() if not child.name.startswith("."))


def _file_loader(path: Path) -> _Loader:
    return lambda: path.read_bytes()


def _is_maildir(path: Path) -> bool:
    return any((path / name).is_dir() for name in _DELIVERED)


def _maildir(path: Path, label: str) -> Iterator[tuple[str, _Loader]]:
    """The mails in new/ and cur/ by file name. The standard library's
    Maildir would take any file there as a mail, git's .keep included."""
    files = [
        child
        for name in _DELIVERED
        if (path / name).is_dir()
        for child in _visible(path / name)
        if child.is_file()
    ]
    for child in sorted(files, key=lambda child: child.name):
        # The part after ":" is the flags, which change as a mail is read.
        key = child.name.split(":")[0]
        yield f"{label}/{key}", _file_loader(child)


def _mbox(path: Path, label: str) -> Iterator[tuple[str, _Loader]]:
    """The mails of an mbox file; a loader works until the next one is
    asked for, which is how ``read`` uses them."""
    box = mailbox.mbox(path, create=False)
    try:
        for number, key in enumerate(box.keys(), start=1):
            yield f"{label}#{number}", _mbox_loader(box, key)
    finally:
        box.close()


def _mbox_loader(box: mailbox.mbox, key: str) -> _Loader:
    # get_bytes gives the mail without mbox's "From " separator line.
    return lambda: box.get_bytes(key)


def _is_mbox(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(5) == b"From "
