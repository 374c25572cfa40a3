"""Reading raw mails from files: .eml files, Maildirs, mbox files and plain
folders holding them, on folders built in tmp_path."""

from __future__ import annotations

import email
import mailbox
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from ingest import sources
from lifeline.demo import mailbox_path
from lifeline.errors import LifelineError


def _mail(subject: str) -> bytes:
    message = EmailMessage()
    message["From"] = "unit@example.cn"
    message["Subject"] = subject
    message.set_content("统计表见附件")
    return bytes(message)


def _subjects(paths: list[Path]) -> list[tuple[str, str]]:
    """(label, Subject) of every mail read, in the order read."""
    return [
        (incoming.label, email.message_from_bytes(incoming.raw, policy=policy.default)["Subject"])
        for incoming in sources.read(paths)
    ]


def _maildir(path: Path, new: dict[str, str], cur: dict[str, str], keep: bool = True) -> Path:
    """A Maildir as git leaves it: .keep files in otherwise empty folders."""
    for folder, mails in (("new", new), ("cur", cur), ("tmp", {})):
        (path / folder).mkdir(parents=True)
        if keep:
            (path / folder / ".keep").write_bytes(b"")
        for name, subject in mails.items():
            (path / folder / name).write_bytes(_mail(subject))
    return path


def test_maildir_skips_dot_files_and_tmp_and_reads_by_name(tmp_path: Path) -> None:
    box = _maildir(tmp_path / "box", new={"3.host": "三"}, cur={"1.host:2,S": "一", "2.host:2,": "二"})
    (box / "tmp" / "4.host").write_bytes(_mail("still being written"))

    assert _subjects([box]) == [("box/1.host", "一"), ("box/2.host", "二"), ("box/3.host", "三")]
    assert sources.count([box]) == 3


def test_maildir_without_new_or_tmp_is_read(tmp_path: Path) -> None:
    (tmp_path / "box" / "cur").mkdir(parents=True)
    (tmp_path / "box" / "cur" / "1.host:2,").write_bytes(_mail("一"))

    assert _subjects([tmp_path / "box"]) == [("box/1.host", "一")]


def test_empty_maildir_from_git_yields_nothing(tmp_path: Path) -> None:
    box = _maildir(tmp_path / "box", new={}, cur={})

    assert _subjects([box]) == []


def test_bundled_demo_mailbox_holds_the_twelve_samples_only() -> None:
    labels = [incoming.label for incoming in sources.read([mailbox_path()])]

    assert len(labels) == 12
    assert labels == sorted(labels)
    assert all(".keep" not in label for label in labels)


def test_plain_folder_is_searched_down_through_maildirs_folders_and_mbox_files(
    tmp_path: Path,
) -> None:
    root = tmp_path / "export"
    (root / "b-old" / "deeper").mkdir(parents=True)
    (root / "a.eml").write_bytes(_mail("a"))
    (root / "b-old" / "deeper" / "c.EML").write_bytes(_mail("c"))
    (root / "b-old" / "notes.txt").write_text("not a mail", encoding="utf-8")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x.eml").write_bytes(_mail("hidden"))
    _maildir(root / "d-box", new={"1.host": "d1"}, cur={})
    archive = mailbox.mbox(root / "e.mbox")
    archive.add(_mail("e1"))
    archive.add(_mail("e2"))
    archive.close()

    assert _subjects([root]) == [
        ("a.eml", "a"),
        ("b-old/deeper/c.EML", "c"),
        ("d-box/1.host", "d1"),
        ("e.mbox#1", "e1"),
        ("e.mbox#2", "e2"),
    ]
    assert sources.count([root]) == 5


def test_single_files_and_mbox_given_by_name(tmp_path: Path) -> None:
    (tmp_path / "one.eml").write_bytes(_mail("one"))
    archive = mailbox.mbox(tmp_path / "archive")
    archive.add(_mail("m1"))
    archive.close()

    read = _subjects([tmp_path / "one.eml", tmp_path / "archive"])

    assert read == [("one.eml", "one"), ("archive#1", "m1")]


def test_missing_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(LifelineError, match="gone.eml: no such file or folder"):
        sources.count([tmp_path / "gone.eml"])
