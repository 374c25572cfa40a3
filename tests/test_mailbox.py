"""The IMAP client against a real, private Dovecot."""

import email
import email.policy
import email.utils
import logging
import re
import socket
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from dovecot import Dovecot
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from ingest.mailbox import Mailbox, MailboxSettings
from lifeline.errors import MailboxError


def settings_for(server: Dovecot, **changes: object) -> MailboxSettings:
    settings = MailboxSettings(
        host=server.host,
        port=server.port,
        tls="none",
        user=server.user,
        password=server.password,
        timeout_seconds=5,
    )
    return replace(settings, **changes)


def received_at(raw: bytes) -> datetime:
    """The date of the topmost Received header: when our server got it."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    topmost = message.get_all("Received")[0]
    return email.utils.parsedate_to_datetime(topmost.rpartition(";")[2].strip())


def as_stored(raw: bytes) -> bytes:
    """The mail as Dovecot keeps it: a bare CR becomes CRLF on APPEND.

    p05, p09 and p10 have CR CR LF line ends in their text parts; every
    other sample is stored byte for byte.
    """
    return re.sub(rb"\r(?!\n)", b"\r\n", raw)


def commands(protocol_log: str) -> list[str]:
    """The command names in a protocol log, in the order they were sent."""
    return re.findall(r"^\S+ ([A-Z]+)\b", protocol_log, re.MULTILINE)


class WithoutId(IMAPClient):
    """Dovecot as a server that does not offer the ID extension."""

    def capabilities(self) -> tuple[bytes, ...]:
        return tuple(name for name in super().capabilities() if name != b"ID")


class QqWithImapOff(IMAPClient):
    """Dovecot answering LOGIN as qq.com does for an account without IMAP."""

    def login(self, username: str, password: str) -> bytes:
        raise LoginError(
            "b'Login fail. Account is abnormal, service is not open, password "
            "is incorrect, login frequency limited, or system is busy.'"
        )


class NeteaseUnsafeLogin(IMAPClient):
    """Dovecot answering SELECT as 163.com does when it distrusts the login."""

    def select_folder(self, folder: str, readonly: bool = False) -> dict:
        raise IMAPClientError(
            "select failed: SELECT Unsafe Login. Please contact kefu@188.com for help"
        )


@pytest.fixture
def samples(shared_dir: Path) -> list[bytes]:
    """The twelve sample mails, as the inbox received them."""
    paths = sorted((shared_dir / "samples" / "mails").glob("*.eml"))
    assert len(paths) == 12
    return [path.read_bytes() for path in paths]


@pytest.fixture
def filled(dovecot: Dovecot, samples: list[bytes]) -> Dovecot:
    """The private Dovecot with the samples delivered at their Received date."""
    dovecot.deliver((raw, received_at(raw)) for raw in samples)
    return dovecot


@pytest.fixture
def mailbox(filled: Dovecot) -> Iterator[Mailbox]:
    with Mailbox(settings_for(filled, batch_size=5)) as opened:
        yield opened


@pytest.mark.dovecot
def test_open_selects_the_folder(dovecot: Dovecot) -> None:
    """open() logs in and selects; UIDVALIDITY is the server's."""
    with Mailbox(settings_for(dovecot)) as mailbox:
        assert mailbox.uidvalidity == dovecot.status()[b"UIDVALIDITY"]
        assert mailbox.account == f"{dovecot.user}@{dovecot.host}"
        assert mailbox.folder == "INBOX"
        assert mailbox.all_uids() == []
        mailbox.noop()


@pytest.mark.dovecot
def test_id_is_sent_before_the_folder_is_selected(dovecot: Dovecot) -> None:
    """163.com refuses SELECT from a client that has not sent IMAP ID."""
    with Mailbox(settings_for(dovecot)):
        pass

    sent = commands(dovecot.protocol_log())
    assert sent[:2] == ["ID", "EXAMINE"]
    assert '"name" "lifeline"' in dovecot.protocol_log()


@pytest.mark.dovecot
def test_no_id_to_a_server_without_the_extension(dovecot: Dovecot) -> None:
    with Mailbox(settings_for(dovecot), client_factory=WithoutId):
        pass

    assert commands(dovecot.protocol_log())[:1] == ["EXAMINE"]


