"""Naming the unit from 报送单位, the sender address or display name."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ingest.units import Roster, fold


@dataclass
class Unit:
    id: int
    name: str


@pytest.fixture
def roster() -> Roster:
    index: Roster[Unit] = Roster()
    index.add(Unit(1, "城关街道"), ["城关街道", "城关街道办事处", "城关办"], ["cgjd@example.com"])
    index.add(Unit(2, "南湖镇"), ["南湖镇", "南湖镇人民政府"], ["NanHu@Example.cn"])
    index.add(Unit(3, "教育和体育局"), ["教育和体育局", "教体局", "区教体局"], [])
    index.add(Unit(4, "公安分局"), ["公安分局", "区公安分局", "公安局"], [])
    return index


@pytest.mark.parametrize(
    ("written", "unit"),
    [
        ("城关街道", "城关街道"),
        ("城关街道办事处", "城关街道"),
        ("城关 街道 办事处", "城关街道"),
        ("城关街道（盖章）", "城关街道"),
        ("南湖镇政府", "南湖镇"),
        ("南湖镇人民政府", "南湖镇"),
        ("区教体局", "教育和体育局"),
        ("区教育和体育局", "教育和体育局"),
        ("教体局安全办", "教育和体育局"),
        ("公安局", "公安分局"),
    ],
)
def test_names_aliases_and_suffix_variants(roster: Roster, written: str, unit: str) -> None:
    matched = roster.match_name(written)

    assert matched is not None and matched.name == unit


@pytest.mark.parametrize("written", ["", "   ", "某某公司", "区"])
def test_unknown_names(roster: Roster, written: str) -> None:
    assert roster.match_name(written) is None


def test_addresses_ignore_case(roster: Roster) -> None:
    unit = roster.match_address("nanhu@EXAMPLE.cn ")

    assert unit is not None and unit.name == "南湖镇"


def test_fold_keeps_the_identifying_part() -> None:
    assert fold("城关街道办事处") == fold("城关街道") == "城关街道"
    assert fold("北山镇人民政府") == fold("北山镇政府") == "北山镇"
