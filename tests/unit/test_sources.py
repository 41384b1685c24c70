"""What plan_refresh asks the upstream for."""

from __future__ import annotations

import pytest

from shared.config import Settings
from shared.enums import SourceKind
from shared.refresh import source_of
from shared.sources import document_request_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://models.dev/api.json", "https://models.dev/api.json?type=all"),
        ("http://127.0.0.1:8080/api.json", "http://127.0.0.1:8080/api.json?type=all"),
        # A query already there is kept as it is, byte for byte.
        ("https://h.example/api.json?region=eu%20west&x=", "https://h.example/api.json?region=eu%20west&x=&type=all"),
        # A type the operator chose is theirs.
        ("https://h.example/api.json?type=chat", "https://h.example/api.json?type=chat"),
        ("https://h.example/api.json?a=1&type=embedding,image", "https://h.example/api.json?a=1&type=embedding,image"),
        # A file has no query.
        ("file:///srv/models/api.json", "file:///srv/models/api.json"),
    ],
)
def test_document_request_url(url: str, expected: str) -> None:
    assert document_request_url(url) == expected


def test_source_of_each_kind() -> None:
    assert source_of(Settings()) == (SourceKind.DOCUMENT, "https://models.dev/api.json?type=all")
    assert source_of(Settings(modelsdev_url="file:///srv/api.json")) == (SourceKind.DOCUMENT, "file:///srv/api.json")
    # Another modelmeta is read through its REST API, which takes no type.
    for url in ("https://mm.example.org", "https://mm.example.org/api/v1/"):
        assert source_of(Settings(modelsdev_url=url)) == (
            SourceKind.MODELMETA,
            "https://mm.example.org/api/v1/providers?limit=500",
        )
