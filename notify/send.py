"""Handing composed notices to SMTP or to an outbox folder.

``SmtpSender`` opens one connection per mail through ``connect``, a factory
that tests point at a local server. Temporary trouble (a 4xx reply, a lost
connection) is retried a few times with exponential backoff; a 5xx reply is
a ``PermanentSendError`` and is not retried.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import tempfile
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

import tenacity

from lifeline.config import SmtpConfig, read_password
from lifeline.errors import PermanentSendError, SendError
from store.models import Notice
from store.notices import file_name_for

logger = logging.getLogger(__name__)

ATTEMPTS = 3


class Sender(Protocol):
    # What the log says of a notice handed over ("sent", "written to ...").
    done: str

    def send(self, notice: Notice, message: EmailMessage) -> None:
        """Deliver ``message`` to ``notice.recipients`` or raise SendError."""


class TemporarySendError(SendError):
    """SMTP said "try again later" for this mail."""


class ServerUnavailable(TemporarySendError):
    """The SMTP server cannot be reached or logged in to for now: no mail
    can go out, so the batch stops and nothing counts against a notice."""


class SmtpSender:
    """Sends through the configured SMTP server, at most
    ``max_per_minute`` mails a minute."""

    def __init__(
        self,
        config: SmtpConfig,
        connect: Callable[[], smtplib.SMTP] | None = None,
        backoff_seconds: float = 2.0,
    ) -> None:
        self.config = config
        self.done = f"sent via {config.host}:{config.port}"
        self.connect = connect or self._connect
        self.backoff_seconds = backoff_seconds
        self._last_send = 0.0

    def send(self, notice: Notice, message: EmailMessage) -> None:
        self._pace()
        retrying = tenacity.Retrying(
            # An unreachable server is left to the next delivery run,
            # which the daemon schedules anyway; waiting here would only
            # hold up shutdown.
            retry=tenacity.retry_if_exception(_worth_retrying_now),
            stop=tenacity.stop_after_attempt(ATTEMPTS),
            wait=tenacity.wait_exponential(
                multiplier=self.backoff_seconds, max=30 * self.backoff_seconds
            ),
            before_sleep=self._log_retry,
            reraise=True,
        )
        retrying(self._send_once, notice, message)
        self._last_send = time.monotonic()

    def _pace(self) -> None:
        if self.config.max_per_minute <= 0:
            return
        interval = 60.0 / self.config.max_per_minute
        wait = self._last_send + interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def _send_once(self, notice: Notice, message: EmailMessage) -> None:
        try:
            smtp = self.connect()
        except (smtplib.SMTPException, OSError) as exc:
            raise ServerUnavailable(f"{self._where()}: {exc}") from exc

        try:
            with smtp:
                refused = smtp.send_message(message, to_addrs=notice.recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            _raise_for_replies(exc.recipients, notice)
        except smtplib.SMTPResponseException as exc:
            _raise_for_code(exc.smtp_code, _text(exc.smtp_error), notice)
        except (smtplib.SMTPException, OSError) as exc:
            raise TemporarySendError(f"{self._where()}: {exc}") from exc

        if refused:
            # Some recipients took it: the notice is sent, the rest logged.
            logger.warning(
                "notice %s: refused by %s", notice.key, _describe(refused)
            )

    def _connect(self) -> smtplib.SMTP:
        config = self.config
        timeout = config.timeout_seconds
        if config.tls == "ssl":
            context = ssl.create_default_context()
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                config.host, config.port, timeout=timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(config.host, config.port, timeout=timeout)
            if config.tls == "starttls":
                smtp.starttls(context=ssl.create_default_context())

        if config.user:
            password = read_password(
                "smtp", config.password_env, config.password_file
            )
            try:
                smtp.login(config.user, password)
            except smtplib.SMTPAuthenticationError as exc:
                smtp.close()
                raise PermanentSendError(
                    f"{self._where()}: login as {config.user} refused "
                    f"({exc.smtp_code}); check smtp.user and the password "
                    f"or 授权码"
                ) from exc
        return smtp

    def _where(self) -> str:
        return f"smtp {self.config.host}:{self.config.port}"

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        outcome = state.outcome
        error = outcome.exception() if outcome else None
        logger.info(
            "%s: attempt %d failed (%s), trying again",
            self._where(),
            state.attempt_number,
            error,
        )


def _worth_retrying_now(error: BaseException) -> bool:
    return isinstance(error, TemporarySendError) and not isinstance(
        error, ServerUnavailable
    )


def _raise_for_code(code: int, text: str, notice: Notice) -> None:
    message = f"notice {notice.key}: SMTP answered {code} {text}"
    if 500 <= code < 600:
        raise PermanentSendError(message)
    raise TemporarySendError(message)


def _raise_for_replies(
    replies: dict[str, tuple[int, bytes]], notice: Notice
) -> None:
    # Every recipient was refused; try again only if one refusal was
    # temporary, otherwise no later attempt can succeed.
    temporary = any(code < 500 for code, _ in replies.values())
    message = f"notice {notice.key}: every recipient refused: {_describe(replies)}"
    if temporary:
        raise TemporarySendError(message)
    raise PermanentSendError(message)


def _describe(replies: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(
        f"{address} {code} {_text(text)}" for address, (code, text) in replies.items()
    )


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        return reply.decode("utf-8", "replace")
    return reply


class OutboxSender:
    """Writes each mail as ``<outbox>/notice-<key hash>.eml`` instead of
    sending it: for trying lifeline out, and for districts that send by
    hand. The name depends only on the notice key, so sending a notice
    again replaces its file."""

    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox
        self.done = f"written to {outbox}"

    def send(self, notice: Notice, message: EmailMessage) -> None:
        path = self.outbox / file_name_for(notice.key)
        try:
            self.outbox.mkdir(parents=True, exist_ok=True)
            _write_atomically(path, message.as_bytes())
        except OSError as exc:
            raise SendError(f"outbox {self.outbox}: {exc.strerror}") from exc


def _write_atomically(path: Path, content: bytes) -> None:
    # A reader (or a crash) sees the old file or the new one, never half.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise

    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
