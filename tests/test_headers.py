"""Header and file name decoding in every encoding Chinese mailers use."""

from __future__ import annotations

import make_mails
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ingest.headers import decode_words, header_text, parse_address, parse_params

NAME = "城关街道5月份打通消防“生命通道”统计表（更正）.xlsx"
# 𠀀 and 㐀 are in GB18030 but not in GBK or GB2312; 堃 is GBK only.
RARE = "堃𠀀㐀统计表.xls"


def _filename(params: str) -> str:
    raw = f"attachment;\r\n\t{params}".encode("utf-8", "surrogateescape")
    return parse_params(raw)[1]["filename"]


@pytest.mark.parametrize("charset", ["utf-8", "gb18030", "gbk", "GB2312", "big5"])
@pytest.mark.parametrize("encoding", ["B", "Q"])
def test_rfc2047_in_each_chinese_charset(charset: str, encoding: str) -> None:
    """Encoded words decode in every Chinese charset, B and Q."""
    text = "消防統計表.xlsx" if charset == "big5" else "消防统计表.xlsx"

    encoded = make_mails.rfc2047(text, charset, encoding)

    assert _filename(f'filename="{encoded}"') == text


def test_gb2312_label_with_gbk_characters() -> None:
    """Text labelled gb2312 but holding GBK-only characters decodes."""
    encoded = make_mails.rfc2047("堃镕统计表.xls", "gbk").replace("gbk", "gb2312")

    assert header_text(encoded.encode()) == "堃镕统计表.xls"


def test_gb18030_four_byte_characters() -> None:
    encoded = make_mails.rfc2047(RARE, "gb18030")

    assert header_text(encoded.encode()) == RARE


@pytest.mark.parametrize("chunk", [1, 3, 5, 7])
def test_words_split_inside_a_character(chunk: int) -> None:
    """Adjacent words are joined as bytes before decoding."""
    for charset in ("utf-8", "gbk"):
        encoded = make_mails.rfc2047(NAME, charset, chunk=chunk)

        assert _filename(f'filename="{encoded}"') == NAME


def test_word_in_quotes_and_unquoted() -> None:
    encoded = make_mails.rfc2047(NAME, "utf-8")

    assert _filename(f'filename="{encoded}"') == NAME
    assert _filename(f"filename={encoded}") == NAME


def test_words_of_different_charsets_side_by_side() -> None:
    first = make_mails.rfc2047("统计", "gbk")
    encoded = first + " " + make_mails.rfc2047("表.xls", "utf-8")

    assert header_text(encoded.encode()) == "统计表.xls"


def test_text_between_words_is_kept() -> None:
    encoded = "Fw: " + make_mails.rfc2047("统计表", "utf-8") + " (2)"

    assert header_text(encoded.encode()) == "Fw: 统计表 (2)"


def test_bad_base64_padding_is_forgiven() -> None:
    encoded = make_mails.rfc2047("统计表", "utf-8").replace("=?=", "?=")

    assert header_text(encoded.encode()) == "统计表"


@pytest.mark.parametrize("charset", ["utf-8", "gbk"])
def test_raw_8bit_filename(charset: str) -> None:
    """Undeclared 8-bit names: UTF-8 first, then GB18030."""
    raw = b'attachment; filename="' + NAME.encode(charset) + b'"'

    assert parse_params(raw)[1]["filename"] == NAME


def test_rfc2231_single() -> None:
    assert _filename(make_mails.rfc2231("filename", NAME)) == NAME


@pytest.mark.parametrize("section", [1, 2, 4, 5])
@pytest.mark.parametrize("charset", ["utf-8", "gbk"])
def test_rfc2231_continuations_split_characters(section: int, charset: str) -> None:
    """Sections are joined as bytes: a character may straddle two."""
    params = make_mails.rfc2231("filename", NAME, charset, section=section)

    assert _filename(params) == NAME


