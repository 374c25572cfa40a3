"""Mails like the units' for the benchmark, made fast and reproducibly.

A roster of units (the sample roster first, then made-up towns and
departments), one filled table per unit made once, and N mails that reuse
those bytes under varied subjects, dates and Message-IDs:

- about 75 % carry a 10-row .xlsx (openpyxl, figures varied per unit),
- about 8 % the sample .xls (LibreOffice, GBK file name) and 7 % the
  sample .docx, both taken from /work/shared/samples/mails,
- about 10 % hold no table: a text-only mail or a phone photo.

Every mail has a Chinese subject and a text and HTML body quoting the
district's work plan, so a mail is about 30 KB, the size the issue's
anchors were measured with.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import email
import email.policy
import io
import os
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from email.header import Header
from pathlib import Path

import openpyxl

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LIFELINE_SHARED", ROOT.parent / "shared"))
sys.path.insert(0, str(ROOT / "tests"))

import make_tables  # noqa: E402

TZ = dt.timezone(dt.timedelta(hours=8))
INBOX = "report-inbox@example.cn"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLS_TYPE = "application/vnd.ms-excel"
FIRST_MONTH = (2021, 1)
MONTHS = 60
# Share of each kind of mail, in order; what is left holds no table.
KINDS = (("xlsx", 0.75), ("xls", 0.08), ("docx", 0.07), ("text", 0.05))

PLACES = "青石白沙红旗金桥长宁永安新华东湖西岭南山北塘石门桃源柳溪清河凤凰龙泉松林梅岭"
UNIT_KINDS = (("镇", "乡镇街道"), ("乡", "乡镇街道"), ("街道", "乡镇街道"), ("局", "部门"))


@dataclass(frozen=True)
class Unit:
    name: str
    alias: str
    address: str
    kind: str


@dataclass(frozen=True)
class Attached:
    filename: str
    content_type: str
    content: bytes


def units(count: int) -> list[Unit]:
    """``count`` units: the sample roster's, then made-up ones."""
    found = _sample_units()
    places = [a + b for a in _pairs(PLACES) for b in ("", "一", "二")]
    index = 0
    while len(found) < count:
        place = places[index % len(places)]
        suffix, kind = UNIT_KINDS[index // len(places) % len(UNIT_KINDS)]
        name = place + suffix
        if all(unit.name != name for unit in found):
            alias = name + ("人民政府" if suffix in ("镇", "乡") else "办公室")
            found.append(Unit(name, alias, f"unit{index:04d}@example.cn", kind))
        index += 1
    return found[:count]


def write_roster(roster: list[Unit], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["name", "aliases", "emails", "kind"])
        for unit in roster:
            writer.writerow([unit.name, unit.alias, unit.address, unit.kind])


def mails(count: int, roster: list[Unit], seed: int = 7) -> Iterator[tuple[bytes, dt.datetime]]:
    """``count`` raw mails (CRLF) with their reception times, oldest first."""
    rng = random.Random(seed)
    tables = {unit.name: unit_xlsx(unit, rng) for unit in roster}
    shared = _sample_attachments()
    quote = _work_plan()
    moments = sorted(_moment(rng) for _ in range(count))
    for number, moment in enumerate(moments):
        unit = rng.choice(roster)
        kind = _kind(rng)
        yield _mail(number, unit, moment, kind, tables[unit.name], shared, quote, rng), moment


def unit_xlsx(unit: Unit, rng: random.Random) -> bytes:
    """The unit's filled template: ten sub-unit rows, sometimes a 合计 row."""
    rows: list[list[object]] = []
    for index in range(10):
        rows.append([f"{unit.name[:2]}{index + 1}社区", *_figures(rng)])
    if rng.random() < 0.5:
        sums = [sum(row[col] for row in rows) for col in range(1, 12)]  # type: ignore[misc]
        rows.append(["合计", *[round(value, 1) for value in sums]])
    workbook = openpyxl.Workbook()
    make_tables.write_table(
        workbook.active, 1, 1, rows, ("单位",),
        (make_tables.TITLE, f"报送单位：{unit.name}"),
    )
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _figures(rng: random.Random) -> list[float | int]:
    found, obstacles, barriers = rng.randint(0, 12), rng.randint(0, 9), rng.randint(0, 5)
    removed = rng.randint(0, barriers)
    area = round(removed * rng.uniform(1, 8), 1) if removed else 0
    return [
        rng.randint(5, 60), found, rng.randint(0, found), barriers, removed, area,
        rng.randint(0, 6), obstacles, rng.randint(0, obstacles),
        rng.randint(0, 8), rng.randint(0, 8),
    ]


def _moment(rng: random.Random) -> dt.datetime:
    month_index = rng.randrange(MONTHS)
    year = FIRST_MONTH[0] + (FIRST_MONTH[1] - 1 + month_index) // 12
    month = (FIRST_MONTH[1] - 1 + month_index) % 12 + 1
    return dt.datetime(
        year, month, rng.randint(1, 28), rng.randint(8, 18), rng.randrange(60),
        rng.randrange(60), tzinfo=TZ,
    )


def _kind(rng: random.Random) -> str:
    draw = rng.random()
    for kind, share in KINDS:
        if draw < share:
            return kind
        draw -= share
    return "photo"


def _mail(
    number: int, unit: Unit, moment: dt.datetime, kind: str, xlsx: bytes,
    shared: dict[str, Attached], quote: str, rng: random.Random,
) -> bytes:
    month = f"{moment.year}年{moment.month}月份"
    subject = f"{unit.name}{month}打通消防“生命通道”行动推进统计表"
    attached = _attachment(kind, unit, month, xlsx, shared, rng)
    body = f"专班：\r\n    您好！{'附件是' + subject + '，请查收。' if attached else '本月情况见正文。'}\r\n\r\n{unit.name}\r\n{moment:%Y年%m月%d日}\r\n"
    html = f"<html><body><div>专班：</div><div>您好！{subject}。</div><div>{unit.name}</div><blockquote>{quote}</blockquote></body></html>"
    boundary = f"----=_001_NextPart{number:012d}_=----"
    inner = f"----=_002_NextPart{number:012d}_=----"
    head = (
        f"Received: from mail.example.com (unknown [198.51.100.{number % 250 + 1}])\r\n"
        f"\tby mx1.example.cn (Coremail) with SMTP id b{number:08x};\r\n"
        f"\t{_rfc2822(moment)}\r\n"
        f"Date: {_rfc2822(moment - dt.timedelta(seconds=4))}\r\n"
        f"From: \"{Header(unit.name + '办公室', 'utf-8').encode()}\" <{unit.address}>\r\n"
        f"To: \"{Header('生命通道专班', 'utf-8').encode()}\" <{INBOX}>\r\n"
        f"Subject: {Header(subject, 'utf-8').encode(linesep=chr(13) + chr(10))}\r\n"
        "X-Mailer: Foxmail 7.2.25.228[cn]\r\n"
        "Mime-Version: 1.0\r\n"
        f"Message-ID: <{moment:%Y%m%d%H%M%S}{number:08d}@bench.example.com>\r\n"
        f"Content-Type: multipart/mixed;\r\n\tboundary=\"{boundary}\"\r\n\r\n"
        "This is a multi-part message in MIME format.\r\n\r\n"
    )
    parts = [
        f"--{boundary}\r\nContent-Type: multipart/alternative;\r\n\tboundary=\"{inner}\"\r\n\r\n"
        + _part(inner, "text/plain;\r\n\tcharset=\"utf-8\"", (body + "\r\n" + quote).encode())
        + _part(inner, "text/html;\r\n\tcharset=\"utf-8\"", html.encode())
        + f"--{inner}--\r\n\r\n"
    ]
    if attached:
        name = Header(attached.filename, "utf-8").encode()
        parts.append(_part(
            boundary,
            f"{attached.content_type};\r\n\tname=\"{name}\"",
            attached.content,
            f"Content-Disposition: attachment;\r\n\tfilename=\"{name}\"\r\n",
        ))
    return (head + "".join(parts) + f"--{boundary}--\r\n").encode()


def _attachment(
    kind: str, unit: Unit, month: str, xlsx: bytes, shared: dict[str, Attached],
    rng: random.Random,
) -> Attached | None:
    if kind == "xlsx":
        return Attached(f"{unit.name}{month}统计表.xlsx", XLSX_TYPE, xlsx)
    if kind in shared:
        sample = shared[kind]
        return Attached(f"{unit.name}{month}统计表.{kind}", sample.content_type, sample.content)
    if kind == "photo":
        photo = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + rng.randbytes(18_000) + b"\xff\xd9"
        return Attached(f"IMG_{rng.randrange(10**7):07d}.jpg", "image/jpeg", photo)
    return None


def _part(boundary: str, content_type: str, content: bytes, extra: str = "") -> str:
    encoded = base64.encodebytes(content).decode().replace("\n", "\r\n")
    return (
        f"--{boundary}\r\nContent-Type: {content_type}\r\n"
        f"Content-Transfer-Encoding: base64\r\n{extra}\r\n{encoded}\r\n"
    )


def _rfc2822(moment: dt.datetime) -> str:
    return email.utils.format_datetime(moment)


def _sample_units() -> list[Unit]:
    path = SHARED / "samples" / "roster.csv"
    with path.open(encoding="utf-8") as rows:
        return [
            Unit(row["name"], row["aliases"], row["emails"].split("|")[0], row["kind"])
            for row in csv.DictReader(rows)
        ]


def _sample_attachments() -> dict[str, Attached]:
    """The .xls of sample p02 and the .docx of sample p03."""
    found: dict[str, Attached] = {}
    for sample, kind in (("p02-xls-gbk-filename-total-row", "xls"), ("p03-docx-rfc2231-filename", "docx")):
        raw = (SHARED / "samples" / "mails" / f"{sample}.eml").read_bytes()
        message = email.message_from_bytes(raw, policy=email.policy.default)
        for part in message.walk():
            filename = part.get_filename() or ""
            if filename.lower().endswith("." + kind):
                found[kind] = Attached(filename, part.get_content_type(), part.get_payload(decode=True))
    return found


def _work_plan() -> str:
    """The quoted notice a unit answers, as mail clients quote it."""
    text = (SHARED / "domain" / "work-plan.txt").read_text(encoding="utf-8")
    return "\r\n".join(line.strip() for line in text.splitlines()[:14] if line.strip())


def _pairs(text: str) -> list[str]:
    return [text[index : index + 2] for index in range(0, len(text) - 1, 2)]


if __name__ == "__main__":
    roster = units(200)
    sizes = [len(raw) for raw, _ in mails(int(sys.argv[1]) if len(sys.argv) > 1 else 1000, roster)]
    print(f"{len(sizes)} mails, mean {sum(sizes) / len(sizes) / 1024:.1f} KB")
