"""End to end: a real Dovecot, the real `lifeline` command, a real database.

The sample mails are delivered over IMAP with the server's INTERNALDATE set
to the time their inbox stamped (the topmost Received: header); one poll
must store exactly the expected reports, and nothing after that may store
anything twice.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from dovecot import Dovecot
from expectations import load_expected, report_differences
from sqlalchemy import create_engine, func, select

from store.models import Mail, MailLocation, Notice, Report

pytestmark = pytest.mark.dovecot


def received(raw: bytes) -> datetime:
    """The time the inbox's server stamped: the topmost Received: header."""
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    stamp = message.get_all("Received")[0].rsplit(";", 1)[1]
    return email.utils.parsedate_to_datetime(stamp.split("(")[0].strip())


@pytest.fixture
def mailbox_config(
    tmp_path: Path, shared_dir: Path, dovecot: Dovecot, database_url: str
) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[mailbox]\nhost = "{dovecot.host}"\nport = {dovecot.port}\n'
        f'tls = "none"\nuser = "{dovecot.user}"\npassword_env = "LIFELINE_TEST_IMAP_PASSWORD"\n\n'
        f'[store]\ndata_dir = "{tmp_path / "data"}"\nurl = "{database_url}"\n\n'
        f'[roster]\nfile = "{shared_dir / "samples" / "roster.csv"}"\n\n'
        f'[notify]\noutbox_dir = "{tmp_path / "outbox"}"\n'
        f'coordinator = "coordinator@example.cn"\n\n[smtp]\nfrom = "lifeline@example.cn"\n',
        encoding="utf-8",
    )
    return path


@pytest.fixture
def delivered(dovecot: Dovecot, shared_dir: Path) -> list[Path]:
    """Every sample mail APPENDed to the INBOX, received when it was."""
    mails = sorted((shared_dir / "samples" / "mails").glob("*.eml"))
    dovecot.deliver([(m.read_bytes(), received(m.read_bytes())) for m in mails])
    return mails


def lifeline(config: Path, dovecot: Dovecot, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "LIFELINE_TEST_IMAP_PASSWORD": dovecot.password,
        "PATH": "/usr/bin:/bin",
        "LIFELINE_LOG_FILE": os.environ.get("LIFELINE_LOG_FILE", os.devnull),
    }
    done = subprocess.run(
        [sys.executable, "-m", "lifeline", *args, "--config", str(config)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def counts(database_url: str) -> tuple[int, int, int]:
    engine = create_engine(database_url)
    with engine.connect() as connection:
        numbers = tuple(
            connection.scalar(select(func.count()).select_from(table))
            for table in (Mail, Report, MailLocation)
        )
    engine.dispose()
    return numbers  # type: ignore[return-value]


def stored_reports(database_url: str) -> list[dict]:
    engine = create_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(
            select(Report.period, Report.on_time, Report.attachment, Report.values,
                   Report.warnings, Report.current, Mail.source, Report.unit_id)
            .join(Mail, Report.mail_id == Mail.id)
        ).all()
    engine.dispose()
    return [row._asdict() for row in rows]


def test_one_poll_stores_the_expected_reports(
    mailbox_config: Path, dovecot: Dovecot, delivered: list[Path], shared_dir: Path,
    database_url: str,
) -> None:
    lifeline(mailbox_config, dovecot, "poll", "--once")

    report = json.loads(
        lifeline(mailbox_config, dovecot, "report", "--period", "2025-05", "--json").stdout
    )
    expected = load_expected(shared_dir)
    by_attachment = {r["attachment"]: r for r in stored_reports(database_url)}
    wanted = [r for e in expected.values() for r in e["reports"]]
    assert len(by_attachment) == len(wanted)
    for want in wanted:
        got = by_attachment[want["attachment"]]
        got = got | {"warnings": got["warnings"]}
        assert report_differences(want, got) == [], want["attachment"]

    units = {u["unit"]: u for u in report["units"]}
    p10 = expected["p10-correction-second.eml"]["reports"][0]
    assert units["住房和城乡建设局"]["values"] == p10["values"]
    assert units["住房和城乡建设局"]["versions"] == 2


def test_polling_again_stores_nothing_twice(
    mailbox_config: Path, dovecot: Dovecot, delivered: list[Path], database_url: str,
) -> None:
    lifeline(mailbox_config, dovecot, "poll", "--once")
    first = counts(database_url)

    lifeline(mailbox_config, dovecot, "poll", "--once")  # a new process each time
    lifeline(mailbox_config, dovecot, "poll", "--once")

    assert first == (12, 11, 12)  # p05 has no table
    assert counts(database_url) == first


def test_new_uidvalidity_stores_nothing_twice(
    mailbox_config: Path, dovecot: Dovecot, delivered: list[Path], database_url: str,
    shared_dir: Path,
) -> None:
    lifeline(mailbox_config, dovecot, "poll", "--once")
    before = dovecot.status()[b"UIDVALIDITY"]

    dovecot.renew_uidvalidity()
    late = (shared_dir / "samples" / "mails" / "p08-late-22nd.eml").read_bytes()
    dovecot.append(late.replace(b"Message-ID: <", b"Message-ID: <again-", 1))
    lifeline(mailbox_config, dovecot, "poll", "--once")

    assert dovecot.status()[b"UIDVALIDITY"] != before
    mails, reports, _ = counts(database_url)
    assert (mails, reports) == (13, 12)  # only the one new mail


def test_id_is_sent_before_select(
    mailbox_config: Path, dovecot: Dovecot, delivered: list[Path]
) -> None:
    lifeline(mailbox_config, dovecot, "poll", "--once")

    log = dovecot.protocol_log().upper()

    assert " ID (" in log and " SELECT " in log or " EXAMINE " in log
    first_select = min(i for i in (log.find(" SELECT "), log.find(" EXAMINE ")) if i >= 0)
    assert 0 <= log.find(" ID (") < first_select


def test_no_mail_is_marked_seen(
    mailbox_config: Path, dovecot: Dovecot, delivered: list[Path]
) -> None:
    lifeline(mailbox_config, dovecot, "poll", "--once")

    flags = dovecot.flags()

    assert len(flags) == 12
    assert all(b"\\Seen" not in f for f in flags.values())


def test_a_first_catch_up_without_notices_stores_all_and_answers_none(
    mailbox_config: Path, dovecot: Dovecot, delivered: list[Path], database_url: str,
    tmp_path: Path,
) -> None:
    """`poll --once --no-notices`: years of mail taken on a first start
    without flooding the units with receipts; later mail is answered."""
    lifeline(mailbox_config, dovecot, "poll", "--once", "--no-notices")

    assert counts(database_url) == (12, 11, 12)
    engine = create_engine(database_url)
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Notice)) == 0
    engine.dispose()
    assert not list((tmp_path / "outbox").glob("*.eml"))

    fresh = delivered[0].read_bytes().replace(b"Message-ID: <", b"Message-ID: <again-", 1)
    dovecot.deliver([(fresh, received(fresh))])
    lifeline(mailbox_config, dovecot, "poll", "--once")
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
