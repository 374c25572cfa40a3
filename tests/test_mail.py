"""decode_mail on the shared sample mails and on fixture mails built by
tests/make_mails.py, one per packaging and trouble case."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
from pathlib import Path

import pytest

from ingest.mail import DecodedMail, decode_mail
import make_mails

SHARED = Path(os.environ.get("LIFELINE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
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
    mail = decode_mail((SAMPLES / "mails" / "p02-xls-gbk-filename-total-row.eml").read_bytes())

    assert mail.sender == "jtj_aq@example.cn"
    assert mail.sender_name == "区教体局安全科"
    assert mail.subject == "区教体局4月份消防生命通道统计表"
    assert mail.received_at == dt.datetime(2025, 4, 18, 16, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=8)))


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
