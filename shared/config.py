"""Settings, read from the environment in exactly one place: Settings.from_env()."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from shared.enums import SourceKind
from shared.errors import ConfigError

_RATE_UNITS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
_DURATION_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A budget of `count` requests in any window of `period` seconds."""

    count: int
    period: float

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """Parse `100/minute`, `20/second`, `5/10s`-style strings."""
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(?:(\d+(?:\.\d+)?)\s*)?([a-z]+)\s*", text.lower())
        if not m:
            raise ValueError(f"expected COUNT/UNIT such as 100/minute, got {text!r}")
        count, mult, unit = int(m[1]), float(m[2] or 1), m[3].rstrip("s") or "s"
        unit = {"s": "second", "sec": "second", "min": "minute", "m": "minute", "h": "hour"}.get(unit, unit)
        if unit not in _RATE_UNITS or count < 1 or mult <= 0:
            raise ValueError(f"expected COUNT/UNIT such as 100/minute, got {text!r}")
        return cls(count, _RATE_UNITS[unit] * mult)


def parse_duration(text: str) -> float:
    """Seconds from `3600`, `90s`, `30m`, `6h` or `1d`."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text.lower())
    if not m or float(m[1]) <= 0:
        raise ValueError(f"expected a positive duration such as 3600, 30m or 6h, got {text!r}")
    return float(m[1]) * _DURATION_UNITS[m[2]]


def _check_url(value: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes or (parts.scheme != "file" and not parts.netloc):
        raise ValueError(f"expected a {'/'.join(schemes)} URL, got {value!r}")
    return value


def parse_schedule(text: str) -> tuple[float, ...]:
    """Delays in seconds from `0,5s,5m,30m`: each a duration, or 0 for immediately."""
    parts = [p.strip() for p in text.split(",")]
    if not parts or not all(parts):
        raise ValueError(f"expected comma-separated durations such as 0,5s,5m, got {text!r}")
    return tuple(0.0 if p == "0" else parse_duration(p) for p in parts)


def _boolean(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _key_prefix(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", value):
        raise ValueError(f"expected 1-64 characters of A-Z a-z 0-9 _ . : -, got {value!r}")
    return value


def _positive_int(text: str) -> int:
    v = int(text)
    if v <= 0:
        raise ValueError(f"expected a positive integer, got {text!r}")
    return v


def _port(text: str) -> int:
    v = int(text)
    if not 0 < v < 65536:
        raise ValueError(f"expected a TCP port 1..65535, got {text!r}")
    return v


def _choice(*options: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.lower() not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {text!r}")
        return text.lower()

    return parse


def _base_url(value: str) -> str:
    """The seed's MODELSDEV_BASE_URL names the site; the document is its /api.json."""
    return _check_url(value, ("http", "https", "file")).rstrip("/") + "/api.json"


def _tokens(value: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in value.split(",") if t.strip())


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(value: str) -> tuple[Network, ...]:
    """`10.0.0.0/8, 192.168.1.7, ::1`: addresses and CIDR blocks (a bare address is a /32 or /128)."""
    return tuple(ipaddress.ip_network(t, strict=False) for t in _tokens(value))


def _rate_limit_or_off(text: str) -> RateLimit | None:
    return None if text.lower() in ("off", "0", "none") else RateLimit.parse(text)


#: (variable, parser, Settings attribute), read in this order: a later variable setting the same
#: attribute wins, so our own names come after the seed's.
_Variable = tuple[str, Callable[[str], object], str]

#: The variables of the service modelmeta grew from, accepted as aliases of ours.
SEED_ALIASES: tuple[_Variable, ...] = (
    ("MODELSDEV_BASE_URL", _base_url, "modelsdev_url"),
    ("MODELSDEV_API_KEY", str, "upstream_token"),
    ("MODELSDEV_REFRESH_INTERVAL", parse_duration, "refresh_interval"),
    ("MODELSDEV_CACHE_TTL", parse_duration, "cache_ttl"),
    ("MODELSDEV_AUTO_REFRESH", _boolean, "auto_refresh"),
    ("MODELSDEV_ENABLED", _boolean, "upstream_enabled"),
)

