"""`lifeline run` as a real process against a real Dovecot: new mail by
IDLE, SIGTERM, systemd's notify socket, the poll lease.

``DaemonProcess`` and ``write_config`` are shared with test_faults.py.
Every daemon's output is kept in a log file; each test checks that no
password reached it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dovecot import Dovecot
from sqlalchemy import create_engine, func, select
from test_end_to_end import received

from store.models import Mail, Report

pytestmark = pytest.mark.dovecot

PASSWORD_ENV = "LIFELINE_TEST_IMAP_PASSWORD"


def write_config(
    path: Path,
    dovecot: Dovecot,
    shared_dir: Path,
    *,
    database_url: str = "",
    poll_interval_seconds: int = 300,
    idle: bool = True,
    batch_size: int = 200,
    extra: str = "",
) -> Path:
    """A daemon configuration for ``dovecot``, with the data and the
    outbox beside ``path``."""
    folder = path.parent
    store_url = f'url = "{database_url}"\n' if database_url else ""
    path.write_text(
        f'[mailbox]\nhost = "{dovecot.host}"\nport = {dovecot.port}\n'
        f'tls = "none"\nuser = "{dovecot.user}"\npassword_env = "{PASSWORD_ENV}"\n'
        f"poll_interval_seconds = {poll_interval_seconds}\n"
        f"idle = {'true' if idle else 'false'}\ntimeout_seconds = 5\n"
        f"batch_size = {batch_size}\n\n"
        f'[store]\ndata_dir = "{folder / "data"}"\n{store_url}\n'
        f'[roster]\nfile = "{shared_dir / "samples" / "roster.csv"}"\n\n'
        f'[notify]\noutbox_dir = "{folder / "outbox"}"\n'
        f'coordinator = "coordinator@example.cn"\n\n'
        f'[smtp]\nfrom = "lifeline@example.cn"\nmax_per_minute = 0\n{extra}',
        encoding="utf-8",
    )
    return path


class DaemonProcess:
    """One `lifeline run` child whose output goes to a log file."""

    def __init__(
        self, config: Path, log: Path, password: str, env: dict[str, str] | None = None
    ) -> None:
        self.config = config
        self.log = log
        self.env = dict(os.environ, **{PASSWORD_ENV: password}, **(env or {}))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> DaemonProcess:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "lifeline", "run", "--config", str(self.config)],
                env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )
        return self

    def terminate(self, timeout: float = 10) -> int:
        """SIGTERM; the exit code, which must come within ``timeout``."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait()

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Starts daemons; kills what is left, and checks that no log line holds
    a password."""
    started: list[DaemonProcess] = []

    def start(config: Path, env: dict[str, str] | None = None) -> DaemonProcess:
        log = tmp_path / f"daemon-{len(started)}.log"
        daemon = DaemonProcess(config, log, Dovecot.password, env).start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.kill()
    for daemon in started:
        assert_no_secret(daemon.output())


def assert_no_secret(text: str) -> None:
    assert Dovecot.password not in text
    assert "authcode" not in text.lower()


def count(url: str, model: type) -> int:
    """Rows of ``model``, 0 while the daemon has not made the database."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.scalar(select(func.count()).select_from(model)) or 0
    except Exception:
        return 0
    finally:
        engine.dispose()


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'data' / 'lifeline.db'}"


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def sample(shared_dir: Path) -> Callable[[str], bytes]:
    def read(name: str) -> bytes:
        return (shared_dir / "samples" / "mails" / f"{name}.eml").read_bytes()

    return read


def test_idle_takes_new_mail_at_once_and_sigterm_exits_0(
    tmp_path: Path, dovecot: Dovecot, shared_dir: Path, daemons, sample
) -> None:
    """With a 5-minute poll interval, only IDLE can bring the mail in within
    seconds; SIGTERM then ends the daemon with 0."""
    config = write_config(tmp_path / "config.toml", dovecot, shared_dir)
    daemon = daemons(config)
    url = sqlite_url(tmp_path)
    assert wait_for(lambda: "IDLE" in dovecot.protocol_log(), 30), daemon.output()

    mail = sample("p01-xlsx-utf8-filename")
    dovecot.append(mail, received(mail))
    assert wait_for(lambda: count(url, Report) == 1, 5), daemon.output()
    assert wait_for(lambda: any((tmp_path / "outbox").glob("*.eml")), 30)

    assert daemon.terminate() == 0, daemon.output()
    output = daemon.output()
    assert "城关街道" in output and "2025-04" in output
    assert "stopped" in output


