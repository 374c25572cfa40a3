"""Archive unpacking: Chinese member names, limits, formats, winmail.dat."""

from __future__ import annotations

import io
import zipfile

import make_mails
import pytest

from ingest.archives import (
    ArchiveLimits,
    ArchiveMember,
    member_basename,
    unpack_archive,
    unpack_winmail,
)
from lifeline.errors import TableError

NAME = "南湖镇5月份打通消防生命通道统计表.xlsx"
TABLE = b"PK\x03\x04 pretend table"


@pytest.mark.parametrize("encoding", ["gbk", "utf-8"])
def test_zip_member_names_without_utf8_flag(encoding: str) -> None:
    """GBK (Windows) or unflagged UTF-8 names are recovered from cp437."""
    archive = make_mails.zip_with_names({f"资料/{NAME}": TABLE}, encoding)

    assert unpack_archive("a.zip", archive) == [ArchiveMember(NAME, TABLE)]


def test_zip_member_names_with_utf8_flag() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(NAME, TABLE)

    assert unpack_archive("a.zip", buffer.getvalue())[0].name == NAME


def test_zip_directories_are_skipped_and_paths_dropped() -> None:
    archive = make_mails.zip_traversal(TABLE)

    assert unpack_archive("a.zip", archive) == [ArchiveMember("统计表.xlsx", TABLE)]


@pytest.mark.parametrize(
    ("path", "base"),
    [
        ("../../x.xls", "x.xls"),
        ("a\\b\\c.xls", "c.xls"),
        ("/abs/d.xls", "d.xls"),
        ("e.xls", "e.xls"),
    ],
)
def test_member_basename(path: str, base: str) -> None:
    assert member_basename(path) == base


def test_zip_bomb_by_ratio() -> None:
    """2 MB of zeros packs to a few KB: refused, not unpacked."""
    with pytest.raises(TableError) as error:
        unpack_archive("bomb.zip", make_mails.zip_bomb(2 * 1024 * 1024))

    assert error.value.code == "archive-too-large"


def test_zip_over_total_size() -> None:
    limits = ArchiveLimits(max_total_bytes=1000, max_ratio=1e9)

    with pytest.raises(TableError) as error:
        unpack_archive("big.zip", make_mails.zip_bomb(1001), limits)

    assert error.value.code == "archive-too-large"


def test_zip_forged_size_is_caught_while_reading() -> None:
    """A header that lies about the size cannot smuggle in more bytes."""
    archive = bytearray(make_mails.zip_bomb(5000))
    for header in (b"PK\x03\x04", b"PK\x01\x02"):
        start = archive.index(header)
        offset = start + (22 if header == b"PK\x03\x04" else 24)
        archive[offset : offset + 4] = (10).to_bytes(4, "little")

    with pytest.raises(TableError) as error:
        unpack_archive("forged.zip", bytes(archive), ArchiveLimits(max_total_bytes=100))

    assert error.value.code in ("unreadable-archive", "archive-too-large")


def test_zip_too_many_members() -> None:
    with pytest.raises(TableError) as error:
        unpack_archive("many.zip", make_mails.zip_many(201))

    assert error.value.code == "archive-too-large"
    assert len(unpack_archive("ok.zip", make_mails.zip_many(200))) == 200


@pytest.mark.parametrize(
    "content",
    [b"PK\x03\x04 truncated", make_mails.zip_many(3)[:-30], b"not an archive"],
    ids=["header-only", "truncated", "garbage"],
)
def test_broken_zip_is_unreadable(content: bytes) -> None:
    with pytest.raises(TableError) as error:
        unpack_archive("broken.zip", content)

    assert error.value.code == "unreadable-archive"


def test_encrypted_zip_is_unreadable() -> None:
    archive = bytearray(make_mails.zip_many(1))
    for header, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        archive[archive.index(header) + offset] |= 0x01

    with pytest.raises(TableError) as error:
        unpack_archive("secret.zip", bytes(archive))

    assert error.value.code == "unreadable-archive"


def test_seven_zip() -> None:
    archive = make_mails.seven_zip({f"dir/{NAME}": TABLE, "说明.txt": b"x"})

    members = unpack_archive("a.7z", archive)

    assert members == [ArchiveMember(NAME, TABLE), ArchiveMember("说明.txt", b"x")]


def test_seven_zip_limits() -> None:
    archive = make_mails.seven_zip({"a.xlsx": bytes(5000)})

    with pytest.raises(TableError) as error:
        unpack_archive("a.7z", archive, ArchiveLimits(max_total_bytes=1000))

    assert error.value.code == "archive-too-large"


def test_broken_seven_zip_is_unreadable() -> None:
    archive = make_mails.seven_zip({"a.xlsx": TABLE})

    with pytest.raises(TableError) as error:
        unpack_archive("a.7z", archive[:40])

    assert error.value.code == "unreadable-archive"


def test_rar_is_unsupported_with_advice() -> None:
    with pytest.raises(TableError) as error:
        unpack_archive("表.rar", b"Rar!\x1a\x07\x00 rest")

    assert error.value.code == "unsupported-archive"
    assert "ZIP" in str(error.value)


def test_winmail_with_gbk_title() -> None:
    """Chinese Outlook writes the title in GBK; tnefparse expects UTF-8."""
    data = make_mails.winmail(NAME.encode("gbk"), TABLE)

    assert unpack_winmail(data) == [ArchiveMember(NAME, TABLE)]


def test_broken_winmail_is_unreadable() -> None:
    with pytest.raises(TableError) as error:
        unpack_winmail(b"\x00\x01\x02 not tnef")

    assert error.value.code == "unreadable-archive"
