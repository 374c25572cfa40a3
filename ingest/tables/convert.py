"""Convert .doc/.wps/.et files with LibreOffice headless, when installed.

Each conversion runs in a fresh temporary folder holding its own
LibreOffice profile, so that a running desktop instance or a parallel
conversion cannot block it. LibreOffice starts a small launcher that forks
the real office process; both run in a session of their own, and on a
timeout the whole process group is killed so that no orphan keeps working
on a file nobody waits for.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from lifeline.errors import TableError

logger = logging.getLogger(__name__)

# A two-page table converts in about two seconds, most of it start-up; a
# file that takes longer than this is not a statistics table worth waiting for.
TIMEOUT_SECONDS = 60.0
SEND_INSTEAD = "please save the table as .xlsx, .xls or .docx and send it again"


def soffice_path() -> str | None:
    return shutil.which("soffice")


def convert(
    name: str,
    content: bytes,
    source_suffix: str,
    target: str,
    timeout: float | None = None,
) -> bytes:
    """``content`` (a ``source_suffix`` file) converted to ``target``
    ("xlsx" or "docx"). TableError ``unsupported-format`` without
    LibreOffice, ``unreadable-file`` when the conversion fails or times out
    (after ``timeout`` seconds, default TIMEOUT_SECONDS)."""
    soffice = soffice_path()
    if soffice is None:
        raise TableError(
            f"{name}: this format cannot be read here; {SEND_INSTEAD}",
            "unsupported-format",
        )

    with tempfile.TemporaryDirectory(prefix="lifeline-soffice-") as work:
        folder = Path(work)
        source = folder / f"input.{source_suffix}"
        source.write_bytes(content)
        command = _command(soffice, folder, source, target)
        log = folder / "soffice.log"
        _run(name, command, log, TIMEOUT_SECONDS if timeout is None else timeout)

        converted = folder / "out" / f"input.{target}"
        if not converted.exists():
            raise TableError(
                f"{name}: LibreOffice could not convert the file; {SEND_INSTEAD}"
            )
        logger.info("%s: converted from .%s to .%s", name, source_suffix, target)
        return converted.read_bytes()


def _command(soffice: str, folder: Path, source: Path, target: str) -> list[str]:
    return [
        soffice,
        "--headless",
        "--norestore",
        f"-env:UserInstallation={(folder / 'profile').as_uri()}",
        "--convert-to",
        target,
        "--outdir",
        str(folder / "out"),
        str(source),
    ]


def _run(name: str, command: list[str], log: Path, timeout: float) -> None:
    """Run LibreOffice; on a timeout kill its process group and raise.

    Output goes to a file, not a pipe: a pipe held open by a stray grandchild
    would make waiting for the output hang."""
    try:
        with log.open("wb") as output:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    except OSError as exc:
        raise TableError(
            f"{name}: LibreOffice could not be started ({exc}); {SEND_INSTEAD}",
            "unsupported-format",
        ) from exc

    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        _kill_group(process)
        logger.warning("%s: LibreOffice did not finish in %g s", name, timeout)
        raise TableError(
            f"{name}: converting the file took longer than {timeout:g} seconds; "
            f"{SEND_INSTEAD}"
        ) from exc
    if process.returncode != 0:
        said = log.read_text("utf-8", "replace").strip()
        logger.info("%s: LibreOffice exited with %d: %s", name, process.returncode, said)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