@pytest.mark.dovecot
def test_fetch_returns_each_mail_byte_identical(
    mailbox: Mailbox, samples: list[bytes]
) -> None:
    """Raw bytes, size and INTERNALDATE come back as the server holds them."""
    fetched = list(mailbox.fetch(mailbox.all_uids()))

    assert [mail.uid for mail in fetched] == list(range(1, 13))
    assert [mail.raw for mail in fetched] == [as_stored(raw) for raw in samples]
    assert [mail.size for mail in fetched] == [len(mail.raw) for mail in fetched]
    assert [mail.internaldate for mail in fetched] == [
        received_at(raw) for raw in samples
    ]
    assert all(mail.internaldate.utcoffset() is not None for mail in fetched)


@pytest.mark.dovecot
def test_fetch_goes_in_batches(filled: Dovecot, mailbox: Mailbox) -> None:
    """Twelve mails with batch_size 5 take three FETCH commands."""
    list(mailbox.fetch(mailbox.all_uids()))

    fetches = re.findall(r"UID FETCH (\S+) \(BODY\.PEEK\[\]", filled.protocol_log())
    assert fetches == ["1,2,3,4,5", "6,7,8,9,10", "11,12"]


@pytest.mark.dovecot
def test_uids_after_ignores_the_star_match(filled: Dovecot, mailbox: Mailbox) -> None:
    """UID 13:* matches UID 12 on the server; uids_after(12) must not."""
    with IMAPClient(filled.host, filled.port, ssl=False) as client:
        client.login(filled.user, filled.password)
        client.select_folder("INBOX", readonly=True)
        assert client.search(["UID", "13:*"]) == [12]

    assert mailbox.uids_after(12) == []
    assert mailbox.uids_after(9) == [10, 11, 12]
    assert mailbox.uids_after(0) == list(range(1, 13))


@pytest.mark.dovecot
def test_fetching_marks_nothing_seen(filled: Dovecot, mailbox: Mailbox) -> None:
    """The mailbox is shared with people: lifeline must leave flags alone."""
    list(mailbox.fetch(mailbox.all_uids()))
    mailbox.message_ids(mailbox.all_uids())

    flags = filled.flags()
    assert len(flags) == 12
    assert not any(b"\\Seen" in mail_flags for mail_flags in flags.values())
    assert "STORE" not in filled.protocol_log()


@pytest.mark.dovecot
def test_message_ids_survive_a_new_uidvalidity(
    filled: Dovecot, samples: list[bytes]
) -> None:
    """After UIDVALIDITY changes, Message-IDs still name the same mails."""
    with Mailbox(settings_for(filled)) as before:
        old_validity = before.uidvalidity
        old_ids = before.message_ids(before.all_uids())

    filled.renew_uidvalidity()

    with Mailbox(settings_for(filled)) as after:
        assert after.uidvalidity != old_validity
        new_ids = after.message_ids(after.all_uids())
    expected = {
        email.message_from_bytes(raw)["Message-ID"].strip() for raw in samples
    }
    assert set(old_ids.values()) == set(new_ids.values()) == expected


@pytest.mark.dovecot
def test_message_id_is_none_when_the_header_is_missing(dovecot: Dovecot) -> None:
    dovecot.append(b"Subject: no id\r\n\r\nbody\r\n")

    with Mailbox(settings_for(dovecot)) as mailbox:
        assert mailbox.message_ids([1]) == {1: None}


@pytest.mark.dovecot
def test_restart_drops_the_connection_then_it_opens_again(filled: Dovecot) -> None:
    """A server restart surfaces as MailboxError; a new open() works."""
    mailbox = Mailbox(settings_for(filled))
    mailbox.open()
    filled.stop()
    filled.start()

    with pytest.raises(MailboxError, match="mailbox report-inbox@127.0.0.1/INBOX"):
        mailbox.noop()
    mailbox.close()

    mailbox.open()
    assert mailbox.uids_after(11) == [12]
    mailbox.close()


