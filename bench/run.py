"""lifeline against the naive way and against the wire, in one run.

usage: python bench/run.py [--mails N] [--runs R] [--lifeline-runs L] [--fill maildir|append]

Starts a private Dovecot on a loopback port, fills its Maildir with N mails
like the units' (bench/mailgen.py), then measures on the same machine in
the same run: the wire limit, the naive script (bench/naive.py), lifeline's
backlog poll, an empty poll on a held connection, push latency, table
parsing (bench/parse.py) and start-up. Prints a table, then as its last
line one JSON object. Everything it starts and writes is removed at the end.
"""

from __future__ import annotations

import argparse
import compileall
import datetime as dt
import json
import os
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import mailgen  # noqa: E402
import naive  # noqa: E402
import parse as parse_bench  # noqa: E402
from dovecot import Dovecot, _mail_owner  # noqa: E402

UNITS = 200
PASSWORD_ENV = "BENCH_IMAP_PASSWORD"
COUNTED_USER = "counted"
# A client command as Dovecot's rawlog records it: timestamp, imaplib tag.
COMMAND_LINE = re.compile(rb"^(?:\d+\.\d+ )?[A-Z]{4}\d+ ", re.MULTILINE)
WIRE_TAG = b"W9Z7"
PUSHES = 5
STARTS = 3
EMPTY_POLLS = 20
WAIT_SECONDS = 30.0


class BenchDovecot(Dovecot):
    """The test Dovecot with rawlog only for the user ``counted``.

    Rawlog also writes every byte the server sends, which would slow the
    timed runs; round trips are counted in separate runs as ``counted``,
    who shares the Maildir (same home, same absolute mail_location).
    """

    def _config(self) -> str:
        rawlog = f"protocol imap {{\n  rawlog_dir = {self.root}/rawlog\n}}\n"
        return super()._config().replace(rawlog, "")

    def _write_files(self) -> None:
        super()._write_files()
        uid, gid = _mail_owner()
        with (self.root / "users").open("a") as users:
            users.write(
                f"{COUNTED_USER}:{{PLAIN}}{self.password}:{uid}:{gid}::{self.root}::"
                f"userdb_rawlog_dir={self.root}/rawlog\n"
            )

    def commands(self) -> dict[str, int]:
        """Client commands per rawlog session file (after LOGIN)."""
        return {
            path.name: len(COMMAND_LINE.findall(path.read_bytes()))
            for path in (self.root / "rawlog").glob("*.in")
        }


@dataclass
class Results:
    mails: int
    mail_bytes: int = 0
    fill_s: float = 0.0
    rows: list[tuple[str, str, str]] = field(default_factory=list)
    values: dict[str, object] = field(default_factory=dict)

    def add(self, label: str, value: str, note: str = "") -> None:
        self.rows.append((label, value, note))
        print(f"  {label:<34} {value:>14}  {note}", file=sys.stderr, flush=True)


# --- filling the mailbox -----------------------------------------------------


def fill_maildir(server: Dovecot, mails: Iterable[tuple[bytes, dt.datetime]]) -> tuple[int, int]:
    """Write the mails as Maildir files; Dovecot indexes them on first SELECT.

    The file's mtime is the mail's INTERNALDATE, and S=/W= in the name give
    its size so the server need not stat or read it for RFC822.SIZE.
    """
    uid, gid = _mail_owner()
    for sub in ("cur", "new", "tmp"):
        (server.maildir / sub).mkdir(exist_ok=True)
        os.chown(server.maildir / sub, uid, gid)
    count = size = 0
    for raw, moment in mails:
        stamp = int(moment.timestamp())
        path = server.maildir / "cur" / f"{stamp}.M{count:07d}P1.bench,S={len(raw)},W={len(raw)}:2,"
        path.write_bytes(raw)
        os.utime(path, (stamp, stamp))
        os.chown(path, uid, gid)
        count, size = count + 1, size + len(raw)
    return count, size


def fill_append(server: Dovecot, mails: Iterable[tuple[bytes, dt.datetime]]) -> tuple[int, int]:
    """APPEND the mails over one connection, 500 to a MULTIAPPEND."""
    client = server._client()
    count = size = 0
    batch: list[dict[str, object]] = []
    for raw, moment in mails:
        batch.append({"msg": raw, "date": moment})
        count, size = count + 1, size + len(raw)
        if len(batch) == 500:
            client.multiappend("INBOX", batch)
            batch = []
    if batch:
        client.multiappend("INBOX", batch)
    client.logout()
    return count, size


