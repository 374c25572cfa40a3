"""The one exception hierarchy of lifeline.

Library errors are translated into these at the boundary where they happen,
with a message that says what is wrong and what to do about it.
"""


class LifelineError(Exception):
    """Root of every error lifeline raises on purpose."""


class ConfigError(LifelineError):
    """The configuration file is missing, malformed or names a bad value."""


class MailboxError(LifelineError):
    """The IMAP server cannot be reached, refuses us, or answers oddly."""


class SendError(LifelineError):
    """An outgoing notice could not be handed to SMTP or the outbox."""


class PermanentSendError(SendError):
    """The SMTP server refused a notice for good (a 5xx reply)."""


class StoreError(LifelineError):
    """The database or the data directory cannot be used."""


class TableError(LifelineError):
    """A file that should hold the statistics table cannot be read.

    ``code`` is one of the problem codes of the JSON contract
    (``unreadable-file``, ``unsupported-format``, ...); the message tells the
    sender what to fix.
    """

    def __init__(self, message: str, code: str = "unreadable-file") -> None:
        super().__init__(message)
        self.code = code


class NotATable(LifelineError):
    """A file that is not a statistics table at all (a photo, a prose
    document). Not a problem: the attachment is skipped quietly."""