@pytest.mark.dovecot
def test_wrong_password_names_the_authorisation_code(dovecot: Dovecot) -> None:
    with pytest.raises(MailboxError, match="LOGIN failed.*授权码"):
        Mailbox(settings_for(dovecot, password="web-password")).open()


@pytest.mark.dovecot
def test_non_ascii_password_is_refused_before_login(dovecot: Dovecot) -> None:
    with pytest.raises(MailboxError, match="must be ASCII.*授权码"):
        Mailbox(settings_for(dovecot, password="网页密码")).open()


@pytest.mark.dovecot
def test_imap_switched_off_says_where_to_switch_it_on(dovecot: Dovecot) -> None:
    with pytest.raises(MailboxError, match="switched off.*POP3/SMTP/IMAP.*授权码"):
        Mailbox(settings_for(dovecot), client_factory=QqWithImapOff).open()


@pytest.mark.dovecot
def test_unsafe_login_is_explained(dovecot: Dovecot) -> None:
    with pytest.raises(MailboxError, match="Unsafe Login.*turn on the IMAP/SMTP"):
        Mailbox(settings_for(dovecot), client_factory=NeteaseUnsafeLogin).open()


@pytest.mark.dovecot
def test_missing_folder_lists_the_folders_there_are(dovecot: Dovecot) -> None:
    dovecot.create_folder("Reports")

    with pytest.raises(MailboxError) as raised:
        Mailbox(settings_for(dovecot, folder="统计表")).open()

    assert "'统计表' does not exist" in str(raised.value)
    assert "INBOX, Reports" in str(raised.value)


def test_closed_port_is_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = MailboxSettings(
        host="127.0.0.1", port=port, tls="none", user="u", password="p"
    )

    with pytest.raises(MailboxError, match=f"127.0.0.1:{port} refused"):
        Mailbox(settings).open()


def test_unknown_host_is_named() -> None:
    settings = MailboxSettings(
        host="imap.nowhere.invalid", port=993, tls="ssl", user="u", password="p"
    )

    with pytest.raises(MailboxError, match="unknown host 'imap.nowhere.invalid'"):
        Mailbox(settings).open()


def test_silent_server_times_out() -> None:
    """A port that accepts but never greets, as 993 does for plain IMAP."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        settings = MailboxSettings(
            host="127.0.0.1",
            port=silent.getsockname()[1],
            tls="starttls",
            user="u",
            password="p",
            timeout_seconds=0.3,
        )

        with pytest.raises(MailboxError, match=r"no answer .* within 0.3 s.*993"):
            Mailbox(settings).open()


@pytest.mark.dovecot
def test_ssl_on_a_plain_port_explains_the_ports(dovecot: Dovecot) -> None:
    with pytest.raises(MailboxError, match='port 993 expects tls = "ssl"'):
        Mailbox(settings_for(dovecot, tls="ssl")).open()


@pytest.mark.dovecot
def test_tls_checks_the_certificate() -> None:
    """An untrusted certificate is refused; with ca_file both TLS modes work."""
    with Dovecot(tls=True) as server:
        implicit = settings_for(server, tls="ssl", port=server.tls_port)
        with pytest.raises(MailboxError, match="not trusted.*ca_file"):
            Mailbox(implicit).open()

        trusted = str(server.cert_path)
        for settings in (
            replace(implicit, ca_file=trusted),
            settings_for(server, tls="starttls", ca_file=trusted),
        ):
            with Mailbox(settings) as mailbox:
                assert mailbox.all_uids() == []


@pytest.mark.dovecot
def test_password_never_reaches_the_log(
    filled: Dovecot, caplog: pytest.LogCaptureFixture
) -> None:
    """imapclient logs every command at DEBUG; LOGIN must be redacted."""
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-authcode-7731"

    with Mailbox(settings_for(filled)) as mailbox:
        list(mailbox.fetch([1]))
    with pytest.raises(MailboxError):
        Mailbox(settings_for(filled, password=wrong)).open()

    assert "LOGIN **REDACTED**" in caplog.text
    assert filled.password not in caplog.text
    assert wrong not in caplog.text
    assert "mailbox report-inbox@127.0.0.1/INBOX: opened" in caplog.text
