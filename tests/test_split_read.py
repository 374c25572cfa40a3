"""A mail read from the parts a real Dovecot split it into decodes exactly
as its raw bytes do; where the two could cut it differently, the raw mail
is parsed; a batch costs one FETCH, then one per structure."""

from __future__ import annotations

import email
import email.policy
import os
import re
import sys
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import make_mails
import pytest
from dovecot import Dovecot, _mail_owner, dovecot_binary
from imapclient import IMAPClient
from imapclient.exceptions import ProtocolError

from ingest.mail import decode_mail
from ingest.mailbox import FetchedMail, Mailbox, MailboxSettings
from ingest.split import Leaf, Multipart, as_message

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import mailgen  # noqa: E402

pytestmark = pytest.mark.dovecot

LIMIT = 200_000
SHARED = Path(
    os.environ.get("LIFELINE_SHARED", Path(__file__).resolve().parents[2] / "shared")
)
NAME = make_mails.TABLE_NAME
XLS_TYPE = "Content-Type: application/vnd.ms-excel; name=t.xls"
BASE64 = "Content-Transfer-Encoding: base64"
BENCH_KINDS = {
    "xlsx": mailgen.XLSX_TYPE.encode(),
    "xls": mailgen.XLS_TYPE.encode(),
    "docx": mailgen.DOCX_TYPE.encode(),
    "photo": b"image/jpeg",
}


# --- the mails ------------------------------------------------------------------


def samples() -> dict[str, bytes]:
    paths = sorted((SHARED / "samples" / "mails").glob("*.eml"))
    return {path.stem: path.read_bytes() for path in paths}


def bench_mails() -> dict[str, bytes]:
    """The first mail of each kind the benchmark sends, text-only too."""
    found: dict[str, bytes] = {}
    for raw, _ in mailgen.mails(200, mailgen.units(5)):
        kinds = [kind for kind, mark in BENCH_KINDS.items() if mark in raw]
        found.setdefault(f"bench-{kinds[0] if kinds else 'text'}", raw)
    assert len(found) == 5, sorted(found)
    return found


def qp_part(headers: list[str], text: bytes) -> bytes:
    encoding = "Content-Transfer-Encoding: quoted-printable"
    return make_mails.part([*headers, encoding], text)


def hard_mails() -> dict[str, bytes]:
    """Packagings that have tripped decoders: names in every encoding,
    quoted-printable with trailing blanks, broken base64, an attachment over
    LIMIT, nesting, archives, Outlook's winmail.dat, a bare file."""
    table = make_mails.tiny_xlsx()
    text = make_mails.text_part("附件是统计表，请查收。")
    html = make_mails.text_part("<p>统计表见附件</p>", "html")
    alternative = make_mails.multipart(
        [text, html], "alternative", make_mails.INNER_BOUNDARY
    )
    nested = make_mails.part([f"Content-Type: {alternative[0]}"], alternative[1])
    attached = make_mails.file_part(
        f'filename="{make_mails.rfc2047(NAME, "utf-8")}"', table
    )
    raw_gbk = make_mails.mail_with_name('filename="PLACEHOLDER"', table)
    broken = make_mails.base64_body(table).replace(b"A", b"!", 3)[:-7]
    # Quoted-printable as mailers write it: blanks at line ends left bare.
    csv = "".join(
        f"={byte:02X}" if byte > 127 else chr(byte)
        for byte in "单位,检查\r\n城关,12   \r\n".encode("gbk")
    ).encode()
    return {
        "rfc2231-name": make_mails.mail_with_name(
            make_mails.rfc2231("filename", NAME, section=4), table
        ),
        "gbk-split-name": make_mails.mail_with_name(
            f'filename="{make_mails.rfc2047(NAME, "gbk", chunk=5)}"', table
        ),
        "gbk-raw-name": raw_gbk.replace(b"PLACEHOLDER", NAME.encode("gbk")),
        "quoted-printable": make_mails.mail(
            [
                qp_part(
                    ['Content-Type: text/plain; charset="gbk"'],
                    b"=B8=BD=BC=FE=CA=C7  \r\nsoft =\r\nbreak=ZZ\r\n",
                ),
                qp_part(
                    ["Content-Type: text/csv; charset=gbk; name=t.csv"],
                    csv,
                ),
            ]
        ),
        "broken-base64": make_mails.mail(
            [text, make_mails.part([XLS_TYPE, BASE64], broken)]
        ),
        "oversized": make_mails.mail_with_name(
            'filename="big.xlsx"', table + os.urandom(LIMIT)
        ),
        "nested-alternative": make_mails.mail([nested, attached]),
        "zip-gbk": make_mails.mail_with_name(
            'filename="a.zip"', make_mails.zip_with_names({NAME: table})
        ),
        "winmail": make_mails.mail_with_name(
            'filename="winmail.dat"', make_mails.winmail(NAME.encode("gbk"), table)
        ),
        "whole-body": make_mails.whole_body_mail(NAME, table),
    }


