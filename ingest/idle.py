"""Waiting for new mail with IMAP IDLE (RFC 2177).

After a poll the daemon keeps its connection open in IDLE; the server
announces a new mail (EXISTS) at once, and the daemon leaves IDLE and polls.
The wait is cut into short checks so that a stop request is seen within
about a second, and each IDLE is ended well before the 29 minutes after
which RFC 2177 lets a server drop a silent client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ingest.mailbox import Mailbox

logger = logging.getLogger(__name__)

# RFC 2177 asks clients to re-issue IDLE at least every 29 minutes.
IDLE_RENEW_SECONDS = 24 * 60.0

# How long one check waits before looking at the stop flag again.
CHECK_SECONDS = 1.0


def wait_for_mail(
    mailbox: Mailbox,
    seconds: float,
    should_stop: Callable[[], bool],
    on_check: Callable[[], None] = lambda: None,
) -> bool:
    """IDLE for up to ``seconds`` (at most ``IDLE_RENEW_SECONDS``); True if
    the server announced a change (or closed the connection: the poll
    that follows will find out which).

    Raises MailboxError when the connection fails; it is then unusable.
    """
    if should_stop():
        return False

    deadline = time.monotonic() + min(seconds, IDLE_RENEW_SECONDS)
    mailbox.idle_start()

    announced = False
    while not announced and not should_stop():
        left = deadline - time.monotonic()
        if left <= 0:
            break
        on_check()
        announced = mailbox.idle_wait(min(CHECK_SECONDS, left))

    mailbox.idle_end()
    return announced
