"""Reading and checking the TOML configuration.

Every key has a default here and the same default documented in
config.example.toml. A file with an unknown key, a value of the wrong type or
a missing required value is refused at start-up, naming the key.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import tomllib
import types
import typing
import zoneinfo
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from lifeline.errors import ConfigError

DEFAULT_PATH = "config.toml"
ENV_VAR = "LIFELINE_CONFIG"

# local@domain.tld, nothing more: enough to catch a name or a typo where an
# address belongs, without judging what a mail server would accept.
_ADDRESS = re.compile(r"[^@\s<>,;]+@[^@\s<>,;.]+(?:\.[^@\s<>,;.]+)+")


@dataclass(frozen=True)
class MailboxConfig:
    host: str = ""
    port: int = 993
    tls: str = "ssl"
    user: str = ""
    password_env: str = ""
    password_file: str = ""
    folder: str = "INBOX"
    ca_file: str = ""
    timeout_seconds: float = 30.0
    batch_size: int = 500
    poll_interval_seconds: int = 300
    idle: bool = True
    max_attachment_bytes: int = 25 * 1024 * 1024


@dataclass(frozen=True)
class StoreConfig:
    data_dir: str = "data"
    url: str = ""


@dataclass(frozen=True)
class RosterConfig:
    file: str = ""


@dataclass(frozen=True)
class ReportingConfig:
    timezone: str = "Asia/Shanghai"
    deadline_day: int = 20
    district: str = "全区"


@dataclass(frozen=True)
class SmtpConfig:
    host: str = ""
    port: int = 465
    tls: str = "ssl"
    user: str = ""
    password_env: str = ""
    password_file: str = ""
    sender: str = ""
    timeout_seconds: float = 30.0
    max_per_minute: int = 20


@dataclass(frozen=True)
class ReminderStep:
    step: str
    day: int
    time: str = "09:00"
    kind: str = "reminder"


DEFAULT_LADDER = (
    ReminderStep(step="first", day=15),
    ReminderStep(step="second", day=19),
    ReminderStep(step="overdue", day=21, kind="overdue"),
)


@dataclass(frozen=True)
class NotifyConfig:
    outbox_dir: str = ""
    coordinator: str = ""
    templates_dir: str = ""
    receipts_to_unknown_senders: bool = False
    reminders: tuple[ReminderStep, ...] = DEFAULT_LADDER
    skip_weekends: bool = False
    holidays: tuple[str, ...] = ()
    summary_day: int = 21
    summary_time: str = "08:00"
    stale_poll_hours: float = 6.0


@dataclass(frozen=True)
class Config:
    mailbox: MailboxConfig = field(default_factory=MailboxConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    roster: RosterConfig = field(default_factory=RosterConfig)
    reporting: ReportingConfig = field(default_factory=ReportingConfig)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    source: Path | None = None

    @property
    def data_dir(self) -> Path:
        return self.resolve(self.store.data_dir)

    @property
    def database_url(self) -> str:
        if self.store.url:
            return self.store.url
        return f"sqlite:///{self.data_dir / 'lifeline.db'}"

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.reporting.timezone)

    def resolve(self, path: str) -> Path:
        """A path from the file, taken relative to the file's folder."""
        base = self.source.parent if self.source else Path.cwd()
        return (base / Path(path).expanduser()).resolve()


# The TOML name of a field where Python needs another one.
_RENAMED = {"sender": "from"}


def find_path(explicit: str | None) -> Path:
    """--config, else $LIFELINE_CONFIG, else ./config.toml."""
    return Path(explicit or os.environ.get(ENV_VAR) or DEFAULT_PATH)


