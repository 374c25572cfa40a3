"""Working through the notice queue: claim, compose, send, record.

Each notice is claimed in one commit and its outcome recorded in another
(``store.notices`` explains what a crash in between means). One notice
that fails, for whatever reason, is recorded and the run goes on.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from lifeline.config import Config
from lifeline.errors import ConfigError, PermanentSendError
from notify.compose import ComposeError, compose, sender_domain
from notify.send import OutboxSender, Sender, ServerUnavailable, SmtpSender
from store import notices
from store.models import Notice
from store.notices import message_id_for

logger = logging.getLogger(__name__)

# Longer than any batch can take to send (a batch is a minute's worth of
# mail, each with a few SMTP attempts), so only a stopped run's notices
# are taken back.
STALE_AFTER = dt.timedelta(minutes=30)

# The batch when smtp.max_per_minute is 0 (no pacing, e.g. the outbox).
UNPACED_BATCH = 100


@dataclass
class DeliveryResult:
    sent: int = 0
    failed: int = 0
    retried: int = 0


def sender_for(config: Config) -> Sender:
    """The outbox if one is configured, else the SMTP server."""
    if config.notify.outbox_dir:
        return OutboxSender(config.resolve(config.notify.outbox_dir))
    if config.smtp.host:
        return SmtpSender(config.smtp)
    raise ConfigError(
        "notify: nowhere to send notices; set smtp.host or notify.outbox_dir"
    )


def deliver_pending(
    session_factory: sessionmaker[Session],
    config: Config,
    sender: Sender | None = None,
    limit: int | None = None,
) -> DeliveryResult:
    """Send one batch of pending notices (a notice that fails for now is
    tried again by a later call, not by this one)."""
    sender = sender or sender_for(config)
    batch = limit or config.smtp.max_per_minute or UNPACED_BATCH
    with session_factory() as session:
        notices.recover_stale(session, STALE_AFTER)
        claimed = notices.claim(session, batch)
        session.commit()

    result = DeliveryResult()
    for number, notice in enumerate(claimed):
        try:
            outcome = _deliver_one(session_factory, config, sender, notice)
        except ServerUnavailable as exc:
            _release(session_factory, claimed[number:], exc)
            result.retried += len(claimed) - number
            break
        setattr(result, outcome, getattr(result, outcome) + 1)
    return result


def _release(
    session_factory: sessionmaker[Session], rest: list[Notice], error: Exception
) -> None:
    with session_factory() as session:
        notices.release(session, rest)
        session.commit()
    logger.warning(
        "%s; %d notice(s) stay pending for the next run", error, len(rest)
    )


def _deliver_one(
    session_factory: sessionmaker[Session],
    config: Config,
    sender: Sender,
    notice: Notice,
) -> str:
    message_id = message_id_for(notice.key, sender_domain(config))
    try:
        sender.send(notice, compose(notice, config))
    except (ComposeError, PermanentSendError) as exc:
        return _record_failure(session_factory, notice, str(exc), permanent=True)
    except ServerUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - one notice must not stop the rest
        return _record_failure(session_factory, notice, str(exc), permanent=False)

    with session_factory() as session:
        notices.mark_sent(session, notice, message_id)
        session.commit()
    _log(notice, sender.done)
    return "sent"


def _record_failure(
    session_factory: sessionmaker[Session],
    notice: Notice,
    error: str,
    permanent: bool,
) -> str:
    with session_factory() as session:
        row = notices.mark_failed(session, notice, error, permanent)
        session.commit()

    outcome = "failed" if row.status == "failed" else "retried"
    _log(notice, f"{outcome} after attempt {row.attempts}: {error}")
    return outcome


def _log(notice: Notice, outcome: str) -> None:
    logger.info(
        "notice %s (%s, unit %s, %s) to %s: %s",
        notice.key,
        notice.kind,
        notice.context.get("unit") or "-",
        notice.period or "-",
        ", ".join(notice.recipients),
        outcome,
    )
