"""One read-only connection to the campaign mailbox.

The daemon logs in, identifies itself, selects the folder read-only and asks
for mails by UID. Nothing is ever written to the mailbox: no flags, no moves,
no deletes, so a unit's mail looks untouched to anyone else reading it.

Errors from imapclient, sockets and TLS are turned into ``MailboxError`` here,
each with a message that says what to change in the configuration.
"""

import email.parser
import logging
import select
import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import TracebackType

from imapclient import IMAPClient, SocketTimeout
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from ingest import split
from ingest.split import SplitMail
from lifeline import __version__
from lifeline.errors import ConfigError, MailboxError

logger = logging.getLogger(__name__)

TLS_MODES = ("ssl", "starttls", "none")
CLIENT_ID = {"name": "lifeline", "version": __version__, "vendor": "lifeline"}

MAIL_ITEMS = [b"BODY.PEEK[]", b"INTERNALDATE", b"RFC822.SIZE"]
# Asked for with the mails: what the server splits them by (ingest.split).
STRUCTURE_ITEM = b"BODYSTRUCTURE"
MESSAGE_ID_ITEM = b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"
# The server names the data it returns without the .PEEK.
MESSAGE_ID_KEY = b"BODY[HEADER.FIELDS (MESSAGE-ID)]"

LOGIN_ADVICE = (
    "check user and password; for 163.com use the 授权码 (client authorisation "
    "code), not the web password"
)
IMAP_OFF_ADVICE = (
    "IMAP access is switched off for this account: turn on the IMAP/SMTP "
    "service in the mailbox's web settings (设置 → POP3/SMTP/IMAP) and use "
    "the 授权码 it gives as the password"
)
UNSAFE_LOGIN_ADVICE = (
    "163.com/126.com call this an 'Unsafe Login': lifeline sent its IMAP ID, "
    "so the account itself is not allowed in; turn on the IMAP/SMTP service in "
    "the mailbox's web settings and log in with its 授权码"
)
TLS_ADVICE = 'port 993 expects tls = "ssl", 143 expects "starttls"'

# Words a server uses when it refuses LOGIN because IMAP is off rather than
# because the password is wrong (163.com and qq.com answer in either language).
IMAP_OFF_HINTS = ("not enabled", "not open", "disabled", "未开启", "未开通")


@dataclass(frozen=True)
class MailboxSettings:
    """Where the campaign mailbox is and how to log in; built from [mailbox]."""

    host: str
    port: int
    tls: str
    user: str
    password: str = field(repr=False)
    folder: str = "INBOX"
    timeout_seconds: float = 30.0
    batch_size: int = 500
    ca_file: str | None = None

    def __post_init__(self) -> None:
        if self.tls not in TLS_MODES:
            raise ConfigError(
                f"mailbox.tls: {self.tls!r} is not one of {', '.join(TLS_MODES)}"
            )
        if self.batch_size < 1:
            raise ConfigError("mailbox.batch_size: must be at least 1")


@dataclass(frozen=True)
class FetchedMail:
    """One mail as the server holds it, with the time it was received
    and, where the server could split it, its parts (ingest.split)."""

    uid: int
    internaldate: datetime
    raw: bytes
    size: int
    parts: SplitMail | None = None


