"""A private Dovecot IMAP server for tests.

Each instance writes its own configuration into a fresh temporary folder and
runs ``dovecot -F -c <that file>`` as a child process on a free loopback
port, so tests never touch /etc/dovecot, the system service or each other.
Dovecot's rawlog records every command the client sent after login, which
lets a test check the order of commands a real server received.
"""

import getpass
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from types import TracebackType

from imapclient import IMAPClient

RAWLOG_TIMESTAMP = re.compile(r"^\d+\.\d+ ", re.MULTILINE)
START_TIMEOUT_SECONDS = 10.0

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
instance_name = lifeline-test-{port}
listen = 127.0.0.1
protocols = imap
ssl = {ssl}
{ssl_files}
auth_mechanisms = plain login
disable_plaintext_auth = no
# Dovecot waits two seconds after a failed login by default; tests of a
# wrong password should not.
auth_failure_delay = 0
default_internal_user = {internal_user}
default_login_user = {login_user}
first_valid_uid = 1
mail_location = maildir:{root}/Maildir
mail_save_crlf = yes
# A test server's mail need not survive a power cut.
mail_fsync = never
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/users
}}
userdb {{
  driver = passwd-file
  args = {root}/users
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
{tls_listener}}}
service anvil {{
  chroot =
}}
protocol imap {{
  rawlog_dir = {root}/rawlog
}}
"""


TLS_FILES = """\
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
"""

TLS_LISTENER = """\
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
"""


class DovecotError(RuntimeError):
    """The private Dovecot did not start or stop as asked."""


def dovecot_binary() -> str | None:
    """Path of the dovecot binary, or None when it is not installed."""
    return shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin")


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _mail_owner() -> tuple[int, int]:
    """The uid and gid the mail processes run as.

    Dovecot refuses mail access as root whatever the configuration says, so
    a test run as root hands the mail to ``nobody``; any other user keeps
    everything under its own name.
    """
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()

    nobody = pwd.getpwnam("nobody")
    return nobody.pw_uid, nobody.pw_gid


def _service_users() -> tuple[str, str]:
    """default_internal_user and default_login_user for this run."""
    if os.geteuid() != 0:
        return getpass.getuser(), getpass.getuser()

    return "dovecot", "dovenull"


class Dovecot:
    """A running private Dovecot with one user and a Maildir.

    Use it as a context manager; ``stop()`` and ``start()`` restart it on the
    same port with the same mail.
    """

    user = "report-inbox"
    password = "Kp9rW2-authcode"
    host = "127.0.0.1"

    def __init__(self, tls: bool = False) -> None:
        self.tls = tls
        self.root = Path(tempfile.mkdtemp(prefix="lifeline-dovecot-"))
        self.maildir = self.root / "Maildir"
        self.log_path = self.root / "dovecot.log"
        self.cert_path = self.root / "cert.pem"
        self.port = free_port()
        self.tls_port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._write_files()

    def __enter__(self) -> "Dovecot":
        try:
            self.start()
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def start(self) -> None:
        """Start the server and wait until its port takes connections."""
        binary = dovecot_binary()
        if binary is None:
            raise DovecotError("dovecot is not installed")

        stderr = (self.root / "dovecot.stderr").open("ab")
        self._process = subprocess.Popen(
            [binary, "-F", "-c", str(self.root / "dovecot.conf")],
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            start_new_session=True,
        )
        stderr.close()
        self._wait_until_listening()

    def stop(self) -> None:
        """Stop the server; its mail stays for the next ``start()``.

        Dovecot's orderly shutdown waits one to six seconds for its services,
        too slow for a fixture used by every test; killing its process group
        (its own session) is instant, and every mail it acknowledged is
        already on disk.
        """
        if self._process is None:
            return

        os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait()
        self._process = None

    def append(
        self,
        raw: bytes,
        internaldate: datetime | None = None,
        folder: str = "INBOX",
    ) -> None:
        """Deliver one mail as received at ``internaldate`` (default now)."""
        self.deliver([(raw, internaldate)], folder)

    def deliver(
        self,
        mails: Iterable[tuple[bytes, datetime | None]],
        folder: str = "INBOX",
    ) -> None:
        """Deliver several mails over one connection, in order."""
        with self._client() as client:
            for raw, internaldate in mails:
                client.append(folder, raw, flags=(), msg_time=internaldate)

    def create_folder(self, folder: str) -> None:
        with self._client() as client:
            client.create_folder(folder)

    def status(self, folder: str = "INBOX") -> dict[bytes, int]:
        """MESSAGES, UIDNEXT, UIDVALIDITY and UNSEEN of ``folder``."""
        items = [b"MESSAGES", b"UIDNEXT", b"UIDVALIDITY", b"UNSEEN"]
        with self._client() as client:
            return client.folder_status(folder, items)

    def flags(self, folder: str = "INBOX") -> dict[int, tuple[bytes, ...]]:
        """FLAGS of every mail in ``folder``, read without changing them."""
        with self._client() as client:
            client.select_folder(folder, readonly=True)
            fetched = client.fetch(client.search("ALL"), ["FLAGS"])
        return {uid: data[b"FLAGS"] for uid, data in fetched.items()}

    def renew_uidvalidity(self, folder: str = "INBOX") -> None:
        """Give ``folder`` a new UIDVALIDITY while keeping its mails.

        With the server stopped, the folder's UID list and indexes are
        removed; on start Dovecot rescans the Maildir, numbers the mails
        afresh and takes the next UIDVALIDITY from its per-user counter, so
        the new value always differs from the old (the counter lives in the
        dovecot-uidvalidity files, which stay). Open connections drop.
        """
        folder_dir = self.maildir if folder == "INBOX" else self.maildir / f".{folder}"
        self.stop()
        for state in folder_dir.glob("dovecot*"):
            if state.is_file() and not state.name.startswith("dovecot-uidvalidity"):
                state.unlink()
        self.start()

    def protocol_log(self) -> str:
        """The commands clients sent after login, session by session.

        Lines are as Dovecot's rawlog recorded them, with the timestamps
        taken off: ``<tag> <COMMAND> <arguments>``, then literal data.
        """
        text = ""
        for path in sorted((self.root / "rawlog").glob("*.in")):
            text += path.read_text(errors="replace")
        return RAWLOG_TIMESTAMP.sub("", text)

    def log_tail(self, lines: int = 20) -> str:
        text = ""
        for path in (self.root / "dovecot.stderr", self.log_path):
            if path.exists():
                text += path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _client(self) -> IMAPClient:
        client = IMAPClient(self.host, self.port, ssl=False, timeout=10)
        client.login(self.user, self.password)
        return client

    def _wait_until_listening(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise DovecotError(
                    f"dovecot exited with status {self._process.returncode}:\n"
                    f"{self.log_tail()}"
                )
            if self._greets():
                return
            time.sleep(0.02)
        self.stop()
        raise DovecotError(
            f"dovecot did not listen on {self.host}:{self.port} within "
            f"{START_TIMEOUT_SECONDS:.0f} s:\n{self.log_tail()}"
        )

    def _greets(self) -> bool:
        """Whether the server answers a connection with its IMAP greeting."""
        try:
            with socket.create_connection((self.host, self.port), 1) as probe:
                probe.settimeout(1)
                return probe.recv(64).startswith(b"* OK")
        except OSError:
            return False

    def _write_files(self) -> None:
        uid, gid = _mail_owner()
        for name in ("Maildir", "rawlog"):
            (self.root / name).mkdir()
            os.chown(self.root / name, uid, gid)
        self.root.chmod(0o755)

        (self.root / "users").write_text(
            f"{self.user}:{{PLAIN}}{self.password}:{uid}:{gid}::{self.root}::\n"
        )
        (self.root / "dovecot.conf").write_text(self._config())

    def _config(self) -> str:
        internal_user, login_user = _service_users()
        ssl_files = tls_listener = ""
        if self.tls:
            self._make_certificate()
            ssl_files = TLS_FILES.format(root=self.root)
            tls_listener = TLS_LISTENER.format(tls_port=self.tls_port)
        return CONFIG.format(
            root=self.root,
            port=self.port,
            tls_port=self.tls_port,
            ssl="yes" if self.tls else "no",
            ssl_files=ssl_files,
            tls_listener=tls_listener,
            internal_user=internal_user,
            login_user=login_user,
        )

    def _make_certificate(self) -> None:
        """A self-signed certificate for 127.0.0.1 and localhost."""
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                "-days", "2", "-subj", "/CN=localhost",
                "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "-keyout", str(self.root / "key.pem"),
                "-out", str(self.cert_path),
            ],
            check=True,
            capture_output=True,
        )
