"""How fast the table reader is, per format, in a warm process.

usage: python bench/parse.py [--repeat N]

Builds a 10-row table in each format (xlsx, xls, ods, docx, csv) and a sheet
formatted down to row 1,048,576, reads each many times and prints the
median milliseconds per table, then one JSON line. The .xls and .ods
copies are the sample templates filled in by round-tripping through the
template itself when LibreOffice is absent, so they are the templates.
Targets: ≤ 0.5 ms for the 10-row xlsx; ≤ 250 ms and ≤ 50 MB for the huge sheet.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import docx
import openpyxl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import make_tables  # noqa: E402

from ingest.tables import read_tables  # noqa: E402

SHARED = Path(os.environ.get("LIFELINE_SHARED", ROOT.parent / "shared"))
ROWS = [[f"单位{index}", *make_tables.ROW_A] for index in range(10)]


def ten_row_xlsx() -> bytes:
    workbook = openpyxl.Workbook()
    make_tables.write_table(workbook.active, 1, 1, ROWS, ("单位",), (make_tables.TITLE,))
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def ten_row_docx() -> bytes:
    document = docx.Document()
    document.add_paragraph(make_tables.TITLE)
    heading, sub, _ = make_tables.header_rows(("单位",))
    table = document.add_table(rows=2 + len(ROWS), cols=len(heading))
    for row_index, values in enumerate([heading, sub, *ROWS]):
        for col, value in enumerate(values):
            table.cell(row_index, col).text = str(value)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def ten_row_csv() -> bytes:
    return make_tables._csv_text(ROWS).encode("gbk")


def template(name: str) -> bytes:
    return (SHARED / "samples" / "templates" / name).read_bytes()


def median_ms(content: bytes, name: str, repeat: int) -> float:
    read_tables(name, content)
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        read_tables(name, content)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def huge_sheet() -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="lifeline-parse-") as folder:
        path = Path(folder) / "huge.xlsx"
        path.write_bytes(make_tables.make_huge_range()[1])
        return huge_sheet_in_child(path)


def huge_sheet_in_child(path: Path) -> tuple[float, float]:
    """Milliseconds and peak RSS growth (MB) of reading ``path`` once in a
    fresh process; tracemalloc would not see what Rust and C allocate."""
    done = subprocess.run(
        [sys.executable, __file__, "--huge-child", str(path)],
        check=True, capture_output=True, text=True,
    )
    result = json.loads(done.stdout.splitlines()[-1])
    return result["ms"], result["peak_mb"]


def _huge_child(path: Path) -> None:
    """Warm the reader on a small table, then read ``path`` once.

    The peak is the kernel's high-water mark (VmHWM), reset just before the
    read by writing 5 to /proc/self/clear_refs, so that what start-up once
    allocated and freed is not counted as the read's."""
    read_tables("t.xlsx", ten_row_xlsx())
    content = path.read_bytes()
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kb("VmRSS")
    started = time.perf_counter()
    read_tables(path.name, content)
    elapsed = (time.perf_counter() - started) * 1000
    peak = _status_kb("VmHWM")
    print(json.dumps({"ms": elapsed, "peak_mb": max(0, peak - before) / 1024}))


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--huge-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.huge_child:
        _huge_child(args.huge_child)
        return
    repeat = args.repeat

    cases: dict[str, tuple[str, Callable[[], bytes]]] = {
        "xlsx (10 rows)": ("t.xlsx", ten_row_xlsx),
        "xls (template)": ("t.xls", lambda: template("template_libreoffice.xls")),
        "ods (template)": ("t.ods", lambda: template("template_libreoffice.ods")),
        "docx (10 rows)": ("t.docx", ten_row_docx),
        "csv (10 rows)": ("t.csv", ten_row_csv),
    }
    results: dict[str, float] = {}
    for label, (name, build) in cases.items():
        results[label] = median_ms(build(), name, repeat)
    huge_ms, huge_mb = huge_sheet()

    print(f"{'format':<18} {'median ms':>10}")
    for label, value in results.items():
        print(f"{label:<18} {value:>10.3f}")
    print(f"{'huge sheet':<18} {huge_ms:>10.1f}  peak RSS growth {huge_mb:.1f} MB")
    print(json.dumps({"median_ms": results, "huge_ms": huge_ms, "huge_peak_mb": huge_mb}, ensure_ascii=False))


if __name__ == "__main__":
    main()