class Mailbox:
    """One logged-in, selected connection to the campaign mailbox."""

    def __init__(
        self,
        settings: MailboxSettings,
        client_factory: Callable[..., IMAPClient] | None = None,
    ) -> None:
        self.settings = settings
        self._client_factory = client_factory or IMAPClient
        self._client: IMAPClient | None = None
        self._uidvalidity: int | None = None

    def __enter__(self) -> "Mailbox":
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def account(self) -> str:
        return f"{self.settings.user}@{self.settings.host}"

    @property
    def folder(self) -> str:
        return self.settings.folder

    @property
    def uidvalidity(self) -> int:
        if self._uidvalidity is None:
            raise MailboxError(f"{self._subject}: not open")
        return self._uidvalidity

    def open(self) -> None:
        """Connect, log in, identify, and select the folder read-only."""
        self._client = self._connect()
        try:
            self._login()
            self._identify()
            self._select()
        except BaseException:
            self.close()
            raise

        logger.info("%s: opened, UIDVALIDITY %d", self._subject, self._uidvalidity)

    def close(self) -> None:
        """Log out; a connection that already broke is just dropped."""
        client, self._client = self._client, None
        self._uidvalidity = None
        if client is None:
            return

        try:
            client.logout()
        except (IMAPClientError, OSError) as exc:
            logger.debug("%s: logout failed, dropping: %s", self._subject, exc)
            _drop(client)

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs of the mails that arrived after ``last_uid``, ascending."""
        with self._translated("UID SEARCH"):
            found = self._selected().search(["UID", f"{last_uid + 1}:*"])

        # "n:*" always matches the newest mail, even when its UID is below n
        # (RFC 3501: "*" is the largest UID in use), so drop what we had.
        return sorted(uid for uid in found if uid > last_uid)

    def all_uids(self) -> list[int]:
        with self._translated("UID SEARCH"):
            return sorted(self._selected().search(["ALL"]))

    def message_ids(self, uids: list[int]) -> dict[int, str | None]:
        """The Message-ID header of each mail, None where it has none.

        Used after a UIDVALIDITY change to recognise mails already stored.
        """
        found: dict[int, str | None] = {}
        for batch in self._batches(uids):
            with self._translated("FETCH Message-ID"):
                response = self._selected().fetch(batch, [MESSAGE_ID_ITEM])
            for uid, data in response.items():
                found[uid] = _message_id(data.get(MESSAGE_ID_KEY, b""))
        return found

    def fetch(self, uids: list[int], *, split_parts: bool = True) -> Iterator[FetchedMail]:
        """The mails with these UIDs, in UID order, without marking them
        seen, each split into its parts where the server can (unless
        ``split_parts`` is False).

        A batch takes one FETCH for the mails and their structure, then one
        for the parts of all its mails of each structure, so a backlog of
        mails from the same few mailers costs a few round trips a batch.
        """
        for batch in self._batches(sorted(uids)):
            logger.debug(
                "%s: fetching UIDs %d..%d (%d mails)",
                self._subject,
                batch[0],
                batch[-1],
                len(batch),
            )
            if not split_parts:
                with self._translated("FETCH"):
                    response = self._selected().fetch(batch, MAIL_ITEMS)
                yield from self._fetched_mails(batch, response)
                continue

            with self._translated("FETCH"):
                response = self._fetch_with_structure(batch)
            mails = list(self._fetched_mails(batch, response))
            structures = {
                mail.uid: (mail.raw, response[mail.uid].get(STRUCTURE_ITEM))
                for mail in mails
            }
            parts = split.split_all(structures, self._fetch_parts)
            logger.debug(
                "%s: %d of %d mails split by the server",
                self._subject, len(parts), len(mails),
            )
            for mail in mails:
                yield replace(mail, parts=parts.get(mail.uid))

    def noop(self) -> None:
        with self._translated("NOOP"):
            self._selected().noop()

    def folders(self) -> list[str]:
        """The names of every folder of the account, sorted."""
        with self._translated("LIST"):
            return sorted(name for _, _, name in self._selected().list_folders())

    def idle_supported(self) -> bool:
        """Whether the server offers IDLE (RFC 2177); 163.com may not."""
        with self._translated("CAPABILITY"):
            return self._selected().has_capability("IDLE")

    def idle_start(self) -> None:
        """Ask the server to announce changes to the folder as they happen."""
        with self._translated("IDLE"):
            self._selected().idle()

    def idle_wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds in IDLE; True when the server said
        something, or closed the connection.

        imapclient's ``idle_check`` returns an empty list both for a quiet
        folder and for a socket the server closed. A closed socket stays
        readable, so it is told apart by looking once more: the next
        command (DONE, then the poll) then fails and the caller reconnects.
        """
        client = self._selected()
        with self._translated("IDLE"):
            responses = client.idle_check(timeout)
        if responses:
            logger.debug("%s: IDLE: %s", self._subject, responses)
            return True
        return _readable(client.socket())

    def idle_end(self) -> None:
        """Leave IDLE so that other commands can be sent."""
        with self._translated("IDLE DONE"):
            self._selected().idle_done()

    @property
    def _subject(self) -> str:
        return f"mailbox {self.account}/{self.settings.folder}"

    def _connect(self) -> IMAPClient:
        settings = self.settings
        # Loading the CA certificates costs tens of ms of start-up: not
        # for a plain loopback connection.
        context = (
            None if settings.tls == "none"
            else ssl.create_default_context(cafile=settings.ca_file)
        )
        timeout = SocketTimeout(
            connect=settings.timeout_seconds, read=settings.timeout_seconds
        )
        with self._translated(f"connecting to {settings.host}:{settings.port}"):
            client = self._client_factory(
                settings.host,
                settings.port,
                ssl=settings.tls == "ssl",
                ssl_context=context,
                timeout=timeout,
            )
            if settings.tls == "starttls":
                assert context is not None
                client.starttls(context)
        # imapclient's default turns INTERNALDATE into naive local time;
        # lifeline wants the server's offset kept.
        client.normalise_times = False
        # imapclient 4.1 sets imaplib's debug level to 5, at which imaplib
        # builds the repr of every literal and of each whole FETCH answer,
        # logged or not: a third of a millisecond a mail in a backlog. At
        # 4 it still logs every command (LOGIN redacted) and answer line.
        client._imap.debug = 4
        return client

    def _login(self) -> None:
        settings = self.settings
        if not (settings.user + settings.password).isascii():
            # imaplib would fail encoding them; a web password in Chinese is
            # the usual cause, and 163's 授权码 is always ASCII.
            raise MailboxError(
                f"{self._subject}: LOGIN failed: user and password must be ASCII; "
                f"{LOGIN_ADVICE}"
            )

        with self._translated("LOGIN"):
            self._selected().login(settings.user, settings.password)

    def _identify(self) -> None:
        """Send IMAP ID right after LOGIN.

        163.com answers SELECT with "Unsafe Login" to a client that has not
        identified itself; other servers ignore the ID or do not offer it.
        """
        client = self._selected()
        with self._translated("CAPABILITY"):
            offered = b"ID" in client.capabilities()
        if not offered:
            return

        try:
            client.id_(CLIENT_ID)
        except IMAPClientAbortError as exc:
            raise MailboxError(f"{self._subject}: ID failed: {exc}") from exc
        except IMAPClientError as exc:
            logger.warning("%s: server refused ID: %s", self._subject, exc)

    def _select(self) -> None:
        client = self._selected()
        try:
            response = client.select_folder(self.settings.folder, readonly=True)
        except IMAPClientAbortError as exc:
            raise MailboxError(f"{self._subject}: SELECT failed: {exc}") from exc
        except IMAPClientError as exc:
            raise MailboxError(self._select_refused(exc)) from exc
        except OSError as exc:
            raise MailboxError(
                f"{self._subject}: SELECT failed: {self._advice(exc)}"
            ) from exc

        self._uidvalidity = int(response[b"UIDVALIDITY"])

    def _select_refused(self, exc: IMAPClientError) -> str:
        """Why SELECT was refused: a missing folder, or 163's account check."""
        text = _server_text(exc)
        if "unsafe login" in text.lower():
            return f"{self._subject}: SELECT refused ({text}): {UNSAFE_LOGIN_ADVICE}"

        with self._translated("LIST"):
            folders = [name for _, _, name in self._selected().list_folders()]
        if self.settings.folder not in folders:
            return (
                f"{self._subject}: folder {self.settings.folder!r} does not exist; "
                f"the server has: {', '.join(sorted(folders))}; set [mailbox] "
                "folder to one of them"
            )
        return f"{self._subject}: SELECT refused: {text}"

    def _fetched_mails(
        self, batch: list[int], response: dict[int, dict[bytes, object]]
    ) -> Iterator[FetchedMail]:
        for uid in batch:
            data = response.get(uid)
            if data is None:
                # Another client expunged it between SEARCH and FETCH.
                logger.info("%s/%d: gone before it was fetched", self._subject, uid)
                continue
            yield _fetched_mail(f"{self._subject}/{uid}", uid, data)

    def _fetch_with_structure(
        self, batch: list[int]
    ) -> dict[int, dict[bytes, object]]:
        """The mails with their BODYSTRUCTURE; without it when imapclient
        cannot parse the server's, so those mails are still taken whole."""
        client = self._selected()
        try:
            return client.fetch(batch, [*MAIL_ITEMS, STRUCTURE_ITEM])
        except IMAPClientAbortError:
            raise
        except (IMAPClientError, TypeError, IndexError) as exc:
            logger.warning(
                "%s: FETCH of UIDs %d..%d with BODYSTRUCTURE failed (%s); "
                "fetching them without",
                self._subject, batch[0], batch[-1], exc,
            )
            return client.fetch(batch, MAIL_ITEMS)

    def _fetch_parts(
        self, uids: list[int], items: list[bytes]
    ) -> dict[int, dict[bytes, object]]:
        """The parts of mails of one structure (split.FetchParts); none
        when the server refuses, so those mails are parsed whole."""
        with self._translated("FETCH parts"):
            try:
                return self._selected().fetch(uids, items)
            except IMAPClientAbortError:
                raise
            except IMAPClientError as exc:
                logger.warning(
                    "%s: the server did not split %d mails of UIDs %d..%d "
                    "(%s); they are read whole",
                    self._subject, len(uids), uids[0], uids[-1], _server_text(exc),
                )
                return {}

    def _batches(self, uids: list[int]) -> Iterator[list[int]]:
        size = self.settings.batch_size
        for start in range(0, len(uids), size):
            yield uids[start : start + size]

    def _selected(self) -> IMAPClient:
        if self._client is None:
            raise MailboxError(f"{self._subject}: not open")
        return self._client

    @contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        """Turn a library error during ``action`` into a MailboxError."""
        try:
            yield
        except (IMAPClientError, OSError) as exc:
            raise MailboxError(
                f"{self._subject}: {action} failed: {self._advice(exc)}"
            ) from exc

    def _advice(self, exc: BaseException) -> str:
        """What went wrong and what to change, for one library error."""
        settings = self.settings
        where = f"{settings.host}:{settings.port}"
        if isinstance(exc, ssl.SSLCertVerificationError):
            return (
                f"the TLS certificate of {where} is not trusted "
                f"({exc.verify_message}); if the server uses a private CA, set "
                "[mailbox] ca_file to its certificate"
            )
        if isinstance(exc, ssl.SSLError):
            return f"TLS handshake with {where} failed ({exc.reason}): {TLS_ADVICE}"
        if isinstance(exc, socket.gaierror):
            return f"unknown host {settings.host!r}: check [mailbox] host"
        if isinstance(exc, ConnectionRefusedError):
            return f"connection to {where} refused: check [mailbox] host and port"
        if isinstance(exc, TimeoutError):
            return (
                f"no answer from {where} within {settings.timeout_seconds:g} s: "
                f"check host, port and firewall; {TLS_ADVICE}"
            )
        if isinstance(exc, LoginError):
            return _login_advice(_server_text(exc))
        if isinstance(exc, IMAPClientAbortError):
            return f"the server closed the connection ({_server_text(exc)})"
        if isinstance(exc, OSError):
            return f"network error talking to {where}: {exc}"
        return f"the server answered: {_server_text(exc)}"