# --- wire --------------------------------------------------------------------


def wire_fetch(server: Dovecot) -> tuple[float, int]:
    """Seconds and bytes for one UID FETCH 1:* BODY.PEEK[] on a logged-in socket."""
    with socket.create_connection((server.host, server.port)) as sock:
        _exchange(sock, b"")
        _exchange(sock, b"W9Z5 LOGIN %s %s\r\n" % (server.user.encode(), server.password.encode()))
        _exchange(sock, b"W9Z6 EXAMINE INBOX\r\n")
        buffer = bytearray(4 << 20)
        total, tail = 0, b""
        started = time.perf_counter()
        sock.sendall(WIRE_TAG + b" UID FETCH 1:* BODY.PEEK[]\r\n")
        while not (b"\r\n" + WIRE_TAG + b" " in tail and tail.endswith(b"\r\n")):
            received = sock.recv_into(buffer)
            if not received:
                raise ConnectionError("server closed the connection during FETCH")
            total += received
            tail = (tail + bytes(buffer[max(0, received - 256) : received]))[-256:]
        elapsed = time.perf_counter() - started
        sock.sendall(b"W9Z8 LOGOUT\r\n")
    if b" OK " not in tail.rsplit(b"\r\n" + WIRE_TAG, 1)[1]:
        raise RuntimeError(f"FETCH failed: {tail!r}")
    return elapsed, total


def _exchange(sock: socket.socket, line: bytes) -> bytes:
    """Send a command (or nothing, for the greeting) and read its last line."""
    if line:
        sock.sendall(line)
    tag = line.split(b" ", 1)[0] if line else b"*"
    answer = b""
    while not any(l.startswith(tag + b" ") for l in answer.split(b"\r\n")):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"server closed the connection after {line!r}")
        answer += chunk
    return answer


# --- lifeline ------------------------------------------------------------------


def write_config(
    folder: Path, server: Dovecot, roster: Path, user: str, name: str = "config.toml", **mailbox: object
) -> Path:
    """A configuration in ``folder`` with its data in ``folder/data``."""
    folder.mkdir(parents=True, exist_ok=True)
    extra = "".join(f"{key} = {json.dumps(value)}\n" for key, value in mailbox.items())
    path = folder / name
    path.write_text(
        "[mailbox]\n"
        f'host = "{server.host}"\nport = {server.port}\ntls = "none"\n'
        f'user = "{user}"\npassword_env = "{PASSWORD_ENV}"\n{extra}'
        f'[store]\ndata_dir = "{folder / "data"}"\n'
        f'[roster]\nfile = "{roster}"\n'
        f'[notify]\noutbox_dir = "{folder / "outbox"}"\n',
        encoding="utf-8",
    )
    return path


def lifeline_command(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "lifeline", *args, "--config", str(config)]


def child_env(server: Dovecot) -> dict[str, str]:
    return {**os.environ, PASSWORD_ENV: server.password, "PYTHONPATH": str(ROOT)}


