"""``lifeline run``: the scheduled worker.

The main thread only waits for a stop signal; APScheduler runs the jobs
(poll, deliver, remind, summary) one at a time each, coalescing missed
runs. A job that fails logs why and runs again at its next time: one bad
mail, server or notice never stops the daemon.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler

from ingest.mailbox import Mailbox
from ingest.poll import poll_once
from lifeline.app import App
from lifeline.errors import LifelineError
from notify import reminders, summary
from notify.deliver import deliver_pending

logger = logging.getLogger(__name__)


class Daemon:
    def __init__(self, app: App) -> None:
        self.app = app
        self.config = app.config
        self.stopping = threading.Event()
        self.mailbox: Mailbox | None = None

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        scheduler = self._scheduler()
        scheduler.start()
        logger.info(
            "lifeline running: polling %s/%s every %d s",
            self.config.mailbox.host, self.config.mailbox.folder,
            self.config.mailbox.poll_interval_seconds,
        )

        self.stopping.wait()

        logger.info("stopping: finishing the job in hand")
        scheduler.shutdown(wait=True)
        self._close_mailbox()
        return 0

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        logger.info("received %s", signal.Signals(signum).name)
        self.stopping.set()

    def _scheduler(self) -> BackgroundScheduler:
        tz = self.config.tz
        scheduler = BackgroundScheduler(
            timezone=tz,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
        )
        now = dt.datetime.now(tz)
        scheduler.add_job(
            self.poll, "interval", seconds=self.config.mailbox.poll_interval_seconds,
            next_run_time=now, id="poll",
        )
        scheduler.add_job(self.deliver, "interval", seconds=20, id="deliver")
        scheduler.add_job(self.remind, "cron", minute="*/5", id="remind")
        hour, minute = self.config.notify.summary_time.split(":")
        scheduler.add_job(
            self.summarise, "cron", day=self.config.notify.summary_day,
            hour=int(hour), minute=int(minute), id="summary",
        )
        return scheduler

    def poll(self) -> None:
        if self.stopping.is_set():
            return
        try:
            if self.mailbox is None:
                self.mailbox = self.app.mailbox()
                self.mailbox.open()
            poll_once(self.app.sessions, self.mailbox, self.app.ingest)
        except LifelineError as exc:
            logger.error("poll failed: %s", exc)
            self._close_mailbox()
        except Exception:
            logger.exception("poll failed")
            self._close_mailbox()
        self.deliver()

    def deliver(self) -> None:
        try:
            deliver_pending(self.app.sessions, self.config)
        except Exception:
            logger.exception("delivering notices failed")

    def remind(self) -> None:
        now = dt.datetime.now(self.config.tz)
        try:
            with self.app.sessions() as session:
                reminders.queue_due_reminders(session, self.config, now)
                session.commit()
        except Exception:
            logger.exception("queueing reminders failed")

    def summarise(self) -> None:
        now = dt.datetime.now(self.config.tz)
        first = now.replace(day=1)
        period = (first - dt.timedelta(days=1)).strftime("%Y-%m") if now.day < self.config.notify.summary_day else now.strftime("%Y-%m")
        try:
            with self.app.sessions() as session:
                summary.queue_summary(session, self.config, period, now)
                session.commit()
        except Exception:
            logger.exception("queueing the summary for %s failed", period)

    def _close_mailbox(self) -> None:
        if self.mailbox is not None:
            try:
                self.mailbox.close()
            except Exception:
                logger.debug("closing the mailbox failed", exc_info=True)
            self.mailbox = None
