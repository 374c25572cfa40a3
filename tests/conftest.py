"""Fixtures shared by the whole test suite."""

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from dovecot import Dovecot, dovecot_binary

pytest_plugins = ["databases", "make_notify_data", "smtp_server"]


@pytest.fixture
def shared_dir() -> Path:
    """The shared/ folder beside the clone, where samples and the domain live.

    Many tests assert real values from its sample mails; without it they
    cannot run, so a missing folder fails with what to do about it.
    """
    configured = os.environ.get("LIFELINE_SHARED")
    path = Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared"
    if not (path / "samples" / "mails").is_dir():
        pytest.fail(
            f"the shared samples are not at {path}: put the shared/ folder "
            f"beside this clone, or set LIFELINE_SHARED to where it is"
        )
    return path


@pytest.fixture(autouse=True)
def _require_dovecot(request: pytest.FixtureRequest) -> None:
    """Skip a dovecot test where Dovecot is missing, except in CI.

    In CI a skipped end-to-end test would hide that the IMAP client was never
    tried against a real server, so there it fails instead.
    """
    if request.node.get_closest_marker("dovecot") is None:
        return
    if dovecot_binary() is not None:
        return

    message = "dovecot is not installed (run .ci/install-system-deps as root)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    """A private Dovecot with an empty INBOX, started afresh for each test.

    It starts in well under a second, so each test gets its own mail and
    UIDVALIDITY instead of sharing a server whose state depends on test order.
    """
    with Dovecot() as server:
        yield server


SECRETS_TEST = "test_no_password_in_any_log_line"


@pytest.fixture(scope="session", autouse=True)
def suite_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One file collecting every log line of the run: the `lifeline`
    processes the tests start append to it (LIFELINE_LOG_FILE), and so does
    this process, so the last test can search all of it for passwords."""
    path = tmp_path_factory.mktemp("logs") / "suite.log"
    path.touch()
    os.environ["LIFELINE_LOG_FILE"] = str(path)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.DEBUG)
    yield path
    root.setLevel(previous)
    root.removeHandler(handler)
    handler.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The password search runs last, after every test has logged."""
    last = [item for item in items if item.name == SECRETS_TEST]
    items[:] = [item for item in items if item.name != SECRETS_TEST] + last
