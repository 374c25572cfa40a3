"""Naming the unit a table belongs to.

The 报送单位 in the table, matched against roster names and aliases,
decides; failing that, the sender's address; failing that, the sender's
display name. Names are compared after folding the ways units write them:
spacing, brackets, 街道办事处 for 街道, 人民政府 or 政府 after a town's name,
and a leading 区.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Generic, TypeVar

# Order matters: the longer suffix is folded first.
_SUFFIXES = (
    ("街道办事处", "街道"),
    ("办事处", ""),
    ("人民政府", ""),
    ("政府", ""),
)
_NOISE = re.compile(r"[\s\u3000()（）\[\]【】〔〕<>《》:：,，.。、\"'“”‘’_\-—]+")
_STAMP = re.compile(r"[(（][^)）]*(盖章|章|签字)[^)）]*[)）]")


def fold(name: str) -> str:
    """A unit name reduced to what identifies it."""
    text = unicodedata.normalize("NFKC", name)
    text = _STAMP.sub("", text)
    text = _NOISE.sub("", text)
    if text.startswith("区") and len(text) > 2:
        text = text[1:]
    for suffix, replacement in _SUFFIXES:
        if text.endswith(suffix) and len(text) > len(suffix):
            text = text[: -len(suffix)] + replacement
            break
    return text


# The unit type the roster holds: store.models.Unit, or anything in tests.
U = TypeVar("U")


@dataclass
class Roster(Generic[U]):
    """The roster's names, aliases and addresses, indexed for matching."""

    by_name: dict[str, U] = field(default_factory=dict)
    by_address: dict[str, U] = field(default_factory=dict)

    def add(self, unit: U, names: list[str], addresses: list[str]) -> None:
        """Index ``unit`` under every one of ``names`` (its name and
        aliases) and ``addresses``."""
        for name in names:
            self.by_name.setdefault(fold(name), unit)
        for address in addresses:
            self.by_address.setdefault(address.strip().lower(), unit)

    def match_name(self, text: str | None) -> U | None:
        """The unit a free-text name means, or None.

        An exact folded match wins; otherwise the longest roster name the
        text contains (``城关街道（盖章）``, ``城关街道消防工作站``).
        """
        if not text:
            return None
        folded = fold(text)
        if not folded:
            return None
        if folded in self.by_name:
            return self.by_name[folded]

        contained = [k for k in self.by_name if len(k) >= 2 and k in folded]
        if not contained:
            return None
        return self.by_name[max(contained, key=len)]

    def match_address(self, address: str) -> U | None:
        return self.by_address.get(address.strip().lower())