def test_rfc2231_out_of_order_and_mixed_sections() -> None:
    params = "filename*1=\"计表.xls\"; filename*0*=utf-8''%E7%BB%9F"

    assert _filename(params) == "统计表.xls"


def test_rfc2231_wins_over_plain() -> None:
    params = 'filename="fallback.xls"; ' + make_mails.rfc2231("filename", NAME)

    assert _filename(params) == NAME


def test_content_type_main_value_and_name() -> None:
    raw = b'Application/Vnd.MS-Excel;\r\n\tname="=?GBK?B?zbO8xrHtLnhscw==?="'

    assert parse_params(raw) == ("application/vnd.ms-excel", {"name": "统计表.xls"})


def test_semicolon_inside_quotes_and_words() -> None:
    raw = b'attachment; filename="a;b.xls"; size=3'

    assert parse_params(raw)[1] == {"filename": "a;b.xls", "size": "3"}
    word = make_mails.rfc2047("a;b.xls", "utf-8", "Q")
    raw = f"attachment; filename={word}".encode()
    assert parse_params(raw)[1]["filename"] == "a;b.xls"


def test_windows_path_backslashes_survive_unquoting() -> None:
    raw = b'attachment; filename="C:\\temp\\a.xls"'

    assert parse_params(raw)[1]["filename"] == "C:\\temp\\a.xls"


@pytest.mark.parametrize(
    ("raw", "name", "address"),
    [
        (
            b'"=?GBK?B?x/i9zMzlvtawssirv8Y=?=" <JTJ@Example.cn>',
            "区教体局安全科",
            "jtj@example.cn",
        ),
        ("城关街道 <cgjd@example.cn>".encode("gbk"), "城关街道", "cgjd@example.cn"),
        ("“城关”街道, 安监办 <cgjd@example.cn>".encode(), "“城关”街道, 安监办", "cgjd@example.cn"),
        (b"cgjd@example.cn", "", "cgjd@example.cn"),
        (b"<cgjd@example.cn>", "", "cgjd@example.cn"),
        (b"", "", ""),
    ],
)
def test_parse_address(raw: bytes, name: str, address: str) -> None:
    assert parse_address(raw) == (name, address)


def test_decode_words_leaves_unknown_charset_readable() -> None:
    assert decode_words("=?x-unknown?B?57uf6K6h6KGo?=") == "统计表"


# --- property: any name, any encoding, decodes back to itself ---------------

_CHINESE = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5)
_ASCII = st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\')
_NAMES = st.text(st.one_of(_CHINESE, _ASCII), min_size=1, max_size=40).filter(
    lambda name: name == name.strip() and "=?" not in name and "?=" not in name
)
_CHARSETS = st.sampled_from(["utf-8", "gbk", "gb18030", "gb2312"])


def _encodable(name: str, charset: str) -> bool:
    try:
        name.encode(charset)
    except UnicodeEncodeError:
        return False
    return True


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(
    name=_NAMES,
    charset=_CHARSETS,
    style=st.sampled_from(["B", "Q", "2231", "8bit"]),
    chunk=st.integers(min_value=0, max_value=9),
)
def test_any_name_in_any_encoding_decodes_to_itself(
    name: str, charset: str, style: str, chunk: int
) -> None:
    if not _encodable(name, charset):
        charset = "gb18030"
    if style in ("B", "Q"):
        params = f'filename="{make_mails.rfc2047(name, charset, style, chunk)}"'
    elif style == "2231":
        params = make_mails.rfc2231("filename", name, charset, section=chunk)
    else:
        charset = "gbk" if charset != "utf-8" and _encodable(name, "gbk") else "utf-8"
        raw = name.encode(charset)
        # GBK bytes that also happen to be valid UTF-8 are ambiguous by
        # nature; UTF-8 wins by design.
        assume(charset == "utf-8" or not _is_utf8(raw) or raw.isascii())
        params = f'filename="{raw.decode("utf-8", "surrogateescape")}"'

    assert _filename(params) == name