def _login_advice(text: str) -> str:
    lowered = text.lower()
    if any(hint in lowered for hint in IMAP_OFF_HINTS):
        return f"the server refused LOGIN ({text}): {IMAP_OFF_ADVICE}"
    return f"the server refused LOGIN ({text}): {LOGIN_ADVICE}"


def _server_text(exc: BaseException) -> str:
    """The server's words from an imapclient error, without the bytes repr."""
    text = str(exc)
    if text.startswith(("b'", 'b"')) and text.endswith(text[1]):
        return text[2:-1]
    return text


def _message_id(header: bytes) -> str | None:
    parsed = email.parser.BytesHeaderParser().parsebytes(header)
    value = parsed.get("Message-ID")
    if value is None:
        return None
    return " ".join(str(value).split()) or None


def _fetched_mail(subject: str, uid: int, data: dict[bytes, object]) -> FetchedMail:
    raw = data[b"BODY[]"]
    internaldate = data[b"INTERNALDATE"]
    size = data[b"RFC822.SIZE"]
    if not (
        isinstance(raw, bytes)
        and isinstance(internaldate, datetime)
        and internaldate.tzinfo is not None
        and isinstance(size, int)
    ):
        raise MailboxError(f"{subject}: the server's FETCH answer is malformed")
    return FetchedMail(uid=uid, internaldate=internaldate, raw=raw, size=size)


def _readable(sock: socket.socket) -> bool:
    if sock.fileno() < 0:
        return True
    ready, _, _ = select.select([sock], [], [], 0)
    return bool(ready)


def _drop(client: IMAPClient) -> None:
    try:
        client.shutdown()
    except OSError:
        pass