def test_without_idle_the_daemon_polls_on_its_interval(
    tmp_path: Path, dovecot: Dovecot, shared_dir: Path, daemons, sample
) -> None:
    config = write_config(
        tmp_path / "config.toml", dovecot, shared_dir, poll_interval_seconds=1,
        idle=False,
    )
    daemon = daemons(config)
    mail = sample("p08-late-22nd")
    dovecot.append(mail, received(mail))

    assert wait_for(lambda: count(sqlite_url(tmp_path), Report) == 1, 30), daemon.output()
    assert daemon.terminate() == 0
    assert "IDLE" not in dovecot.protocol_log()


def test_systemd_hears_ready_watchdog_and_stopping(
    tmp_path: Path, dovecot: Dovecot, shared_dir: Path, daemons
) -> None:
    """The daemon speaks sd_notify on $NOTIFY_SOCKET: READY=1 once it runs,
    WATCHDOG=1 while it works, STOPPING=1 on SIGTERM."""
    config = write_config(tmp_path / "config.toml", dovecot, shared_dir)
    # AF_UNIX paths are short (108 bytes): pytest's tmp_path may be longer.
    folder = Path(tempfile.mkdtemp(prefix="ll-notify-"))
    address = str(folder / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(address)
        listener.settimeout(30)
        daemon = daemons(
            config, env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "2000000"}
        )

        heard = [listener.recv(256).decode()]
        heard += [listener.recv(256).decode()]
        heard += [listener.recv(256).decode()]
        assert daemon.terminate() == 0, daemon.output()
        while "STOPPING=1" not in heard:
            heard.append(listener.recv(256).decode())
    os.unlink(address)
    folder.rmdir()

    assert heard[0] == "READY=1"
    assert heard[1:3] == ["WATCHDOG=1", "WATCHDOG=1"]
    assert heard[-1] == "STOPPING=1"


def test_poll_once_is_refused_while_a_daemon_polls(
    tmp_path: Path, dovecot: Dovecot, shared_dir: Path, daemons
) -> None:
    config = write_config(tmp_path / "config.toml", dovecot, shared_dir)
    daemon = daemons(config)
    assert wait_for(lambda: "IDLE" in dovecot.protocol_log(), 30), daemon.output()

    poll = subprocess.run(
        [sys.executable, "-m", "lifeline", "poll", "--once", "--config", str(config)],
        env=daemon.env, capture_output=True, text=True, timeout=60,
    )
    assert poll.returncode == 2
    assert "another lifeline is polling this mailbox now" in poll.stderr
    assert f"/{daemon.process.pid}/" in poll.stderr  # names the holder

    assert daemon.terminate() == 0
    poll = subprocess.run(
        [sys.executable, "-m", "lifeline", "poll", "--once", "--config", str(config)],
        env=daemon.env, capture_output=True, text=True, timeout=60,
    )
    assert poll.returncode == 0, poll.stderr
    assert_no_secret(poll.stderr)


def test_sigterm_in_a_backlog_stops_between_mails(
    tmp_path: Path, dovecot: Dovecot, shared_dir: Path, daemons, sample
) -> None:
    """SIGTERM while 60 mails wait: the daemon exits 0 within 10 s having
    committed what it took (batches of 5 here, so there is something in
    between); the next run takes the rest, none twice."""
    from test_faults import backlog

    mails = backlog(shared_dir, 60)
    dovecot.deliver(mails)
    config = write_config(tmp_path / "config.toml", dovecot, shared_dir, batch_size=5)
    url = sqlite_url(tmp_path)

    first = daemons(config)
    assert wait_for(lambda: count(url, Mail) >= 5, 60), first.output()
    assert first.terminate(timeout=10) == 0, first.output()
    taken = count(url, Mail)
    assert taken < 60, "the backlog was done before SIGTERM; make it longer"

    second = daemons(config)
    assert wait_for(lambda: count(url, Mail) == 60, 60), second.output()
    assert second.terminate() == 0
    assert count(url, Mail) == 60
