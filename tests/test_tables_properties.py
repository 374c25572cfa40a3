"""Property and fuzz tests: the figure parser, dates, and broken files."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.tables import read_tables
from ingest.tables.figures import parse_figure
from ingest.tables.metadata import parse_reported_on
from lifeline.errors import NotATable, TableError

SHARED = Path(os.environ.get("LIFELINE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
TEMPLATES = sorted(path for path in (SHARED / "samples" / "templates").iterdir() if path.suffix != ".doc")
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


@st.composite
def written_counts(draw: st.DrawFn) -> tuple[int, str]:
    """A count and one way a unit might write it: commas only as thousands
    separators, never spaces inside the number."""
    number = draw(st.integers(min_value=0, max_value=10_000_000))
    text = f"{number:,}" if draw(st.booleans()) else str(number)
    if draw(st.booleans()):
        text = text.translate(FULL_WIDTH)
    text += draw(st.sampled_from(["", "处", "家", " 处", "个", "（处）", " (家)"]))
    padding = draw(st.sampled_from(["", " ", "  ", "\u3000", "\n"]))
    return number, padding + text + padding


@given(written_counts())
def test_any_written_count_parses_back_to_itself(case: tuple[int, str]) -> None:
    number, text = case

    assert parse_figure(text, "evacuation_found").value == number


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("6（处）", 6), ("6(处)", 6), ("12 （家）", 12), ("12处", 12), ("3 家", 3),
        ("1,200", 1200), ("1,234,567", 1_234_567), ("１，２００", 1200), (" 24 ", 24),
        ("\u300024\u3000", 24), ("10,000,000", 10_000_000), ("—", 0), ("无", 0),
    ],
)
def test_written_forms_of_a_count(text: str, value: int) -> None:
    assert parse_figure(text, "evacuation_found") == (value, None)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("42,5", "is not a number"), ("3,5", "is not a number"), ("1,2", "is not a number"),
        ("1,20", "is not a number"), ("1,2000", "is not a number"), ("2 2", "is not a number"),
        ("12,345,678", "is not a plausible count"), ("1e15", "is not a plausible count"),
        (1e15, "is not a plausible count"), (10_000_001, "is not a plausible count"),
        ("186.7", "is not a whole number"), ("处", "is not a number"), ("（处）", "is not a number"),
        ("6（处", "is not a number"),
    ],
)
def test_forms_that_are_not_a_count(raw: object, error: str) -> None:
    assert parse_figure(raw, "premises_inspected") == (None, error)


def test_implausible_area_is_named_an_area() -> None:
    assert parse_figure(12_000_000.5, "barrier_area_m2") == (None, "is not a plausible area")
    assert parse_figure("42,5", "barrier_area_m2") == (None, "is not a number")


@given(st.decimals(min_value=0, max_value=100_000, places=2, allow_nan=False))
def test_area_parses_back_to_itself(area: object) -> None:
    parsed = parse_figure(str(area), "barrier_area_m2")

    assert parsed.error is None
    assert abs(float(parsed.value) - float(area)) < 1e-9  # type: ignore[arg-type]


@given(st.integers(min_value=1, max_value=1000).map(lambda n: n + 0.5))
def test_fraction_in_a_count_is_an_error(number: float) -> None:
    assert parse_figure(number, "drill_premises").error == "is not a whole number"


@given(st.dates(), st.sampled_from(["{y}年{m}月{d}日", "{y}.{m}.{d}", "{y}-{m:02d}-{d:02d}", "{y}/{m}/{d}"]))
def test_reported_on_formats(date: object, pattern: str) -> None:
    text = pattern.format(y=date.year, m=date.month, d=date.day)  # type: ignore[attr-defined]

    reported = parse_reported_on(text)

    if date.year >= 1000:  # type: ignore[attr-defined]
        assert reported is not None and reported.as_date() == date


def _mutations(content: bytes, seed: int) -> list[bytes]:
    """Truncations and random byte changes of one file, reproducibly."""
    chosen = random.Random(seed)
    variants = [content[:cut] for cut in (0, 10, 100, len(content) // 3, len(content) // 2, len(content) - 1)]
    for _ in range(25):
        mutated = bytearray(content)
        for _ in range(chosen.randint(1, 8)):
            mutated[chosen.randrange(len(mutated))] = chosen.randrange(256)
        variants.append(bytes(mutated))
    return variants


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda path: path.name)
def test_broken_templates_raise_only_table_errors(path: Path) -> None:
    content = path.read_bytes()
    for variant in _mutations(content, seed=len(content)):
        try:
            read_tables(path.name, variant)
        except (TableError, NotATable):
            pass


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_raise_only_table_errors(content: bytes) -> None:
    try:
        read_tables("附件.xls", content)
    except (TableError, NotATable):
        pass
