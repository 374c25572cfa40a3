"""Comparing what lifeline made of a sample mail with its expected JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ingest.model import FIGURES


def load_expected(shared: Path) -> dict[str, dict[str, Any]]:
    """Expected results by mail file name."""
    return {
        f"{path.stem}.eml": json.loads(path.read_text(encoding="utf-8"))
        for path in sorted((shared / "samples" / "expected").glob("*.json"))
    }


def codes(items: list[Any]) -> set[str]:
    return {i["code"] if isinstance(i, dict) else i for i in items}


def differences(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Every way ``actual`` (one line of ``import --json``) differs."""
    found = []
    want = {(r["unit"], r["period"]): r for r in expected["reports"]}
    got = {(r["unit"], r["period"]): r for r in actual["reports"]}
    if set(want) != set(got):
        found.append(f"reports {sorted(got)} != {sorted(want)}")
    for key in set(want) & set(got):
        found += report_differences(want[key], got[key])
    if codes(actual["problems"]) != codes(expected["problems"]):
        found.append(f"problems {codes(actual['problems'])} != {codes(expected['problems'])}")
    return found


def report_differences(want: dict[str, Any], got: dict[str, Any]) -> list[str]:
    found = []
    for field in ("on_time", "attachment"):
        if got[field] != want[field]:
            found.append(f"{field} {got[field]!r} != {want[field]!r}")
    for key in FIGURES:
        if abs(float(got["values"][key]) - float(want["values"][key])) > 1e-9:
            found.append(f"{key} {got['values'][key]} != {want['values'][key]}")
    if codes(got["warnings"]) != codes(want["warnings"]):
        found.append(f"warnings {codes(got['warnings'])} != {codes(want['warnings'])}")
    return found
