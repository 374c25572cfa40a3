"""The Chinese words notices use: figure labels, months, problem advice."""

from __future__ import annotations

import datetime as dt

from ingest.model import FIGURES, Number

FIGURE_LABELS: dict[str, str] = {
    "premises_inspected": "排查单位场所（家）",
    "evacuation_found": "安全疏散条件不足·发现（处）",
    "evacuation_fixed": "安全疏散条件不足·整改（处）",
    "barrier_found": "违规设置铁栅栏、防盗网、广告牌·发现（处）",
    "barrier_removed": "违规设置铁栅栏、防盗网、广告牌·拆除（处）",
    "barrier_area_m2": "违规设置铁栅栏、防盗网、广告牌·合计（平方米）",
    "lane_marking_painted": "消防车通道禁停标线·划线（处）",
    "obstruction_found": "占用、堵塞消防车通道障碍物·发现（处）",
    "obstruction_cleared": "占用、堵塞消防车通道障碍物·清理（处）",
    "drill_premises": "开展消防演练情况（家）",
    "training_premises": "开展消防培训情况（家）",
}

FORMATS = "Excel（.xlsx/.xls）、WPS 表格（.et）、Word（.docx/.doc）或 .ods"

# What the sender should do about each problem code of the JSON contract.
ADVICE: dict[str, str] = {
    "no-attachment": f"邮件中没有附件。请回复本邮件并附上填好的统计表（{FORMATS}）。",
    "unreadable-file": (
        "附件无法打开（可能已损坏、加密或未下载完整）。请重新保存后再发送，"
        f"格式可为 {FORMATS}，文件请勿加密码。"
    ),
    "unsupported-format": f"附件格式无法识别。请另存为 {FORMATS} 后重新发送。",
    "negative-value": "表中有负数。请核对所示单元格的数字，改正后重新发送整张表。",
    "not-a-number": "表中有无法识别为数字的内容。请在所示单元格只填写数字后重新发送。",
    "unknown-sender": "发件地址不在报送名单中。如需变更报送邮箱，请联系活动联络人。",
    "unit-unknown": "表中的报送单位不在名单中。请在“报送单位：”一栏填写单位全称后重新发送。",
    "period-unknown": "无法确定报表所属月份。请在“报送时间：”一栏或邮件主题中写明月份。",
}

DEFAULT_ADVICE = "请核对后重新发送统计表；如有疑问请联系活动联络人。"

# Problems a person (the coordinator) has to look at.
NEEDS_A_PERSON: frozenset[str] = frozenset(
    {
        "unknown-sender",
        "unit-unknown",
        "unreadable-file",
        "unsupported-format",
        "period-unknown",
        "unit-sender-mismatch",
    }
)


def period_label(period: str) -> str:
    """``2025-05`` as ``2025年5月``."""
    year, month = period.split("-")
    return f"{int(year)}年{int(month)}月"


def previous_period(period: str) -> str:
    year, month = (int(part) for part in period.split("-"))
    if month == 1:
        return f"{year - 1:04d}-12"
    return f"{year:04d}-{month - 1:02d}"


def period_of(moment: dt.datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def figure_lines(values: dict[str, Number]) -> list[tuple[str, Number]]:
    """The eleven figures as (label, value), in the template's order."""
    return [(FIGURE_LABELS[key], values.get(key, 0)) for key in FIGURES]


def advice_for(code: str) -> str:
    return ADVICE.get(code, DEFAULT_ADVICE)


def local_text(moment: dt.datetime, tz: dt.tzinfo) -> str:
    """An aware (or naive UTC, as stored) moment as local ``YYYY-MM-DD HH:MM``."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")