def forwards() -> dict[str, bytes]:
    table = make_mails.tiny_xlsx()
    inner = make_mails.inner_mail("原主题", NAME, table)
    return {
        "forward": make_mails.forwarded(inner),
        "forward-base64": make_mails.forwarded(inner, encode=True),
    }


HEAD = (
    b"From: a@example.cn\r\nSubject: t\r\nMessage-ID: <cut@example.cn>\r\n"
    b"MIME-Version: 1.0\r\n"
)
TEXT = b"Content-Type: text/plain\r\n\r\nhello\r\n"
OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(90)
FILE = make_mails.part([XLS_TYPE, BASE64], make_mails.base64_body(OLE2))


def multipart(body: bytes, boundary: bytes = b"XX") -> bytes:
    content_type = b'Content-Type: multipart/mixed; boundary="' + boundary + b'"'
    return HEAD + content_type + b"\r\n\r\n" + body


def cut_otherwise() -> dict[str, bytes]:
    """Mails Dovecot and the email package cut at different lines (each
    found by trying): Dovecot takes any line that starts with a boundary,
    matches only 80 characters of one, makes up a part for a multipart
    without parts, keeps the last line end of an unclosed multipart; the
    email package drops header lines after one that is no header."""
    long = b"B" * 71
    return {
        "not-closed": multipart(b"--XX\r\n" + TEXT + b"--XX\r\n" + FILE),
        "no-parts": multipart(b"no boundary at all\r\n" + TEXT),
        "boundary-with-more": multipart(
            b"--XX\r\n" + TEXT + b"--XXmore\r\n" + TEXT
            + b"--XX\r\n" + FILE + b"--XX--\r\n"
        ),
        "boundary-prefix": multipart(
            b"--XX_1\r\nContent-Type: multipart/alternative; boundary=XX\r\n\r\n"
            b"--XX\r\n" + TEXT + b"--XX_1\r\n" + FILE + b"--XX_1--\r\n",
            b"XX_1",
        ),
        "boundary-71": multipart(
            b"--" + long + b"\r\n" + TEXT + b"--" + long + b"\r\n" + FILE
            + b"--" + long + b"--\r\n",
            long,
        ),
        "boundary-quoted-blank": multipart(
            b"--XX \r\n" + TEXT + b"--XX --\r\n", b"XX "
        ),
        "part-without-parts": multipart(
            b"--XX\r\nContent-Type: multipart/alternative; boundary=YY\r\n\r\n"
            b"just text\r\n--XX\r\n" + FILE + b"--XX--\r\n"
        ),
        "part-header-runs-on": multipart(
            b"--XX\r\nContent-Type: text/plain\r\nno header\r\n\r\nx\r\n--XX\r\n"
            + FILE + b"--XX--\r\n"
        ),
        "top-header-runs-on": (
            HEAD + b"no header\r\nContent-Type: text/plain\r\n\r\nx\r\n"
        ),
    }


def bare_cr() -> dict[str, bytes]:
    """Stored as they came (Dovecot's APPEND would end a bare CR with LF):
    the email package also ends a line at a bare CR, Dovecot does not."""
    return {
        "bare-cr": multipart(
            b"--XX\r\n" + TEXT.replace(b"hello", b"hel\rlo\r--XX")
            + b"--XX\r\n" + FILE + b"--XX--\r\n"
        ),
    }


# --- fetched from Dovecot ---------------------------------------------------------


def settings_for(server: Dovecot, batch_size: int = 500) -> MailboxSettings:
    return MailboxSettings(
        host=server.host, port=server.port, tls="none", user=server.user,
        password=server.password, timeout_seconds=10, batch_size=batch_size,
    )