def lifeline_poll(server: Dovecot, config: Path) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of ``lifeline poll --once`` on a fresh data dir."""
    log = (config.parent / "poll.log").open("wb")
    started = time.perf_counter()
    process = subprocess.Popen(
        lifeline_command(config, "poll", "--once"),
        env=child_env(server), stdout=log, stderr=log,
    )
    peak = 0.0
    while process.poll() is None:
        peak = max(peak, _status_mb(process.pid, "VmHWM"))
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    log.close()
    if process.returncode != 0:
        tail = (config.parent / "poll.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"lifeline poll failed ({process.returncode}):\n{tail}")
    return elapsed, peak


def _status_mb(pid: int, key: str) -> float:
    """VmHWM (peak) or VmRSS of a running process, in MB.

    Not getrusage: on Linux a child's ru_maxrss starts from the RSS of the
    parent it was forked from, which here is the benchmark itself.
    """
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def outcomes(config: Path) -> dict[str, int]:
    with _db(config) as db:
        found = dict(db.execute("select outcome, count(*) from mail group by outcome"))
        found["reports"] = db.execute("select count(*) from report").fetchone()[0]
        found["notices"] = db.execute("select count(*) from notice").fetchone()[0]
    return found


def _db(config: Path) -> sqlite3.Connection:
    path = config.parent / "data" / "lifeline.db"
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)


def _last_success(config: Path) -> str | None:
    try:
        with _db(config) as db:
            row = db.execute("select max(last_success_at) from mailbox_state").fetchone()
    except sqlite3.OperationalError:
        return None
    return row[0] if row else None


def empty_polls(server: BenchDovecot, config: Path) -> tuple[float, float]:
    """Median ms and round trips of ``poll_once`` when nothing is new, on
    one held connection, in this process (as the daemon does it)."""
    from ingest.poll import poll_once
    from lifeline import config as config_module
    from lifeline.app import App

    os.environ[PASSWORD_ENV] = server.password
    app = App(config_module.load(config))
    app.sync_roster()
    timings = []
    sessions_before = set(server.commands())
    with app.mailbox() as mailbox:
        poll_once(app.sessions, mailbox, app.ingest)
        (session_file,) = set(server.commands()) - sessions_before
        before = _session_commands(server, session_file)
        for _ in range(EMPTY_POLLS):
            started = time.perf_counter()
            result = poll_once(app.sessions, mailbox, app.ingest)
            timings.append((time.perf_counter() - started) * 1000)
            assert result.new == 0, "the empty poll found new mail"
        after = _session_commands(server, session_file)
    app.engine.dispose()
    return statistics.median(timings), (after - before) / EMPTY_POLLS


def _session_commands(server: BenchDovecot, name: str) -> int:
    time.sleep(0.05)  # rawlog writes after the server has answered
    return server.commands()[name]


# --- daemon: start-up and push -------------------------------------------------


class Daemon:
    """``lifeline run`` in a subprocess, stopped with SIGTERM."""

    def __init__(self, server: Dovecot, config: Path) -> None:
        self.config = config
        self.before = _last_success(config)
        self.log = (config.parent / "run.log").open("ab")
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            lifeline_command(config, "run"), env=child_env(server),
            stdout=self.log, stderr=self.log,
        )

    def first_poll_seconds(self) -> float:
        until(lambda: _last_success(self.config) not in (None, self.before), "the first poll", self.process)
        return time.perf_counter() - self.started

    def rss_mb(self) -> float:
        return _status_mb(self.process.pid, "VmRSS")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def until(done: Callable[[], bool], what: str, process: subprocess.Popen[bytes] | None = None, limit: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + limit
    while not done():
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"lifeline exited ({process.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {limit:g} s")
        time.sleep(0.002)


def push_ms(server: Dovecot, config: Path, raw_mails: list[bytes], limit: float) -> list[float]:
    """APPEND each mail from another connection and time until its report
    (or problem) is committed; stops at the first that takes over ``limit``."""
    latencies = []
    for raw in raw_mails:
        message_id = re.search(rb"Message-ID: (<[^>]+>)", raw)[1].decode()  # type: ignore[index]
        started = time.perf_counter()
        server.append(raw)
        try:
            until(lambda m=message_id: _committed(config, m), f"the report of {message_id}", limit=limit)
        except TimeoutError:
            return latencies
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def _committed(config: Path, message_id: str) -> bool:
    with _db(config) as db:
        row = db.execute(
            "select count(*) from mail join notice on notice.mail_id = mail.id "
            "where mail.message_id = ?", (message_id,),
        ).fetchone()
    return row[0] > 0


def fresh_mails(roster: list[mailgen.Unit], count: int, seed: int) -> list[bytes]:
    """New mails (unknown Message-IDs), each with a table."""
    found = []
    for raw, _ in mailgen.mails(count * 3, roster, seed=seed):
        if mailgen.XLSX_TYPE.encode() in raw:
            found.append(raw.replace(b"@bench.example.com>", b"@push%d.example.com>" % seed))
    return found[:count]


# --- parse ---------------------------------------------------------------------


def parse_tables(work: Path, repeat: int, runs: int) -> dict[str, float]:
    xls = (parse_bench.SHARED / "samples" / "templates" / "template_libreoffice.xls").read_bytes()
    cases = {
        "xlsx": ("t.xlsx", parse_bench.ten_row_xlsx()),
        "xls": ("t.xls", xls),
        "docx": ("t.docx", parse_bench.ten_row_docx()),
    }
    found = {kind: parse_bench.median_ms(content, name, repeat) for kind, (name, content) in cases.items()}
    huge = work / "huge.xlsx"
    huge.write_bytes(parse_bench.make_tables.make_huge_range()[1])
    measured = [parse_bench.huge_sheet_in_child(huge) for _ in range(runs)]
    found["huge_ms"] = statistics.median(ms for ms, _ in measured)
    found["huge_mb"] = statistics.median(mb for _, mb in measured)
    return found


# --- the run -------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3, help="runs of wire, naive and parse")
    parser.add_argument("--lifeline-runs", type=int, default=0, help="timed lifeline backlog runs (default 3, 1 from 5,000 mails)")
    parser.add_argument("--fill", choices=("maildir", "append"), default="maildir")
    parser.add_argument("--profile", metavar="FILE", help="also run one backlog poll under cProfile into FILE")
    args = parser.parse_args()
    lifeline_runs = args.lifeline_runs or (1 if args.mails >= 5000 else 3)
    compile_sources()

    results = Results(args.mails)
    with tempfile.TemporaryDirectory(prefix="lifeline-bench-") as tmp, BenchDovecot() as server:
        work = Path(tmp)
        measure(server, work, results, args, lifeline_runs)
    print_table(results)
    print(json.dumps(results.values))


def compile_sources() -> None:
    """Byte-compile lifeline as installing it would: with
    PYTHONDONTWRITEBYTECODE set (or a read-only tree), every timed start
    would compile the edited modules again, some 60 ms of start-up."""
    for package in ("lifeline", "ingest", "store", "notify"):
        compileall.compile_dir(ROOT / package, quiet=1)


def measure(server: BenchDovecot, work: Path, results: Results, args: argparse.Namespace, lifeline_runs: int) -> None:
    runs, n = args.runs, args.mails
    roster = mailgen.units(UNITS)
    roster_path = work / "roster.csv"
    mailgen.write_roster(roster, roster_path)

    started = time.perf_counter()
    fill = fill_maildir if args.fill == "maildir" else fill_append
    count, results.mail_bytes = fill(server, mailgen.mails(n, roster))
    first_s, _ = wire_fetch(server)  # indexes the Maildir, warms the page cache
    results.add("fill (generate + write + index)", f"{time.perf_counter() - started:.1f} s", f"{args.fill}; first FETCH {first_s:.2f} s; mean mail {results.mail_bytes / count / 1024:.1f} KB")

    wire = statistics.median(wire_fetch(server)[0] for _ in range(runs))
    results.add("wire: UID FETCH 1:* BODY.PEEK[]", f"{wire:.3f} s", f"median of {runs}; {results.mail_bytes / wire / 1e6:.0f} MB/s")

    naive_s = []
    for run in range(runs):
        database = work / f"naive{run}.db"
        started = time.perf_counter()
        read, stored = naive.run(server.host, server.port, server.user, server.password, database)
        naive_s.append(time.perf_counter() - started)
        database.unlink()
    naive_rate = n / statistics.median(naive_s)
    results.add("naive: imaplib + email + openpyxl + ORM", f"{naive_rate:.0f} mails/s", f"median of {runs}; {stored} reports of {read} mails")

    lifeline_s, rss = [], []
    for run in range(lifeline_runs):
        config = write_config(work / f"lifeline{run}", server, roster_path, server.user)
        elapsed, peak = lifeline_poll(server, config)
        lifeline_s.append(elapsed)
        rss.append(peak)
    done = outcomes(config)
    lifeline_rate = n / statistics.median(lifeline_s)
    results.add("lifeline poll --once (subprocess)", f"{lifeline_rate:.0f} mails/s", f"median of {lifeline_runs}; {results.mail_bytes / statistics.median(lifeline_s) / 1e6:.1f} MB/s; {done}")
    results.add("lifeline peak RSS", f"{max(rss):.0f} MB", f"VmHWM, max of {lifeline_runs}")

    counted = write_config(work / "counted", server, roster_path, COUNTED_USER, poll_interval_seconds=1)
    before = sum(server.commands().values())
    lifeline_poll(server, counted)
    round_trips = sum(server.commands().values()) - before
    results.add("lifeline round trips", f"{round_trips}", "commands after LOGIN (Dovecot rawlog), separate run")

    if args.profile:
        profile(server, work, roster_path, Path(args.profile))

    empty_ms, empty_trips = empty_polls(server, counted)
    results.add("empty poll (held connection)", f"{empty_ms:.2f} ms", f"median of {EMPTY_POLLS}; {empty_trips:g} round trips each")

    startups, idle_rss, push_poll = [], [], []
    push_idle: list[float] | None = None
    for start in range(STARTS):
        daemon = Daemon(server, counted)
        try:
            startups.append(daemon.first_poll_seconds())
            time.sleep(0.5)
            idle_rss.append(daemon.rss_mb())
            if start == 0:
                push_poll = push_ms(server, counted, fresh_mails(roster, PUSHES, 100), limit=5.0)
        finally:
            daemon.stop()
    push_idle = measure_idle_push(server, work, roster_path, roster)
    push_poll = push_poll or []
    startup = statistics.median(startups)
    results.add("start-up: spawn to first poll done", f"{startup:.2f} s", f"median of {STARTS}; idle RSS {max(idle_rss):.0f} MB")
    results.add("push, polling every 1 s", _ms(push_poll), f"median of {len(push_poll)}")
    results.add("push, IDLE", _ms(push_idle), "IDLE not used by lifeline run" if push_idle is None else f"median of {len(push_idle)}")

    parsed = parse_tables(work, 200, runs)
    for kind in ("xlsx", "xls", "docx"):
        results.add(f"parse 10-row {kind}", f"{parsed[kind]:.3f} ms", "median of 200 (xls: the sample template)")
    results.add("parse sheet formatted to row 1,048,576", f"{parsed['huge_ms']:.0f} ms", f"peak RSS growth {parsed['huge_mb']:.1f} MB; median of {runs} subprocesses")

    results.values = {
        "mails": n,
        "wire_s": round(wire, 3),
        "naive_mails_per_s": round(naive_rate, 1),
        "lifeline_mails_per_s": round(lifeline_rate, 1),
        "ratio_vs_naive": round(lifeline_rate / naive_rate, 2),
        "ratio_vs_wire": round(statistics.median(lifeline_s) / wire, 1),
        "lifeline_round_trips": round_trips,
        "lifeline_peak_rss_mb": round(max(rss), 1),
        "empty_poll_ms": round(empty_ms, 2),
        "empty_poll_round_trips": empty_trips,
        "push_idle_ms": None if push_idle is None else round(statistics.median(push_idle), 1),
        "parse_xlsx_ms": round(parsed["xlsx"], 3),
        "huge_sheet_ms": round(parsed["huge_ms"], 1),
        "huge_sheet_peak_mb": round(parsed["huge_mb"], 1),
        "startup_s": round(startup, 3),
    }


def measure_idle_push(server: BenchDovecot, work: Path, roster_path: Path, roster: list[mailgen.Unit]) -> list[float] | None:
    """Push latency with ``idle = true`` and a poll interval too long to
    matter; None when lifeline run does not send IDLE."""
    # The data of the counted run, caught up, under a second configuration.
    config = write_config(work / "counted", server, roster_path, COUNTED_USER, "idle.toml", idle=True, poll_interval_seconds=3600)
    sessions_before = set(server.commands())
    daemon = Daemon(server, config)
    try:
        daemon.first_poll_seconds()
        time.sleep(0.3)
        latencies = push_ms(server, config, fresh_mails(roster, PUSHES, 200), limit=3.0)
    except (RuntimeError, TimeoutError) as exc:
        print(f"  push with IDLE not measured: {exc}", file=sys.stderr)
        return None
    finally:
        daemon.stop()
    logs = [p for p in (server.root / "rawlog").glob("*.in") if p.name not in sessions_before]
    idled = any(re.search(rb"^(?:\d+\.\d+ )?[A-Z]{4}\d+ IDLE", p.read_bytes(), re.MULTILINE) for p in logs)
    return latencies if idled and latencies else None


def profile(server: Dovecot, work: Path, roster_path: Path, out: Path) -> None:
    """One backlog poll under cProfile, for the README's breakdown."""
    config = write_config(work / "profiled", server, roster_path, server.user)
    subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "lifeline", "poll", "--once", "--config", str(config)],
        env=child_env(server), check=True, capture_output=True,
    )


def _ms(latencies: list[float] | None) -> str:
    if not latencies:
        return "n/a"
    return f"{statistics.median(latencies):.0f} ms"


def code_version() -> str:
    """The commit measured, and whether the working tree differs from it."""
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        changed = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown version"
    return f"commit {commit}" + (" with uncommitted changes" if changed else "")


def print_table(results: Results) -> None:
    print(f"lifeline benchmark: {results.mails} mails, {results.mail_bytes / 1e6:.0f} MB; {code_version()}; {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(f"{'measure':<40} {'value':>14}  notes")
    for label, value, note in results.rows:
        print(f"{label:<40} {value:>14}  {note}")


if __name__ == "__main__":
    main()