def load(path: Path) -> Config:
    """Read and check the configuration file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such configuration file; copy config.example.toml "
            f"there, or name another with --config or ${ENV_VAR}"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from exc

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc

    config = from_dict(data, source=path.resolve())
    return config


def from_dict(data: dict[str, Any], source: Path | None = None) -> Config:
    """Build a checked Config from parsed TOML."""
    sections = _build(Config, data, prefix="", skip=frozenset({"source"}))
    config = dataclasses.replace(sections, source=source)
    _check(config)
    return config


def _build(cls: type, data: Any, prefix: str, skip: frozenset[str] = frozenset()) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.')}: expected a table of keys")

    fields = {
        _RENAMED.get(f.name, f.name): f
        for f in dataclasses.fields(cls)
        if f.name not in skip
    }
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key {prefix}{unknown[0]}; the keys of "
            f"[{prefix.rstrip('.') or 'top level'}] are: "
            + ", ".join(sorted(fields))
        )

    required = [
        key
        for key, f in fields.items()
        if f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    absent = [key for key in required if key not in data]
    if absent:
        raise ConfigError(f"{prefix.rstrip('.')}: missing key {absent[0]}")

    hints = typing.get_type_hints(cls)
    values = {
        f.name: _convert(hints[f.name], data[key], prefix + key)
        for key, f in fields.items()
        if key in data
    }
    return cls(**values)


def _convert(hint: Any, value: Any, key: str) -> Any:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _build(hint, value, key + ".")

    origin = typing.get_origin(hint)
    if origin is tuple:
        item = typing.get_args(hint)[0]
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return tuple(
            _convert(item, v, f"{key}[{i}]") for i, v in enumerate(value)
        )

    if origin in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ConfigError(
            f"{key}: expected {hint.__name__}, got {type(value).__name__} "
            f"{value!r}"
        )
    return value


def _check(config: Config) -> None:
    for section in ("mailbox", "smtp"):
        tls = getattr(config, section).tls
        if tls not in ("ssl", "starttls", "none"):
            raise ConfigError(
                f'{section}.tls: must be "ssl", "starttls" or "none", '
                f"got {tls!r}"
            )

    try:
        zoneinfo.ZoneInfo(config.reporting.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"reporting.timezone: unknown time zone "
            f"{config.reporting.timezone!r}; use a name like "
            f'"Asia/Shanghai"'
        ) from None

    if not 1 <= config.reporting.deadline_day <= 28:
        raise ConfigError(
            "reporting.deadline_day: must be a day from 1 to 28, got "
            f"{config.reporting.deadline_day}"
        )

    if config.mailbox.poll_interval_seconds < 1:
        raise ConfigError("mailbox.poll_interval_seconds: must be at least 1")

    for i, step in enumerate(config.notify.reminders):
        if not 1 <= step.day <= 31 or step.kind not in ("reminder", "overdue"):
            raise ConfigError(
                f"notify.reminders[{i}]: day must be 1..31 and kind "
                f'"reminder" or "overdue"'
            )
        _check_time(step.time, f"notify.reminders[{i}].time")
    _check_time(config.notify.summary_time, "notify.summary_time")

    for i, day in enumerate(config.notify.holidays):
        _check_date(day, f"notify.holidays[{i}]")
    _check_address(config.notify.coordinator, "notify.coordinator")
    # The From header may carry a display name: "消防办 <xf@example.cn>".
    _check_address(parseaddr(config.smtp.sender)[1], "smtp.from", config.smtp.sender)


def _check_time(value: str, key: str) -> None:
    hours, _, minutes = value.partition(":")
    if not (hours.isdigit() and minutes.isdigit()) or int(hours) > 23 or int(
        minutes
    ) > 59:
        raise ConfigError(f'{key}: expected "HH:MM", got {value!r}')


def _check_date(value: str, key: str) -> None:
    """Holidays are compared as text with dates written YYYY-MM-DD, so the
    other forms fromisoformat accepts (20251001) would never match."""
    try:
        valid = dt.date.fromisoformat(value).isoformat() == value
    except ValueError:
        valid = False
    if not valid:
        raise ConfigError(
            f'{key}: expected a date written "YYYY-MM-DD" (2025-10-01), got {value!r}'
        )


def _check_address(address: str, key: str, value: str | None = None) -> None:
    """An address, when one is set at all, must look like one."""
    value = address if value is None else value
    if value and not is_address(address):
        raise ConfigError(
            f"{key}: {value!r} is not a mail address; write it as name@example.cn"
        )


def is_address(text: str) -> bool:
    """Whether ``text`` has the shape of a mail address, local@domain.tld."""
    return _ADDRESS.fullmatch(text) is not None


def require(value: str, key: str) -> str:
    """A value that the command at hand cannot do without."""
    if not value:
        raise ConfigError(f"{key}: missing; set it in the configuration file")
    return value


def read_password(section: str, password_env: str, password_file: str) -> str:
    """The secret named by ``password_env`` or ``password_file``.

    Passwords never live in the configuration file itself, so the file can
    be shared and kept in version control.
    """
    if password_env:
        value = os.environ.get(password_env)
        if value is None:
            raise ConfigError(
                f"{section}.password_env: the environment variable "
                f"{password_env} is not set; set it (systemd: in the "
                f"EnvironmentFile) to the password or 授权码"
            )
        return value

    if password_file:
        try:
            return Path(password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"{section}.password_file: cannot read {password_file} "
                f"({exc.strerror})"
            ) from exc

    raise ConfigError(
        f"{section}: no password; set password_env (an environment "
        f"variable's name) or password_file"
    )
