"""decode_mail on the shared sample mails and on fixture mails built by
tests/make_mails.py, one per packaging and trouble case."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
from collections.abc import Callable
from pathlib import Path

import make_mails
import pytest

from ingest.archives import ArchiveLimits
from ingest.attachments import safe_filename
from ingest.mail import DecodedMail, decode_mail

SHARED = Path(
    os.environ.get("LIFELINE_SHARED", Path(__file__).resolve().parents[2] / "shared")
)
SAMPLES = SHARED / "samples"
SAMPLE_MAILS = sorted((SAMPLES / "mails").glob("*.eml"))


def _expected(mail: Path) -> dict[str, object]:
    path = SAMPLES / "expected" / f"{mail.stem}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def _has_chinese(text: str) -> bool:
    return any("\u4e00" <= char <= "\u9fff" for char in text)


def _codes(mail: DecodedMail) -> list[str]:
    return [problem.code for problem in mail.problems]


@pytest.mark.parametrize("path", SAMPLE_MAILS, ids=lambda p: p.stem)
def test_sample_attachments_match_expected(path: Path) -> None:
    """The decoded attachment names are the expected report attachments."""
    mail = decode_mail(path.read_bytes())

    wanted = [report["attachment"] for report in _expected(path)["reports"]]

    assert [a.filename for a in mail.attachments] == wanted
    assert mail.problems == []


@pytest.mark.parametrize("path", SAMPLE_MAILS, ids=lambda p: p.stem)
def test_sample_headers_decode_to_chinese(path: Path) -> None:
    """Sender, display name, subject and times decode from every charset."""
    mail = decode_mail(path.read_bytes())

    assert mail.sender.endswith("@example.com") or mail.sender.endswith("@example.cn")
    assert _has_chinese(mail.sender_name)
    assert _has_chinese(mail.subject)
    assert "=?" not in mail.subject + mail.sender_name
    assert mail.received_at is not None and mail.received_at.utcoffset() is not None
    assert mail.date is not None and mail.date <= mail.received_at
    assert mail.message_id and mail.message_id.startswith("<")
    assert not mail.auto_reply


def test_sample_p02_gbk_header_values() -> None:
    """A GBK subject and display name decode exactly."""
    path = SAMPLES / "mails" / "p02-xls-gbk-filename-total-row.eml"
    mail = decode_mail(path.read_bytes())

    assert mail.sender == "jtj_aq@example.cn"
    assert mail.sender_name == "区教体局安全科"
    assert mail.subject == "区教体局4月份消防生命通道统计表"
    china = dt.timezone(dt.timedelta(hours=8))
    assert mail.received_at == dt.datetime(2025, 4, 18, 16, 5, 6, tzinfo=china)


def test_sample_p05_has_no_attachment_but_a_body() -> None:
    """An Outlook gb2312 quoted-printable body is read; nothing attached."""
    mail = decode_mail((SAMPLES / "mails" / "p05-no-attachment.eml").read_bytes())

    assert mail.attachments == []
    assert "附件为我局5月份" in mail.body_text
    assert "\r" not in mail.body_text


def test_sample_p06_member_comes_from_the_zip() -> None:
    """The zip member is named in GBK; the container is the archive."""
    mail = decode_mail((SAMPLES / "mails" / "p06-zip-gbk-member-name.eml").read_bytes())

    [attachment] = mail.attachments
    assert attachment.container == "南湖镇5月统计表.zip"
    assert attachment.content.startswith(b"PK\x03\x04")


def test_sample_p07_forward_is_labelled_with_its_subject() -> None:
    """The inner attachment of a forwarded mail carries the inner subject."""
    mail = decode_mail((SAMPLES / "mails" / "p07-forwarded-rfc822.eml").read_bytes())

    [attachment] = mail.attachments
    assert attachment.container == "区卫健局5月份生命通道统计表"
    assert mail.subject.startswith("Fw: ")


# --- fixture mails: every packaging ------------------------------------------

NAME = make_mails.TABLE_NAME


@pytest.fixture(scope="module")
def table() -> bytes:
    """One real workbook, built once: the packagings below only wrap it."""
    return make_mails.tiny_xlsx()


def _names(mail: DecodedMail) -> list[str]:
    return [attachment.filename for attachment in mail.attachments]


def test_fixture_headers_decode(table: bytes) -> None:
    mail = decode_mail(make_mails.mail_with_name('filename="a.xlsx"', table))

    assert mail.sender == "cgjd@example.cn"
    assert mail.sender_name == make_mails.SENDER
    assert mail.subject == make_mails.SUBJECT
    assert mail.body_text == "附件是统计表，请查收。"
    assert mail.attachments[0].content == table


@pytest.mark.parametrize(
    "params",
    [
        f'filename="{make_mails.rfc2047(NAME, "gb2312", "B")}"',
        f'filename="{make_mails.rfc2047(NAME, "gbk", "Q", chunk=5)}"',
        f'filename="{make_mails.rfc2047(NAME, "gb18030", "B", chunk=4)}"',
        f'filename="{make_mails.rfc2047(NAME, "utf-8", "Q", chunk=7)}"',
        make_mails.rfc2231("filename", NAME, "utf-8", section=5),
        make_mails.rfc2231("filename", NAME, "gbk", section=3),
    ],
    ids=[
        "gb2312-b",
        "gbk-q-split",
        "gb18030-b-split",
        "utf8-q-split",
        "2231-utf8",
        "2231-gbk",
    ],
)
def test_fixture_encoded_names(params: str, table: bytes) -> None:
    mail = decode_mail(make_mails.mail_with_name(params, table))

    assert _names(mail) == [NAME]


@pytest.mark.parametrize("charset", ["utf-8", "gbk"])
def test_fixture_raw_8bit_name(charset: str, table: bytes) -> None:
    raw = make_mails.mail_with_name('filename="PLACEHOLDER"', table)
    raw = raw.replace(b"PLACEHOLDER", NAME.encode(charset))

    assert _names(decode_mail(raw)) == [NAME]


def test_fixture_name_only_in_content_type(table: bytes) -> None:
    params = f'name="{make_mails.rfc2047(NAME, "gbk")}"'

    mail = decode_mail(make_mails.mail_with_name(params, table, in_content_type=True))

    assert _names(mail) == [NAME]


def test_fixture_inline_disposition(table: bytes) -> None:
    params = f'filename="{make_mails.rfc2047(NAME, "utf-8")}"'

    mail = decode_mail(make_mails.mail_with_name(params, table, disposition="inline"))

    assert _names(mail) == [NAME]


def test_fixture_octet_stream_without_extension(table: bytes) -> None:
    """An office file sent as octet-stream under a bare name is found by
    its content."""
    raw = make_mails.mail_with_name(
        'filename="统计表"', table, content_type="application/octet-stream"
    )

    assert _names(decode_mail(raw)) == ["统计表"]


def test_fixture_nameless_office_part(table: bytes) -> None:
    nameless = make_mails.part(
        [
            f"Content-Type: {make_mails.XLSX_TYPE}",
            "Content-Transfer-Encoding: base64",
        ],
        make_mails.base64_body(table),
    )
    raw = make_mails.mail([make_mails.text_part("见附件"), nameless])

    assert _names(decode_mail(raw)) == ["attachment.xlsx"]


def test_fixture_whole_body_is_the_file(table: bytes) -> None:
    mail = decode_mail(make_mails.whole_body_mail(NAME, table))

    assert _names(mail) == [NAME]
    assert mail.attachments[0].content == table
    assert mail.body_text == ""


@pytest.mark.parametrize("encode", [False, True], ids=["plain", "base64"])
def test_fixture_forwarded_mail(encode: bool, table: bytes) -> None:
    inner = make_mails.inner_mail("原主题：城关街道统计表", NAME, table)

    mail = decode_mail(make_mails.forwarded(inner, encode=encode))

    assert _names(mail) == [NAME]
    assert mail.attachments[0].container == "原主题：城关街道统计表"
    assert mail.attachments[0].content == table
    assert mail.subject == "Fw: 转发统计表"
    assert mail.body_text == "转发一下"


def test_fixture_nested_forward(table: bytes) -> None:
    inner = make_mails.inner_mail("最早的邮件", NAME, table)
    middle = make_mails.forwarded(inner, encode=True)

    mail = decode_mail(make_mails.forwarded(middle))

    assert _names(mail) == [NAME]
    assert mail.attachments[0].container == "最早的邮件"


def test_fixture_eml_attached_as_octet_stream(table: bytes) -> None:
    inner = make_mails.inner_mail("原邮件", NAME, table)
    raw = make_mails.mail_with_name(
        'filename="原邮件.eml"', inner, content_type="application/octet-stream"
    )

    assert _names(decode_mail(raw)) == [NAME]


def test_fixture_winmail(table: bytes) -> None:
    data = make_mails.winmail(NAME.encode("gbk"), table)
    raw = make_mails.mail_with_name(
        'name="winmail.dat"', data, content_type="application/ms-tnef"
    )

    mail = decode_mail(raw)

    assert _names(mail) == [NAME]
    assert mail.attachments[0].container == "winmail.dat"


def test_fixture_zip_with_gbk_names(table: bytes) -> None:
    archive = make_mails.zip_with_names({NAME: table, "照片.jpg": b"\xff\xd8"})
    raw = make_mails.mail_with_name(
        f'filename="{make_mails.rfc2047("统计表.zip", "gbk")}"', archive,
        content_type="application/x-zip-compressed",
    )

    mail = decode_mail(raw)

    assert _names(mail) == [NAME]
    assert mail.attachments[0].container == "统计表.zip"


def test_fixture_seven_zip(table: bytes) -> None:
    archive = make_mails.seven_zip({NAME: table})

    mail = decode_mail(make_mails.mail_with_name('filename="a.7z"', archive))

    assert _names(mail) == [NAME]


@pytest.mark.parametrize(
    ("archive", "code"),
    [
        (lambda: make_mails.zip_bomb(10 * 1024 * 1024), "archive-too-large"),
        (lambda: make_mails.zip_many(201), "archive-too-large"),
        (lambda: b"PK\x03\x04 broken", "unreadable-archive"),
        (lambda: b"Rar!\x1a\x07\x00 rest", "unsupported-archive"),
    ],
    ids=["bomb", "many", "broken", "rar"],
)
def test_fixture_refused_archives(archive: Callable[[], bytes], code: str) -> None:
    raw = make_mails.mail_with_name('filename="统计表.zip"', archive())

    mail = decode_mail(raw)

    assert mail.attachments == []
    assert _codes(mail) == [code]
    assert "统计表" in mail.problems[0].message


def test_fixture_oversized_attachment(table: bytes) -> None:
    params = f'filename="{make_mails.rfc2047(NAME, "utf-8")}"'
    raw = make_mails.mail_with_name(params, table)

    mail = decode_mail(raw, max_attachment_bytes=len(table) - 1)

    assert mail.attachments == []
    assert _codes(mail) == ["oversized-attachment"]
    assert NAME in mail.problems[0].message
    assert decode_mail(raw, max_attachment_bytes=len(table)).problems == []


@pytest.mark.parametrize(
    ("params", "content_type"),
    [
        ('filename="photo.jpg"', "image/jpeg"),
        ('filename="smime.p7s"', "application/pkcs7-signature"),
        ('filename="张三.vcf"', "text/x-vcard"),
        ('filename="invite.ics"', "text/calendar"),
        ('filename="说明.txt"', "text/plain"),
        ('filename="签名.asc"', "application/octet-stream"),
    ],
)
def test_fixture_ignored_files(params: str, content_type: str) -> None:
    raw = make_mails.mail_with_name(
        params, b"\xff\xd8\xff not a table", content_type=content_type
    )

    mail = decode_mail(raw)

    assert mail.attachments == [] and mail.problems == []


def test_fixture_html_body_is_not_an_attachment() -> None:
    page = "<html><body><p>统计表见&quot;附件&quot;</p></body></html>"
    raw = make_mails.mail([make_mails.text_part(page, "html")])

    mail = decode_mail(raw)

    assert mail.attachments == []
    assert mail.body_text == '统计表见"附件"'


@pytest.mark.parametrize(
    "link",
    [
        "https://mail.163.com/large-attachment-download/index.html?p=X&file=Y",
        "https://dashi.163.com/html/cloud-attachment-download/index.html?key=Z",
        "https://wx.mail.qq.com/ftn/download?func=3&k=abc",
        "http://mail.qq.com/cgi-bin/ftnExs_download?k=abc",
        "从网易邮箱发来的超大附件",
    ],
)
def test_fixture_cloud_attachment(link: str) -> None:
    raw = make_mails.mail([make_mails.text_part(f"统计表请下载：{link}", "html")])

    assert _codes(decode_mail(raw)) == ["cloud-attachment"]


def test_fixture_cloud_link_beside_a_real_table(table: bytes) -> None:
    raw = make_mails.mail(
        [
            make_mails.text_part("超大附件 https://dashi.163.com/x"),
            make_mails.file_part('filename="a.xlsx"', table),
        ]
    )

    assert decode_mail(raw).problems == []


@pytest.mark.parametrize(
    ("extra", "sender", "auto"),
    [
        (["Auto-Submitted: auto-replied"], None, True),
        (["Auto-Submitted: no"], None, False),
        (["Precedence: bulk"], None, True),
        (["Precedence: junk"], None, True),
        (["List-Id: <fire.example.cn>"], None, True),
        (["Return-Path: <>"], None, True),
        (["Return-Path: <cgjd@example.cn>"], None, False),
        ([], "MAILER-DAEMON", True),
        ([], "Postmaster", True),
        ([], None, False),
    ],
)
def test_fixture_auto_reply(extra: list[str], sender: str | None, auto: bool) -> None:
    raw = make_mails.mail([make_mails.text_part("我休假了")], extra=extra)
    if sender:
        raw = raw.replace(b"<CGJD@Example.cn>", f"<{sender}@example.cn>".encode())

    assert decode_mail(raw).auto_reply is auto


# --- broken mails ------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [b"", b"\x00\xff\xfe garbage", b"Subject: only a subject", b"\r\n\r\n\r\n"],
    ids=["empty", "binary", "no-body", "blank"],
)
def test_broken_mail_still_decodes(raw: bytes) -> None:
    mail = decode_mail(raw)

    assert mail.attachments == []
    assert mail.sender == "" and mail.received_at is None


def test_missing_boundary_is_undecodable() -> None:
    raw = make_mails.headers_block(content_type="multipart/mixed") + b"no parts here"

    assert "undecodable-mail" in _codes(decode_mail(raw))


def test_received_date_tolerates_junk() -> None:
    stamp = b"Mon, 19 May 2025 17:40:09 +0800 (CST)"
    raw = make_mails.mail([make_mails.text_part("x")])
    raw = raw.replace(stamp, stamp + b" (junk)")

    mail = decode_mail(raw)

    utc = dt.timezone.utc
    assert mail.received_at == dt.datetime(2025, 5, 19, 9, 40, 9, tzinfo=utc)


def _mutations(raw: bytes, seed: int) -> list[bytes]:
    """Truncations at random points and random byte flips of one mail."""
    rng = random.Random(seed)
    cuts = [raw[: rng.randrange(len(raw))] for _ in range(15)]
    flips = []
    for _ in range(15):
        data = bytearray(raw)
        for _ in range(rng.randrange(1, 40)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        flips.append(bytes(data))
    return cuts + flips


@pytest.mark.parametrize("path", SAMPLE_MAILS, ids=lambda p: p.stem)
def test_fuzzed_samples_never_raise(path: Path) -> None:
    """Truncated and mutated mails give a DecodedMail, never an exception."""
    raw = path.read_bytes()

    for index, broken in enumerate(_mutations(raw, seed=len(raw))):
        mail = decode_mail(broken)

        assert isinstance(mail, DecodedMail), index


def test_fixture_html_table_under_a_bare_name() -> None:
    """An exported "Excel" that is really HTML, under a name without
    extension, is still a candidate; a .txt never is."""
    page = "<html><body><table><tr><td>排查单位场所</td></tr></table></body></html>".encode()
    found = decode_mail(
        make_mails.mail_with_name(
            'filename="导出"', page, content_type="application/octet-stream"
        )
    )
    text = decode_mail(
        make_mails.mail_with_name('filename="导出.txt"', page, content_type="text/plain")
    )

    assert _names(found) == ["导出"]
    assert text.attachments == []


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("城关街道5月份统计表.xlsx", "城关街道5月份统计表.xlsx"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\张三\\统计表.xls", "统计表.xls"),
        ("..", "attachment"),
        ("", "attachment"),
        ("a\x00b\r\nc.xls", "a_b__c.xls"),
        ('a<b>:"|?*.csv', "a_b______.csv"),
        (".hidden.xlsx", "hidden.xlsx"),
    ],
)
def test_safe_filename(name: str, safe: str) -> None:
    assert safe_filename(name) == safe


def test_safe_filename_limits_length_and_keeps_extension() -> None:
    safe = safe_filename("统" * 200 + ".xlsx")

    assert safe.endswith("统.xlsx")
    assert len(safe.encode("utf-8")) <= 180


def test_fixture_archives_nested_without_end(table: bytes) -> None:
    """A zip in a zip in a zip ... stops with a problem, not a recursion."""
    archive = table
    for level in range(10):
        archive = make_mails.zip_with_names({f"第{level}层.zip": archive})

    mail = decode_mail(make_mails.mail_with_name('filename="套娃.zip"', archive))

    assert mail.attachments == []
    assert _codes(mail) == ["archive-too-large"]


def test_fixture_forwards_nested_without_end(table: bytes) -> None:
    raw = make_mails.inner_mail("原件", NAME, table)
    for level in range(10):
        raw = make_mails.forwarded(raw, boundary=f"level-{level}")

    mail = decode_mail(raw)

    assert mail.attachments == []
    assert _codes(mail) == ["archive-too-large"]


def test_archive_members_get_a_content_type(table: bytes) -> None:
    archive = make_mails.zip_with_names({NAME: table})

    mail = decode_mail(make_mails.mail_with_name('filename="a.zip"', archive))

    assert mail.attachments[0].content_type == make_mails.XLSX_TYPE


def test_archive_limits_are_configurable(table: bytes) -> None:
    archive = make_mails.zip_with_names({NAME: table, "b.csv": b"1"})
    raw = make_mails.mail_with_name('filename="a.zip"', archive)

    mail = decode_mail(raw, archive_limits=ArchiveLimits(max_members=1))

    assert _codes(mail) == ["archive-too-large"]
