"""Convert .doc/.wps/.et files with LibreOffice headless, when installed.

Each conversion runs in its own LibreOffice profile directory so that a
running desktop instance or a parallel conversion cannot block it, and is
killed after a timeout.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

from lifeline.errors import TableError

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 60
_SEND_INSTEAD = "please save the table as .xlsx, .xls or .docx and send it again"


def soffice_path() -> str | None:
    return shutil.which("soffice")


def convert(name: str, content: bytes, source_suffix: str, target: str) -> bytes:
    """``content`` (a ``source_suffix`` file) converted to ``target``
    ("xlsx" or "docx"); TableError ``unsupported-format`` without LibreOffice."""
    soffice = soffice_path()
    if soffice is None:
        raise TableError(f"{name}: this format cannot be read here; {_SEND_INSTEAD}", "unsupported-format")

    with tempfile.TemporaryDirectory(prefix="lifeline-soffice-") as work:
        folder = Path(work)
        source = folder / f"input.{source_suffix}"
        source.write_bytes(content)
        command = [
            soffice, "--headless", "--norestore",
            f"-env:UserInstallation={(folder / 'profile').as_uri()}",
            "--convert-to", target, "--outdir", str(folder / "out"), str(source),
        ]
        try:
            subprocess.run(command, capture_output=True, timeout=TIMEOUT_SECONDS, check=False)
        except (subprocess.TimeoutExpired, OSError) as exc:
            raise TableError(f"{name}: the file could not be converted ({exc}); {_SEND_INSTEAD}", "unsupported-format") from exc
        converted = folder / "out" / f"input.{target}"
        if not converted.exists():
            raise TableError(f"{name}: the file could not be converted; {_SEND_INSTEAD}", "unsupported-format")
        logger.info("%s: converted from .%s to .%s with LibreOffice", name, source_suffix, target)
        return converted.read_bytes()
