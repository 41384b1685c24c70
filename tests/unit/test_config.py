from __future__ import annotations

import pytest

from shared.config import RateLimit, Settings, parse_duration
from shared.errors import ConfigError


def test_defaults_without_environment() -> None:
    s = Settings.from_env({})
    assert s.modelsdev_url == "https://models.dev/api.json"
    assert s.upstream_rate_limit == RateLimit(100, 60.0)
    assert s.upstream_host == "models.dev"


def test_values_are_parsed() -> None:
    s = Settings.from_env(
        {"UPSTREAM_RATE_LIMIT": "20/second", "REFRESH_INTERVAL": "30m", "PORT": "9000", "ADMIN_TOKENS": "a, b,"}
    )
    assert s.upstream_rate_limit == RateLimit(20, 1.0)
    assert s.refresh_interval == 1800.0
    assert s.port == 9000
    assert s.admin_tokens == ("a", "b")
    assert Settings.from_env({"MODELSDEV_URL": "file:///srv/api.json"}).upstream_host == "file"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "mysql://x/y"),
        ("REDIS_URL", "localhost:6379"),
        ("MODELSDEV_URL", "ftp://models.dev/api.json"),
        ("UPSTREAM_RATE_LIMIT", "lots"),
        ("UPSTREAM_RATE_LIMIT", "0/minute"),
        ("PORT", "70000"),
        ("REFRESH_INTERVAL", "-5"),
        ("REDIS_PREFIX", "has space"),
        ("LOG_FORMAT", "xml"),
    ],
)
def test_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_durations() -> None:
    assert parse_duration("90") == 90
    assert parse_duration("2h") == 7200
    assert RateLimit.parse("5/10s") == RateLimit(5, 10.0)
