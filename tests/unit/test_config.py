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


# -- the seed's variables: aliases of ours, which win when both are set ------------------------


def test_seed_base_url_names_the_document_under_it() -> None:
    s = Settings.from_env({"MODELSDEV_BASE_URL": "https://mirror.example.org/"})
    assert s.modelsdev_url == "https://mirror.example.org/api.json"
    assert s.resolved_source_kind == "document"
    assert Settings.from_env({"MODELSDEV_BASE_URL": "https://models.dev"}).modelsdev_url == (
        "https://models.dev/api.json"
    )


@pytest.mark.parametrize(
    ("seed", "ours", "attr", "seed_value", "our_value", "seed_expected", "our_expected"),
    [
        (
            "MODELSDEV_BASE_URL",
            "MODELSDEV_URL",
            "modelsdev_url",
            "https://a.example",
            "https://b.example/api.json",
            "https://a.example/api.json",
            "https://b.example/api.json",
        ),
        ("MODELSDEV_API_KEY", "UPSTREAM_TOKEN", "upstream_token", "seed-key", "our-token", "seed-key", "our-token"),
        ("MODELSDEV_REFRESH_INTERVAL", "REFRESH_INTERVAL", "refresh_interval", "600", "2h", 600.0, 7200.0),
        ("MODELSDEV_CACHE_TTL", "CACHE_TTL", "cache_ttl", "60", "5m", 60.0, 300.0),
        ("MODELSDEV_AUTO_REFRESH", "AUTO_REFRESH", "auto_refresh", "false", "true", False, True),
        ("MODELSDEV_ENABLED", "UPSTREAM_ENABLED", "upstream_enabled", "false", "true", False, True),
    ],
)
def test_seed_alias_and_precedence(
    seed: str, ours: str, attr: str, seed_value: str, our_value: str, seed_expected: object, our_expected: object
) -> None:
    default = getattr(Settings(), attr)
    assert seed_expected != default
    # Alone, the seed's name sets the value; with ours beside it, ours wins (whatever the order).
    assert getattr(Settings.from_env({seed: seed_value}), attr) == seed_expected
    assert getattr(Settings.from_env({ours: our_value}), attr) == our_expected
    assert getattr(Settings.from_env({seed: seed_value, ours: our_value}), attr) == our_expected
    assert getattr(Settings.from_env({ours: our_value, seed: seed_value}), attr) == our_expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MODELSDEV_BASE_URL", "models.dev"),
        ("MODELSDEV_REFRESH_INTERVAL", "often"),
        ("MODELSDEV_CACHE_TTL", "-1"),
        ("MODELSDEV_AUTO_REFRESH", "maybe"),
        ("MODELSDEV_ENABLED", "2"),
    ],
)
def test_bad_seed_value_names_the_seed_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_upstream_and_auto_refresh_are_on_by_default() -> None:
    s = Settings.from_env({})
    assert s.upstream_enabled
    assert s.auto_refresh
