"""Only the start-up measure of bench/run.py, quickly and many times.

usage: python bench/startup.py [--mails N] [--starts S]

Fills a private Dovecot with N mails, catches up with one ``lifeline poll
--once`` (the data dir then holds a schema at head and a known mailbox, as
for run.py's start-up row), then starts ``lifeline run`` S times: seconds
from spawn until the first poll is committed, and VmRSS 0.5 s later.
Prints each start, then the medians as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import mailgen
import run as bench  # bench/run.py, beside this file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=50)
    parser.add_argument("--starts", type=int, default=7)
    args = parser.parse_args()
    bench.compile_sources()

    with tempfile.TemporaryDirectory(prefix="lifeline-startup-") as tmp, bench.BenchDovecot() as server:
        work = Path(tmp)
        roster = mailgen.units(bench.UNITS)
        roster_path = work / "roster.csv"
        mailgen.write_roster(roster, roster_path)
        bench.fill_maildir(server, mailgen.mails(args.mails, roster))
        bench.wire_fetch(server)

        config = bench.write_config(work / "counted", server, roster_path, bench.COUNTED_USER, poll_interval_seconds=1)
        bench.lifeline_poll(server, config)
        startups, rss = measure(server, config, args.starts)

    print(json.dumps({
        "startup_s": round(statistics.median(startups), 3),
        "idle_rss_mb": round(statistics.median(rss), 1),
        "starts": args.starts,
    }))


def measure(server: bench.BenchDovecot, config: Path, starts: int) -> tuple[list[float], list[float]]:
    startups, rss = [], []
    for start in range(starts):
        daemon = bench.Daemon(server, config)
        try:
            startups.append(daemon.first_poll_seconds())
            time.sleep(0.5)
            rss.append(daemon.rss_mb())
        finally:
            daemon.stop()
        print(f"  start {start + 1}: {startups[-1]:.3f} s, idle RSS {rss[-1]:.1f} MB", file=sys.stderr, flush=True)
    return startups, rss


if __name__ == "__main__":
    main()
