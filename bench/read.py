"""What reading a backlog mail costs, parsed whole or split by the server.

usage: python bench/read.py [--mails N] [--runs R] [--batch-size B]

Starts a private Dovecot, APPENDs N mails like the units' (bench/mailgen.py),
fetches them with ``Mailbox.fetch`` (one FETCH of the mails and their
BODYSTRUCTURE per batch, then one of the parts per structure), and times the
reading process's work (``ingest.pipeline._read_all``: decode, then tables)
on the same mails twice in this process: from the raw bytes only, and from
the parts the server cut. Also times the fetch (wall and CPU of this
process) and counts its FETCH commands from Dovecot's rawlog. Prints a
table, then one JSON line. Both readings must decode every mail alike.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import mailgen  # noqa: E402
from dovecot import Dovecot  # noqa: E402

from ingest.mail import decode_mail  # noqa: E402
from ingest.mailbox import FetchedMail, Mailbox, MailboxSettings  # noqa: E402
from ingest.pipeline import _read_all  # noqa: E402

LIMIT = 25 * 1024 * 1024
APPEND_BATCH = 500


def fill(server: Dovecot, count: int) -> None:
    client = server._client()
    mails = list(mailgen.mails(count, mailgen.units(200)))
    for start in range(0, count, APPEND_BATCH):
        batch = mails[start : start + APPEND_BATCH]
        client.multiappend("INBOX", [{"msg": raw, "date": at} for raw, at in batch])
    client.logout()


def fetch(server: Dovecot, batch_size: int) -> tuple[list[FetchedMail], float, float]:
    """The mails as Mailbox.fetch hands them over; wall and CPU seconds."""
    settings = MailboxSettings(
        host=server.host, port=server.port, tls="none", user=server.user,
        password=server.password, batch_size=batch_size,
    )
    with Mailbox(settings) as mailbox:
        uids = mailbox.all_uids()
        started, cpu = time.perf_counter(), time.process_time()
        fetched = list(mailbox.fetch(uids))
        return fetched, time.perf_counter() - started, time.process_time() - cpu


def fetch_commands(server: Dovecot) -> list[str]:
    return re.findall(r"^\S+ UID FETCH ", server.protocol_log(), re.MULTILINE)


def ms_per_mail(work: Callable[[], object], count: int, runs: int) -> float:
    work()
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        timings.append((time.perf_counter() - started) * 1000 / count)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()

    with Dovecot() as server:
        fill(server, args.mails)
        fetch(server, args.batch_size)  # Dovecot indexes and caches the parts
        before = len(fetch_commands(server))
        fetched, wall, cpu = fetch(server, args.batch_size)
        commands = len(fetch_commands(server)) - before

    count = len(fetched)
    whole = [(mail.raw, None) for mail in fetched]
    split = [(mail.raw, mail.parts) for mail in fetched]
    differ = sum(
        decode_mail(raw) != decode_mail(raw, split=parts) for raw, parts in split
    )
    results = {
        "mails": count,
        "split": sum(mail.parts is not None for mail in fetched),
        "fetch_commands": commands,
        "fetch_ms": round(wall * 1000 / count, 3),
        "fetch_cpu_ms": round(cpu * 1000 / count, 3),
        "decode_whole_ms": ms_per_mail(
            lambda: [decode_mail(raw) for raw, _ in whole], count, args.runs
        ),
        "decode_split_ms": ms_per_mail(
            lambda: [decode_mail(raw, split=parts) for raw, parts in split],
            count, args.runs,
        ),
        "read_whole_ms": ms_per_mail(lambda: _read_all(whole, LIMIT), count, args.runs),
        "read_split_ms": ms_per_mail(lambda: _read_all(split, LIMIT), count, args.runs),
        "decoded_differently": differ,
    }
    for key, value in results.items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"  {key:<22} {shown:>10}", file=sys.stderr)
    rounded = {
        key: round(value, 3) if isinstance(value, float) else value
        for key, value in results.items()
    }
    print(json.dumps(rounded))
    if differ:
        sys.exit(f"{differ} mail(s) decoded differently from their parts")


if __name__ == "__main__":
    main()