def store_as_files(server: Dovecot, mails: dict[str, bytes]) -> None:
    """Put mails into the Maildir byte for byte, as a delivery agent does."""
    uid, gid = _mail_owner()
    for sub in ("cur", "new", "tmp"):
        (server.maildir / sub).mkdir(exist_ok=True)
        os.chown(server.maildir / sub, uid, gid)
    for number, raw in enumerate(mails.values()):
        path = server.maildir / "cur" / f"{1700000000 + number}.M{number}P1.t:2,"
        path.write_bytes(raw)
        os.chown(path, uid, gid)


@pytest.fixture(scope="module")
def fetched() -> Iterator[dict[str, FetchedMail]]:
    """Every mail above, in one Dovecot, fetched once by Mailbox.fetch.

    Module-wide, so it is set up before conftest's check of the dovecot
    marker: it makes the same check itself.
    """
    if dovecot_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("dovecot is not installed")
        pytest.skip("dovecot is not installed")
    files = bare_cr()
    appended = {
        **samples(), **bench_mails(), **hard_mails(), **forwards(), **cut_otherwise()
    }
    with Dovecot() as server:
        store_as_files(server, files)
        server.deliver((raw, None) for raw in appended.values())
        with Mailbox(settings_for(server)) as mailbox:
            mails = list(mailbox.fetch(mailbox.all_uids()))
    # Dovecot numbers the files first, in name order, then the APPENDs.
    yield dict(zip([*files, *appended], mails, strict=True))


def tree(message: Message) -> tuple[object, ...]:
    """Everything of a parsed mail the decoding can look at."""
    if message.is_multipart():
        parts = [tree(part) for part in message.get_payload()]
        return (list(message.raw_items()), message.defects, parts)
    return (list(message.raw_items()), message.get_payload())


def whole(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=email.policy.compat32)


# --- tests --------------------------------------------------------------------------


def test_every_mail_decodes_alike_from_its_parts(
    fetched: dict[str, FetchedMail],
) -> None:
    """Sender, subject, Message-ID, dates, body, attachments with their
    names and bytes, problems and auto-reply: all equal, mail by mail."""
    differ = [
        name
        for name, mail in fetched.items()
        if decode_mail(mail.raw, max_attachment_bytes=LIMIT)
        != decode_mail(mail.raw, split=mail.parts, max_attachment_bytes=LIMIT)
    ]

    assert differ == []


def test_samples_bench_and_hard_mails_are_split(
    fetched: dict[str, FetchedMail],
) -> None:
    """Except the forward, every such mail is read from its parts, and the
    message built from them is the one the raw mail parses into."""
    names = [*samples(), *bench_mails(), *hard_mails()]
    names.remove("p07-forwarded-rfc822")
    not_split = []
    for name in names:
        mail = fetched[name]
        built = as_message(mail.parts, mail.raw) if mail.parts else None
        if built is None or tree(built) != tree(whole(mail.raw)):
            not_split.append(name)

    assert not_split == []


def test_a_decoded_split_mail_has_its_attachments(
    fetched: dict[str, FetchedMail],
) -> None:
    """The equality above is not of two empty results."""
    decoded = {
        name: decode_mail(mail.raw, split=mail.parts, max_attachment_bytes=LIMIT)
        for name, mail in fetched.items()
    }

    assert [a.filename for a in decoded["rfc2231-name"].attachments] == [NAME]
    assert [a.filename for a in decoded["gbk-raw-name"].attachments] == [NAME]
    assert decoded["quoted-printable"].attachments[0].content.endswith(b"12   \r\n")
    assert [p.code for p in decoded["oversized"].problems] == ["oversized-attachment"]
    assert [a.container for a in decoded["winmail"].attachments] == ["winmail.dat"]
    assert decoded["bench-text"].body_text and not decoded["bench-text"].attachments


def test_forwards_are_read_whole(fetched: dict[str, FetchedMail]) -> None:
    for name in ("p07-forwarded-rfc822", "forward", "forward-base64"):
        assert fetched[name].parts is None, name


def test_where_the_cut_could_differ_the_raw_mail_is_parsed(
    fetched: dict[str, FetchedMail],
) -> None:
    split_anyway = [
        name
        for name in [*cut_otherwise(), *bare_cr()]
        if fetched[name].parts is not None
        and as_message(fetched[name].parts, fetched[name].raw) is not None
    ]

    assert split_anyway == []


