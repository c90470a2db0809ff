"""Settings from the environment and `.env`, validated once at start-up.

The variable names are a public contract (see README): deployments set them, so renaming
one breaks someone. A missing or malformed setting must stop start-up with one line.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

import phonenumbers
from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.guard.hours import CallingHours, parse_days, parse_overrides, parse_window
from storage.stores import POSTGRES_SCHEMES

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
SLACK_ID = re.compile(r"^[UWCGD][A-Z0-9]{2,}$")
# A comma-separated list in the environment (NoDecode: not JSON, as pydantic-settings
# would otherwise read list-typed variables).
IdList = Annotated[frozenset[str], NoDecode]
ChannelLanguages = Annotated[dict[str, str], NoDecode]
# The caller number of simulated calls when RETELL_FROM_NUMBER is not set (a 555-01xx
# number: reserved for fiction, never a real line).
SIMULATED_FROM_NUMBER = "+14155550100"


class Settings(BaseSettings):
    """Every setting the app reads. Field aliases are the environment variable names."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        case_sensitive=True,
    )

    # Several workspaces: Slack's OAuth install flow (bot/slack/installs.py) instead of
    # one workspace's SLACK_BOT_TOKEN.
    slack_client_id: str | None = Field(default=None, alias="SLACK_CLIENT_ID")
    slack_client_secret: str | None = Field(default=None, alias="SLACK_CLIENT_SECRET",
                                            validate_default=True)
    slack_state_secret: str | None = Field(default=None, alias="SLACK_STATE_SECRET",
                                           validate_default=True)
    slack_bot_token: str | None = Field(default=None, alias="SLACK_BOT_TOKEN",
                                        validate_default=True)
    slack_app_token: str | None = Field(default=None, alias="SLACK_APP_TOKEN")
    # Not needed in Socket Mode (SLACK_APP_TOKEN), where Slack never calls our URL.
    slack_signing_secret: str | None = Field(
        default=None, alias="SLACK_SIGNING_SECRET", validate_default=True
    )
    slack_api_url: str = Field(default="https://slack.com/api/", alias="SLACK_API_URL")

    # live: calls go to Retell. simulate: Retell is simulated inside the server (README:
    # "Try the Slack side without a Retell account"); the Retell settings become optional.
    retell_mode: Literal["live", "simulate"] = Field(default="live", alias="RETELL_MODE")
    retell_api_key: str = Field(default="", alias="RETELL_API_KEY", validate_default=True)
    retell_webhook_key: str | None = Field(default=None, alias="RETELL_WEBHOOK_KEY")
    retell_from_number: str = Field(default="", alias="RETELL_FROM_NUMBER",
                                    validate_default=True)
    retell_agent_id: str | None = Field(default=None, alias="RETELL_AGENT_ID")
    retell_base_url: str = Field(default="https://api.retellai.com", alias="RETELL_BASE_URL")
    retell_timeout_seconds: float = Field(
        default=15.0, gt=0, le=120, alias="CALLBOT_RETELL_TIMEOUT"
    )

    database_url: str = Field(default="sqlite:///./callbot.db", alias="DATABASE_URL")
    # PostgreSQL only: connections each instance keeps open at most.
    database_pool_size: int = Field(default=10, ge=1, le=200, alias="CALLBOT_DATABASE_POOL")
    host: str = Field(default="0.0.0.0", alias="HOST")
    port: int = Field(default=3000, ge=1, le=65535, alias="PORT")

    default_region: str = Field(default="US", alias="CALLBOT_DEFAULT_REGION")
    notify_channel: str | None = Field(default=None, alias="CALLBOT_NOTIFY_CHANNEL")
    show_full_numbers: bool = Field(default=False, alias="CALLBOT_SHOW_FULL_NUMBERS")
    poll_after_seconds: float = Field(default=120.0, gt=0, le=86400,
                                      alias="CALLBOT_POLL_AFTER_SECONDS")
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")
    # The language of channel posts (cards, summaries) and of people whose Slack locale is
    # neither English nor Thai; CALLBOT_CHANNEL_LANGUAGES=C024BE91L=th,... per channel.
    language: Literal["en", "th"] = Field(default="en", alias="CALLBOT_LANGUAGE")
    channel_languages: ChannelLanguages = Field(default_factory=dict,
                                                alias="CALLBOT_CHANNEL_LANGUAGES")
    # The public https URL Slack and Retell reach this server at (checks compare it with
    # the agents' webhook URLs); empty in Socket Mode with a simulated or polled Retell.
    public_url: str | None = Field(default=None, alias="CALLBOT_PUBLIC_URL")

    # Reliability: how hard to retry, how fast to post, how long to wait when stopping.
    retell_retries: int = Field(default=2, ge=0, le=10, alias="CALLBOT_RETELL_RETRIES")
    slack_channel_rate: float = Field(default=1.0, gt=0, le=1000,
                                      alias="CALLBOT_SLACK_CHANNEL_RATE")
    outbox_retry_base: float = Field(default=1.0, gt=0, le=3600,
                                     alias="CALLBOT_OUTBOX_RETRY_BASE")
    outbox_retry_max: float = Field(default=300.0, gt=0, le=86400,
                                    alias="CALLBOT_OUTBOX_RETRY_MAX")
    outbox_max_attempts: int = Field(default=50, ge=1, le=1000,
                                     alias="CALLBOT_OUTBOX_MAX_ATTEMPTS")
    shutdown_timeout: float = Field(default=10.0, gt=0, le=300,
                                    alias="CALLBOT_SHUTDOWN_TIMEOUT")

    # Guardrails (README: "Running it safely"). Empty lists mean everyone / everywhere / all.
    allowed_users: IdList = Field(default=frozenset(), alias="CALLBOT_ALLOWED_USERS")
    allowed_channels: IdList = Field(default=frozenset(), alias="CALLBOT_ALLOWED_CHANNELS")
    admins: IdList = Field(default=frozenset(), alias="CALLBOT_ADMINS")
    allowed_countries: IdList = Field(default=frozenset(), alias="CALLBOT_ALLOWED_COUNTRIES")
    allow_special_numbers: bool = Field(default=False, alias="CALLBOT_ALLOW_SPECIAL_NUMBERS")
    user_calls_per_hour: int = Field(default=0, ge=0, le=100_000,
                                     alias="CALLBOT_USER_CALLS_PER_HOUR")  # 0: no limit
    user_calls_per_day: int = Field(default=0, ge=0, le=1_000_000,
                                    alias="CALLBOT_USER_CALLS_PER_DAY")
    max_concurrent_calls: int = Field(default=20, ge=0, le=100_000,
                                      alias="CALLBOT_MAX_CONCURRENT_CALLS")
    number_calls_per_day: int = Field(default=0, ge=0, le=1000,
                                      alias="CALLBOT_NUMBER_CALLS_PER_DAY")  # 0: no cap
    # In the callee's local time (README: "Calling hours"): HH:MM-HH:MM or `any`; days such
    # as mon-fri (empty: every day); per-region windows such as US-FL=08:00-20:00,GB=...
    calling_hours: str = Field(default="08:00-21:00", alias="CALLBOT_CALLING_HOURS")
    calling_days: str = Field(default="", alias="CALLBOT_CALLING_DAYS")
    calling_hours_overrides: str = Field(default="",
                                         alias="CALLBOT_CALLING_HOURS_OVERRIDES")
    # Scheduled calls: how far ahead, and how late (after a restart) one is still placed.
    schedule_max_days: int = Field(default=90, ge=1, le=3650, alias="CALLBOT_SCHEDULE_MAX_DAYS")
    schedule_grace_minutes: float = Field(default=15, ge=0, le=7 * 24 * 60,
                                          alias="CALLBOT_SCHEDULE_GRACE_MINUTES")
    # Campaigns: how fast calls go to Retell (all campaigns together), and how many of one
    # campaign may be live at once at most (README: "Campaigns").
    retell_calls_per_second: float = Field(default=1.0, gt=0, le=1000,
                                           alias="CALLBOT_RETELL_CALLS_PER_SECOND")
    campaign_max_concurrency: int = Field(default=50, ge=1, le=10_000,
                                          alias="CALLBOT_CAMPAIGN_MAX_CONCURRENCY")
    campaign_card_seconds: float = Field(default=3.0, ge=0.2, le=600,
                                         alias="CALLBOT_CAMPAIGN_CARD_SECONDS")
    post_transcripts: bool = Field(default=True, alias="CALLBOT_POST_TRANSCRIPTS")
    post_recordings: bool = Field(default=True, alias="CALLBOT_POST_RECORDINGS")
    retention_days: int = Field(default=0, ge=0, le=36_500,
                                alias="CALLBOT_RETENTION_DAYS")  # 0: keep everything

    # Hardening: who from outside the workspace, bookkeeping that would only grow, and the
    # server's defences against slow or hostile clients (README: "Running it safely").
    allow_external_users: bool = Field(default=False, alias="CALLBOT_ALLOW_EXTERNAL_USERS")
    housekeeping_days: int = Field(default=30, ge=1, le=36_500,
                                   alias="CALLBOT_HOUSEKEEPING_DAYS")
    max_connections: int = Field(default=4096, ge=16, le=1_000_000,
                                 alias="CALLBOT_MAX_CONNECTIONS")
    header_timeout: float = Field(default=10.0, gt=0, le=300, alias="CALLBOT_HEADER_TIMEOUT")
    body_timeout: float = Field(default=30.0, gt=0, le=600, alias="CALLBOT_BODY_TIMEOUT")

    @field_validator(
        "retell_webhook_key", "retell_agent_id", "slack_app_token", "notify_channel",
        "slack_signing_secret", "slack_client_id", "slack_client_secret", "slack_state_secret",
        "slack_bot_token",
    )
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("allowed_users", "allowed_channels", "admins", mode="before")
    @classmethod
    def _slack_ids(cls, value: Any) -> frozenset[str]:
        ids = _split(value)
        bad = sorted(i for i in ids if not SLACK_ID.match(i))
        if bad:
            raise ValueError(f"must be Slack ids such as U024BE7LH or C024BE91L, not {bad[0]!r}")
        return ids

    @field_validator("allowed_countries", mode="before")
    @classmethod
    def _countries(cls, value: Any) -> frozenset[str]:
        codes = frozenset(c.upper() for c in _split(value))
        bad = sorted(codes - phonenumbers.SUPPORTED_REGIONS)
        if bad:
            raise ValueError(f"must be ISO country codes such as US,CA,GB, not {bad[0]!r}")
        return codes

    @field_validator("retell_api_key")
    @classmethod
    def _key_unless_simulated(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip()
        if not value:
            if info.data.get("retell_mode") != "simulate":
                raise PydanticCustomError("missing", "Field required")
            return "sim_" + secrets.token_hex(16)  # the simulator signs its webhooks with it
        return value

    @field_validator("retell_from_number")
    @classmethod
    def _e164(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip()
        if not value:
            if info.data.get("retell_mode") != "simulate":
                raise PydanticCustomError("missing", "Field required")
            return SIMULATED_FROM_NUMBER
        if not E164.match(value):
            raise ValueError("must be an E.164 number such as +14155550123")
        return value

    @field_validator("channel_languages", mode="before")
    @classmethod
    def _channel_languages(cls, value: Any) -> dict[str, str]:
        if isinstance(value, dict):
            return value
        languages: dict[str, str] = {}
        for pair in _split(value):
            channel, _, lang = pair.partition("=")
            channel, lang = channel.strip(), lang.strip().lower()
            if not SLACK_ID.match(channel) or lang not in ("en", "th"):
                raise ValueError(f"must be pairs such as C024BE91L=th, not {pair!r}")
            languages[channel] = lang
        return languages

    @field_validator("calling_hours")
    @classmethod
    def _calling_hours(cls, value: str) -> str:
        parse_window(value)
        return value.strip()

    @field_validator("calling_days")
    @classmethod
    def _calling_days(cls, value: str) -> str:
        parse_days(value)
        return value.strip()

    @field_validator("calling_hours_overrides")
    @classmethod
    def _calling_overrides(cls, value: str) -> str:
        parse_overrides(value)
        return value.strip()

    @property
    def hours(self) -> CallingHours:
        """The calling hours, read (the validators above have checked they can be)."""
        return CallingHours(parse_window(self.calling_hours), parse_days(self.calling_days),
                            parse_overrides(self.calling_hours_overrides))

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        value = (value or "").strip().rstrip("/")
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must be the server's http(s) URL, such as https://calls.example.com")
        return value or None

    def channel_language(self, channel_id: str | None) -> str:
        """The language posts in this channel are written in."""
        return self.channel_languages.get(channel_id or "", self.language)

    @property
    def simulated(self) -> bool:
        return self.retell_mode == "simulate"

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value if value.endswith("/") else value + "/"

    @field_validator("retell_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if value.startswith(POSTGRES_SCHEMES):
            parts = urlsplit(value)
            if not parts.hostname and "host=" not in parts.query:
                raise ValueError("must name a server: postgresql://user:pass@host:5432/db")
            return value
        if not value.startswith("sqlite:///") or len(value) == len("sqlite:///"):
            raise ValueError("must look like sqlite:///path/to/file.db or "
                             "postgresql://user:pass@host:5432/db")
        return value

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str) -> str:
        value = value.strip().upper()
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError("must be an ISO country code such as US or GB")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        value = value.strip().upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value

    @field_validator("slack_signing_secret")
    @classmethod
    def _secret_unless_socket_mode(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and not info.data.get("slack_app_token"):
            raise PydanticCustomError("missing", "Field required")
        return value

    @field_validator("slack_client_secret", "slack_state_secret")
    @classmethod
    def _oauth_secrets(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("slack_client_id"):
            raise PydanticCustomError("missing", "Field required")
        if value is not None and len(value) < 8 and info.field_name == "slack_state_secret":
            raise ValueError("must be a long random string (32 characters or more is best)")
        return value

    @field_validator("slack_bot_token")
    @classmethod
    def _one_workspace_or_oauth(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and not info.data.get("slack_client_id"):
            raise PydanticCustomError("missing", "Field required")
        if value is not None and info.data.get("slack_client_id"):
            raise ValueError("must be unset when SLACK_CLIENT_ID is set (the install flow "
                             "keeps a token per workspace)")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not value.startswith("xapp-"):
            raise ValueError("must be an app-level token starting with xapp-")
        if value is not None and info.data.get("slack_client_id"):
            raise ValueError("must be unset when SLACK_CLIENT_ID is set (Socket Mode serves "
                             "one workspace; the install flow needs Slack to reach our URL)")
        return value

    @property
    def oauth(self) -> bool:
        """Several workspaces through Slack's install flow, rather than one bot token."""
        return self.slack_client_id is not None

    @property
    def webhook_key(self) -> str:
        """Retell signs webhooks with the key marked for webhooks, by default the API key."""
        return self.retell_webhook_key or self.retell_api_key

    @property
    def database_path(self) -> Path:
        """The SQLite file (only meaningful when `uses_postgres` is false)."""
        return Path(self.database_url.removeprefix("sqlite:///"))

    @property
    def uses_postgres(self) -> bool:
        return self.database_url.startswith(POSTGRES_SCHEMES)

    @property
    def database_label(self) -> str:
        """DATABASE_URL as logs and errors may show it: a password never appears."""
        return redact_url(self.database_url)


def redact_url(url: str) -> str:
    """`url` with its password (in the authority or a `password=` parameter) as ***."""
    parts = urlsplit(url)
    if parts.password is None and "password=" not in parts.query.lower():
        return url  # nothing to hide (and sqlite:/// keeps its three slashes)
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}:***@{host}"
    query = re.sub(r"(?i)(password=)[^&]*", r"\1***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _split(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(part.strip() for part in value.split(",") if part.strip())
    return frozenset(str(v).strip() for v in value or () if str(v).strip())


class SettingsError(Exception):
    """Start-up cannot go on; the message is the one line shown to the operator."""


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning pydantic's report into one line naming every bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(describe_errors(exc)) from None


def describe_errors(exc: ValidationError) -> str:
    missing: list[str] = []
    invalid: list[str] = []
    for err in exc.errors():
        name = _env_name(err.get("loc", ()))
        if err.get("type") == "missing":
            missing.append(name)
        else:
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            invalid.append(f"{name} {msg}")
    parts = []
    if missing:
        parts.append("missing required settings: " + ", ".join(missing))
    if invalid:
        parts.append("invalid settings: " + "; ".join(invalid))
    return "; ".join(parts)


def _env_name(loc: tuple[int | str, ...]) -> str:
    """Map a pydantic location (field name or alias) back to the environment variable."""
    if not loc:
        return "settings"
    key = str(loc[0])
    field = Settings.model_fields.get(key)
    if field is not None and field.alias:
        return field.alias
    return key