VARIABLES: tuple[_Variable, ...] = (
    ("DATABASE_URL", lambda v: _check_url(v, ("postgresql", "postgres")), "database_url"),
    ("REDIS_URL", lambda v: _check_url(v, ("redis", "rediss", "unix")), "redis_url"),
    ("REDIS_PREFIX", _key_prefix, "redis_prefix"),
    ("MODELSDEV_URL", lambda v: _check_url(v, ("http", "https", "file")), "modelsdev_url"),
    ("SOURCE_KIND", _choice("auto", *SourceKind), "source_kind"),
    ("UPSTREAM_ENABLED", _boolean, "upstream_enabled"),
    ("UPSTREAM_TOKEN", str, "upstream_token"),
    ("UPSTREAM_RATE_LIMIT", RateLimit.parse, "upstream_rate_limit"),
    ("UPSTREAM_TIMEOUT", parse_duration, "upstream_timeout"),
    ("UPSTREAM_MAX_BYTES", _positive_int, "upstream_max_bytes"),
    ("UPSTREAM_ATTEMPTS", _positive_int, "upstream_attempts"),
    ("ADMIN_TOKENS", _tokens, "admin_tokens"),
    ("PORT", _port, "port"),
    ("AUTO_REFRESH", _boolean, "auto_refresh"),
    ("REFRESH_INTERVAL", parse_duration, "refresh_interval"),
    ("CACHE_TTL", parse_duration, "cache_ttl"),
    ("CACHE_ENABLED", _boolean, "cache_enabled"),
    ("CACHE_MAX_BYTES", _positive_int, "cache_max_bytes"),
    ("SEARCH_IN_MEMORY", _boolean, "search_in_memory"),
    ("LOG_FORMAT", _choice("auto", "json", "console"), "log_format"),
    ("LOG_LEVEL", _choice("debug", "info", "warning", "error"), "log_level"),
    # Process managers (honcho, foreman) give every process its own PORT: a worker serves its
    # metrics there unless WORKER_METRICS_PORT says otherwise (0 turns them off).
    ("PORT", _port, "worker_metrics_port"),
    ("WORKER_METRICS_PORT", lambda v: 0 if v == "0" else _port(v), "worker_metrics_port"),
    ("WORKER_HEARTBEAT_TIMEOUT_MS", _positive_int, "worker_heartbeat_timeout_ms"),
    ("WORKER_MAINTENANCE_CHANCE", _positive_int, "worker_maintenance_chance"),
    ("PROVIDER_MAX_ATTEMPTS", _positive_int, "provider_max_attempts"),
    ("STALE_RUN_AFTER", parse_duration, "stale_run_after"),
    # -- what a client can make a web process hold (issue 15) --
    ("API_RATE_LIMIT", _rate_limit_or_off, "api_rate_limit"),
    ("API_DOCUMENT_RATE_LIMIT", _rate_limit_or_off, "api_document_rate_limit"),
    ("TRUSTED_PROXIES", _networks, "trusted_proxies"),
    ("WEB_MAX_STREAMS", _positive_int, "web_max_streams"),
    ("WEB_MAX_STREAMS_PER_CLIENT", _positive_int, "web_max_streams_per_client"),
    ("WEB_CONCURRENCY", _positive_int, "web_concurrency"),
    ("WEBHOOK_ALLOW_PRIVATE", _boolean, "webhook_allow_private"),
    ("WEBHOOK_RETRY_SCHEDULE", parse_schedule, "webhook_retry_schedule"),
    ("WEBHOOK_TIMEOUT", parse_duration, "webhook_timeout"),
    ("WEBHOOK_RATE_LIMIT", RateLimit.parse, "webhook_rate_limit"),
    ("WEBHOOK_CONCURRENCY", _positive_int, "webhook_concurrency"),
    ("WEBHOOK_DISABLE_AFTER", parse_duration, "webhook_disable_after"),
)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a modelmeta process is configured with."""

    database_url: str = "postgresql://postgres@127.0.0.1:5432/modelmeta"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "modelmeta"
    modelsdev_url: str = "https://models.dev/api.json"
    source_kind: str = "auto"
    #: False: no upstream at all; refreshes fetch nothing (the embedded catalog fills an empty database).
    upstream_enabled: bool = True
    upstream_token: str | None = None
    upstream_rate_limit: RateLimit = field(default_factory=lambda: RateLimit(100, 60.0))
    upstream_timeout: float = 30.0
    upstream_max_bytes: int = 64 * 1024 * 1024
    upstream_attempts: int = 4
    admin_tokens: tuple[str, ...] = ()
    port: int = 8080
    #: False: the scheduler enqueues no refresh (it still leads, publishes its state and sweeps).
    auto_refresh: bool = True
    refresh_interval: float = 3600.0
    cache_ttl: float = 300.0
    cache_enabled: bool = True
    #: The most bytes a web process's response cache holds (every representation and key counted).
    cache_max_bytes: int = 128 * 1024 * 1024
    #: Each web process answers ranked searches from an in-memory structure (services/api/search.py).
    search_in_memory: bool = True
    log_format: str = "auto"
    log_level: str = "info"
    worker_metrics_port: int = 9191
    worker_heartbeat_timeout_ms: int = 60_000
    worker_maintenance_chance: int = 1000
    provider_max_attempts: int = 5
    stale_run_after: float = 600.0
    #: Per-client budgets of the web API (None: unlimited), kept in Redis and shared by every web process.
    api_rate_limit: RateLimit | None = None
    #: The whole-catalog documents' own budget (None: they share api_rate_limit's).
    api_document_rate_limit: RateLimit | None = None
    #: Peers whose X-Forwarded-For is believed (the right-most address not in these is the client).
    trusted_proxies: tuple[Network, ...] = ()
    #: Concurrent long-lived streams per web process, and per client within it.
    web_max_streams: int = 256
    web_max_streams_per_client: int = 4
    #: Web processes `modelmeta web` starts on the one port (SO_REUSEPORT).
    web_concurrency: int = 1
    # Change notifications (issue 12): webhook delivery.
    webhook_allow_private: bool = False
    webhook_retry_schedule: tuple[float, ...] = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
    webhook_timeout: float = 10.0
    webhook_rate_limit: RateLimit = field(default_factory=lambda: RateLimit(20, 1.0))
    webhook_concurrency: int = 4
    webhook_disable_after: float = 3 * 86400.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings; a bad value raises ConfigError naming the variable.

        The seed's variables (SEED_ALIASES) are read first, so that ours win when both are set.
        """
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for name, parse, attr in (*SEED_ALIASES, *VARIABLES):
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            try:
                values[attr] = parse(raw)
            except (ValueError, TypeError) as e:
                raise ConfigError(f"{name}: {e}") from None
        return dataclasses.replace(cls(), **values)  # type: ignore[arg-type]

    @property
    def resolved_source_kind(self) -> SourceKind:
        """`document` (a models.dev api.json, or a file) or `modelmeta` (another modelmeta's base URL).

        Auto-detection: a file, or a URL whose path ends in .json, is a document; any other URL is
        taken as a modelmeta base URL. SOURCE_KIND overrides it.
        """
        if self.source_kind != "auto":
            return SourceKind(self.source_kind)
        parts = urlsplit(self.modelsdev_url)
        is_document = parts.scheme == "file" or parts.path.endswith(".json")
        return SourceKind.DOCUMENT if is_document else SourceKind.MODELMETA

    @property
    def upstream_host(self) -> str:
        """The rate-limit key of the upstream: its host, or `file` for local files."""
        return urlsplit(self.modelsdev_url).netloc or "file"