def test_a_batch_costs_one_fetch_then_one_per_structure(dovecot: Dovecot) -> None:
    """Batches of four: each FETCH of parts names the batch's mails with
    the same parts; nothing is marked seen."""
    mails = list(bench_mails().values()) * 2
    dovecot.deliver((raw, None) for raw in mails)

    with Mailbox(settings_for(dovecot, batch_size=4)) as mailbox:
        fetched = list(mailbox.fetch(mailbox.all_uids()))

    expected = []
    for start in range(0, len(mails), 4):
        uids = range(start + 1, min(start + 4, len(mails)) + 1)
        expected.append(",".join(map(str, uids)))
        groups: dict[object, list[str]] = {}
        for uid in uids:
            groups.setdefault(_sections(whole(mails[uid - 1])), []).append(str(uid))
        expected += [",".join(group) for group in groups.values()]
    fetches = re.findall(r"UID FETCH (\S+) ", dovecot.protocol_log())
    assert fetches == expected
    assert all(mail.parts is not None for mail in fetched)
    assert not any(b"\\Seen" in flags for flags in dovecot.flags().values())


def _sections(message: Message) -> object:
    """Which parts a mail has (its IMAP section numbers), by the email
    package: the mails whose parts are fetched together."""
    if message.is_multipart():
        return tuple(_sections(part) for part in message.get_payload())
    return None


class RefusesTextOnly(IMAPClient):
    """Dovecot refusing the parts of one structure: the request for the
    text-only mails' parts names a section the server answers BAD to."""

    def fetch(
        self, messages: list[int], data: list[bytes], modifiers: object = None
    ) -> dict[int, dict[bytes, object]]:
        if b"BODY.PEEK[1.2]" in data and b"BODY.PEEK[2]" not in data:
            data = [b"BODY.PEEK[x]"]
        return super().fetch(messages, data, modifiers)


class StructureUnreadable(IMAPClient):
    """A server whose BODYSTRUCTURE imapclient cannot parse."""

    def fetch(
        self, messages: list[int], data: list[bytes], modifiers: object = None
    ) -> dict[int, dict[bytes, object]]:
        if b"BODYSTRUCTURE" in data:
            raise ProtocolError("unexpected BODYSTRUCTURE")
        return super().fetch(messages, data, modifiers)


def test_refused_parts_leave_those_mails_whole(dovecot: Dovecot) -> None:
    mails = bench_mails()
    dovecot.deliver((raw, None) for raw in mails.values())

    with Mailbox(settings_for(dovecot), client_factory=RefusesTextOnly) as mailbox:
        fetched = dict(zip(mails, mailbox.fetch(mailbox.all_uids()), strict=True))

    whole_read = [name for name, mail in fetched.items() if mail.parts is None]
    assert whole_read == ["bench-text"]
    assert [mail.raw for mail in fetched.values()] == list(mails.values())


def test_an_unreadable_structure_leaves_the_batch_whole(dovecot: Dovecot) -> None:
    mails = bench_mails()
    dovecot.deliver((raw, None) for raw in mails.values())

    with Mailbox(settings_for(dovecot), client_factory=StructureUnreadable) as mailbox:
        fetched = list(mailbox.fetch(mailbox.all_uids()))

    assert [mail.raw for mail in fetched] == list(mails.values())
    assert all(mail.parts is None for mail in fetched)


def claimed(content_type: bytes, leaf: bytes = b"text/plain") -> Multipart:
    """A server's answer for a mail of one part at boundary XX, where the
    mail's own header says ``content_type`` and the part's says ``leaf``."""
    part = Leaf(b"Content-Type: " + leaf + b"\r\n\r\n", b"hello")
    header = HEAD + b"Content-Type: " + content_type + b"\r\n\r\n"
    return Multipart(header, "XX", (part,))


@pytest.mark.parametrize(
    ("split", "why"),
    [
        (claimed(b"text/plain; boundary=XX"), "no multipart to the email package"),
        (claimed(b"multipart/digest; boundary=XX"), "a digest: its parts are mails"),
        (claimed(b"multipart/mixed; boundary=YY"), "another boundary"),
        (claimed(b"multipart/mixed; boundary=XX", b"message/rfc822"), "a forward"),
    ],
)
def test_parts_the_email_package_reads_otherwise_are_refused(
    split: Multipart, why: str
) -> None:
    """What a server could answer if it read a header otherwise than the
    email package (Dovecot did not, in any mail of this file)."""
    raw = split.header + b"--XX\r\n" + TEXT + b"--XX--\r\n"

    assert as_message(split, raw) is None, why
