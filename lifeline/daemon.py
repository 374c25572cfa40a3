"""``lifeline run``: the daemon.

The main thread runs the mailbox loop: hold the poll lease, poll, wait for
new mail (IDLE where the server offers it, else ``poll_interval_seconds``),
and again. When the server or the database fails it reconnects with a
capped exponential backoff, logging each kind of failure once per spell.

APScheduler runs the rest on its own threads, each job one at a time and
coalescing missed runs: sending notices (under the deliver lease),
reminders, the monthly summary and the stale-poll check. A job that fails
logs why and runs again at its next time. The jobs start after the first
poll (or at the first wait for the poll lease or for a reconnect): until
then each of them would wait for the poll's store lock anyway, and
starting them would only delay the first poll.

Signal handlers only set a flag. On SIGTERM the mail in hand is finished
and committed, the leases are given back and the process exits 0.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

import tenacity

from ingest.idle import wait_for_mail
from ingest.mailbox import Mailbox
from ingest.poll import poll_once
from lifeline.app import App
from lifeline.errors import LifelineError
from lifeline.systemd import Systemd
from store import lease

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

logger = logging.getLogger(__name__)

# How often a daemon that finds the poll lease held by another asks again.
STANDBY_SECONDS = 5.0

# Reconnect backoff: 1 s, 2 s, 4 s … never more than five minutes apart.
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 300.0

DELIVER_EVERY_SECONDS = 20
STALE_CHECK_EVERY_SECONDS = 60

# The granularity of every wait: how soon a stop request is seen.
TICK_SECONDS = 1.0


class Reconnect(Exception):
    """A connection that had worked failed; start afresh without backoff.
    Internal to the daemon loop, never raised out of it."""


class Daemon:
    def __init__(self, app: App) -> None:
        self.app = app
        self.config = app.config
        self.stopping = threading.Event()
        self.mailbox: Mailbox | None = None
        self.poll_lease = lease.Keeper(app.sessions, lease.POLL, lease.POLL_TTL)
        self.deliver_lease = lease.Keeper(
            app.sessions, lease.DELIVER, lease.DELIVER_TTL, owner=self.poll_lease.owner
        )
        self.systemd = Systemd.from_environment()
        self.failures = FailureLog("mailbox")
        self._scheduler: BackgroundScheduler | None = None
        self._standing_by = False
        # One writer at a time in this process: on SQLite a transaction
        # that read before another connection committed cannot write any
        # more ("database is locked" at once, whatever the busy timeout),
        # so the poll and the jobs must not interleave their transactions.
        self._store_lock = threading.Lock()

    def run(self) -> int:
        # APScheduler logs every job run at INFO; the journal should show
        # one line per mail, not one per timer.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.systemd.notify("READY=1")
        logger.info(
            "lifeline running as %s: mailbox %s/%s, poll every %d s, IDLE %s",
            self.poll_lease.owner, self.config.mailbox.host,
            self.config.mailbox.folder, self.config.mailbox.poll_interval_seconds,
            "when offered" if self.config.mailbox.idle else "off",
        )

        try:
            self._mailbox_loop()
        finally:
            self._shut_down()
        return 0

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        logger.info("received %s", signal.Signals(signum).name)
        self.stopping.set()

    def _shut_down(self) -> None:
        self.systemd.notify("STOPPING=1")
        logger.info("stopping: finishing the work in hand")
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
        self._close_mailbox()
        self.poll_lease.give_up()
        logger.info("stopped")

    # The mailbox loop

    def _mailbox_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                for attempt in self._retrying():
                    with attempt:
                        self._work()
            except tenacity.RetryError:
                return  # asked to stop while waiting to reconnect
            except Reconnect:
                continue

    def _retrying(self) -> tenacity.Retrying:
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda e: not isinstance(e, Reconnect)),
            wait=tenacity.wait_exponential_jitter(
                initial=BACKOFF_FIRST_SECONDS, max=BACKOFF_MAX_SECONDS
            ),
            stop=lambda _state: self.stopping.is_set(),
            sleep=self._sleep,
            before_sleep=self._before_backoff,
        )

    def _work(self) -> None:
        """Poll and wait for mail until told to stop or something fails."""
        try:
            while not self.stopping.is_set():
                if not self._hold_poll_lease():
                    self._sleep(STANDBY_SECONDS)
                    continue
                self._poll()
                self._wait_for_mail()
        except Exception as exc:
            self._close_mailbox()
            if not self.failures.spell:
                # It worked until now: reconnect at once, back off only if
                # that fails too.
                self.failures.failed(exc, retry_in=0.0)
                raise Reconnect from exc
            raise

    def _hold_poll_lease(self) -> bool:
        if self.poll_lease.keep() or self.poll_lease.take():
            if self._standing_by:
                logger.info("poll lease taken: this daemon polls the mailbox now")
            self._standing_by = False
            return True

        self._close_mailbox()
        if not self._standing_by:
            logger.warning(
                "another lifeline polls this mailbox: %s; standing by and "
                "asking again every %g s",
                self.poll_lease.other_holder(), STANDBY_SECONDS,
            )
        self._standing_by = True
        return False

    def _poll(self) -> None:
        if self.mailbox is None:
            mailbox = self.app.mailbox()
            mailbox.open()
            self.mailbox = mailbox

        with self._store_lock:
            result = poll_once(
                self.app.sessions, self.mailbox, self.app.ingest,
                commit_every=self.config.mailbox.batch_size,
                should_stop=self._should_pause,
            )
        self.failures.recovered()
        self._start_jobs()
        if result.taken:
            self._deliver_soon()

    def _wait_for_mail(self) -> None:
        seconds = self.config.mailbox.poll_interval_seconds
        if self.mailbox is not None and self._idle_on(self.mailbox):
            wait_for_mail(self.mailbox, seconds, self._should_pause, self._tick)
        else:
            self._sleep(seconds, until=self._should_pause)

    def _idle_on(self, mailbox: Mailbox) -> bool:
        return self.config.mailbox.idle and mailbox.idle_supported()

    def _should_pause(self) -> bool:
        """Asked between mails and during waits: stop, or lease lost."""
        self._tick()
        return self.stopping.is_set() or not self.poll_lease.keep()

    def _tick(self) -> None:
        self.systemd.watchdog()

    def _sleep(self, seconds: float, until: Callable[[], bool] | None = None) -> None:
        """Wait ``seconds``, waking at once on stop and every tick for the
        watchdog (and ``until``, when given)."""
        self._start_jobs()  # standing by or backing off: not polled yet
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or (until is not None and until()):
                return
            self._tick()
            self.stopping.wait(min(TICK_SECONDS, left))

    def _before_backoff(self, state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        if error is not None:
            self.failures.failed(error, retry_in=wait)

    def _close_mailbox(self) -> None:
        mailbox, self.mailbox = self.mailbox, None
        if mailbox is not None:
            mailbox.close()

    # Scheduled jobs

    def _start_jobs(self) -> None:
        """Start the scheduled jobs, once; see the module's docstring."""
        if self._scheduler is None and not self.stopping.is_set():
            self._scheduler = self._build_scheduler()
            self._scheduler.start()

    def _build_scheduler(self) -> BackgroundScheduler:
        from apscheduler.schedulers.background import BackgroundScheduler

        scheduler = BackgroundScheduler(
            timezone=self.config.tz,
            job_defaults={
                "coalesce": True, "max_instances": 1, "misfire_grace_time": 3600,
            },
        )
        scheduler.add_job(
            self.deliver, "interval", seconds=DELIVER_EVERY_SECONDS, id="deliver",
        )
        scheduler.add_job(self.remind, "cron", minute="*/5", id="remind")
        hour, minute = self.config.notify.summary_time.split(":")
        scheduler.add_job(
            self.summarise, "cron", hour=int(hour), minute=int(minute), id="summary",
        )
        scheduler.add_job(
            self.check_stale, "interval", seconds=STALE_CHECK_EVERY_SECONDS,
            id="stale", next_run_time=dt.datetime.now(self.config.tz),
        )
        return scheduler

    def _deliver_soon(self) -> None:
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.modify_job(
                "deliver", next_run_time=dt.datetime.now(self.config.tz)
            )

    def deliver(self) -> None:
        """Send pending notices. Only the daemon that polls sends (a standby
        one writes nothing), and never while another process sends."""
        if self.stopping.is_set() or not self.poll_lease.held:
            return
        from notify.deliver import deliver_pending

        with self._store_lock:
            if not self.deliver_lease.take():
                return
            try:
                deliver_pending(self.app.sessions, self.config)
            except Exception:
                logger.exception("delivering notices failed")
            finally:
                self.deliver_lease.give_up()

    def remind(self) -> None:
        from notify import reminders

        now = dt.datetime.now(self.config.tz)
        try:
            with self._store_lock, self.app.sessions() as session:
                reminders.queue_due_reminders(session, self.config, now)
                session.commit()
        except Exception:
            logger.exception("queueing reminders failed")

    def summarise(self) -> None:
        from notify import summary

        now = dt.datetime.now(self.config.tz)
        try:
            with self._store_lock, self.app.sessions() as session:
                summary.queue_due_summary(session, self.config, now)
                session.commit()
        except Exception:
            logger.exception("queueing the monthly summary failed")

    def check_stale(self) -> None:
        """Tell the coordinator once when no poll has worked for hours."""
        from notify.stale import queue_stale_poll_notice

        now = dt.datetime.now(self.config.tz)
        try:
            with self._store_lock, self.app.sessions() as session:
                if queue_stale_poll_notice(session, self.config, now):
                    self._deliver_soon()
                session.commit()
        except Exception:
            logger.exception("checking for a stale mailbox failed")


class FailureLog:
    """Logs a failure once per spell of failures (again only when its
    message changes), and the recovery when the spell ends."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.spell = 0
        self._message = ""
        self._since = 0.0

    def failed(self, error: BaseException, retry_in: float) -> None:
        message = str(error) or type(error).__name__
        if not self.spell:
            self._since = time.monotonic()
        self.spell += 1

        if message == self._message:
            logger.debug("%s: still failing (%d): %s", self.what, self.spell, message)
            return
        self._message = message
        then = f"trying again in {retry_in:.0f} s" if retry_in else "reconnecting"
        if isinstance(error, LifelineError):
            logger.error("%s; %s", message, then)
        else:
            logger.error("%s failed; %s", self.what, then, exc_info=error)

    def recovered(self) -> None:
        if not self.spell:
            return
        logger.info(
            "%s works again after %d failure(s) over %.0f s",
            self.what, self.spell, time.monotonic() - self._since,
        )
        self.spell = 0
        self._message = ""
