"""Open workbooks protected with a password.

Excel encrypts a workbook with the built-in password "VelvetSweatshop" when
only its structure or sheets are protected; such files open without asking
anyone. Any other password cannot be guessed, and the sender is asked for
an unprotected copy.
"""

from __future__ import annotations

import io
import logging

import msoffcrypto

from lifeline.errors import TableError

logger = logging.getLogger(__name__)

EXCEL_DEFAULT_PASSWORD = "VelvetSweatshop"


def is_encrypted(content: bytes) -> bool:
    try:
        return bool(msoffcrypto.OfficeFile(io.BytesIO(content)).is_encrypted())
    except Exception:  # msoffcrypto raises assorted errors on files it does not know
        return False


def decrypt(name: str, content: bytes) -> bytes:
    """The decrypted file, or TableError ``encrypted-file``."""
    try:
        office_file = msoffcrypto.OfficeFile(io.BytesIO(content))
        office_file.load_key(password=EXCEL_DEFAULT_PASSWORD)
        output = io.BytesIO()
        office_file.decrypt(output)
    except Exception as exc:  # a wrong password, or damage msoffcrypto trips on
        logger.info("%s: cannot decrypt: %s", name, exc)
        raise _protected(name) from exc
    logger.info("%s: opened with Excel's default password", name)
    return output.getvalue()


def _protected(name: str) -> TableError:
    return TableError(
        f"{name}: the file is protected with a password; please remove the "
        "password (or save an unprotected copy) and send it again",
        "encrypted-file",
    )
