"""Wiring: configuration → database → ingest → notices.

The command line and the daemon build one App and ask it for the parts
they need, so both run the same code paths.
"""

from __future__ import annotations

import logging
from functools import cached_property

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from ingest.mailbox import Mailbox, MailboxSettings
from ingest.pipeline import Ingest, Outcome
from lifeline.config import Config, read_password, require
from notify import receipts
from store import db, roster
from store.notices import Pending

logger = logging.getLogger(__name__)


class App:
    def __init__(self, config: Config) -> None:
        self.config = config

    @cached_property
    def engine(self) -> Engine:
        return db.open_engine(self.config.database_url)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        return db.session_factory(self.engine)

    def sync_roster(self) -> list[str]:
        """Load roster.file into the database (adds and updates only), when
        the file changed since it was last loaded: changes made with
        `lifeline units` stay until the file itself changes."""
        if not self.config.roster.file:
            return []
        path = self.config.resolve(self.config.roster.file)
        with self.sessions() as session:
            changes = roster.sync_file(session, path)
            session.commit()
        if changes:
            logger.info("roster %s: %d change(s)", path, len(changes))
        return changes

    def ingest(self, session: Session | None = None) -> Ingest:
        """A pipeline with the roster as the database has it now, read in
        ``session`` when one is open (a second connection would wait for
        the first one's write lock on SQLite)."""
        if session is None:
            with self.sessions() as own:
                index = roster.load(own)
        else:
            index = roster.load(session)
        return Ingest(self.config, index, after_mail=self._after_mail)

    def _after_mail(self, session: Session, outcome: Outcome) -> list[Pending]:
        # A mail that could not even be decoded has no sender to answer;
        # its problem still reaches the coordinator.
        assert outcome.mail is not None
        return receipts.receipt_notices(
            session,
            self.config,
            outcome.mail,
            [filed.report for filed in outcome.filed],
            list(outcome.mail.problems),
            sender_is_known=outcome.sender_known,
            auto_reply=outcome.decoded is None or outcome.decoded.auto_reply,
            correction=any(filed.supersedes is not None for filed in outcome.filed),
            not_current=any(not filed.current for filed in outcome.filed),
        )

    def mailbox_settings(self) -> MailboxSettings:
        box = self.config.mailbox
        return MailboxSettings(
            host=require(box.host, "mailbox.host"),
            port=box.port,
            tls=box.tls,
            user=require(box.user, "mailbox.user"),
            password=read_password("mailbox", box.password_env, box.password_file),
            folder=box.folder,
            timeout_seconds=box.timeout_seconds,
            batch_size=box.batch_size,
            ca_file=str(self.config.resolve(box.ca_file)) if box.ca_file else None,
        )

    def mailbox(self) -> Mailbox:
        return Mailbox(self.mailbox_settings())
