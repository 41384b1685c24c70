"""The change log as an Atom 1.0 document (RFC 4287): what GET /api/v1/changes.atom serves.

Every id is a urn:uuid derived from the deployment's base URL and the change's seq, so it is the
same on every fetch; every entry has a title, an updated time, a link to the model and a text
summary of what changed.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import quote
from xml.etree import ElementTree as ET

import msgspec

from shared.schemas.api import Change

ATOM_NS = "http://www.w3.org/2005/Atom"
CONTENT_TYPE = "application/atom+xml"
#: Characters XML 1.0 cannot carry at all.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_json = msgspec.json.Encoder().encode


def _text(value: str) -> str:
    return _NOT_XML.sub("\ufffd", value)


def _when(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _urn(name: str) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, name).urn


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, f"{{{ATOM_NS}}}{tag}", attrs)
    if text is not None:
        el.text = _text(text)
    return el


def _summary(c: Change) -> tuple[str, str]:
    model = f"{c.provider_id}/{c.model_id}"
    if c.kind != "updated" or not c.fields:
        return f"{model} {c.kind}", f"{model} was {c.kind}."
    names = sorted(c.fields)
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    lines = [f"{f}: {_json(old).decode()} -> {_json(new).decode()}" for f, (old, new) in sorted(c.fields.items())]
    return f"{model} updated: {shown}", "\n".join(lines)


def _entry(feed: ET.Element, base: str, c: Change) -> None:
    entry = _sub(feed, "entry")
    title, content = _summary(c)
    _sub(entry, "id", _urn(f"{base}/api/v1/changes#{c.seq}"))
    _sub(entry, "title", title)
    _sub(entry, "updated", _when(c.at))
    _sub(entry, "published", _when(c.at))
    href = f"{base}/api/v1/models/{quote(c.provider_id, safe='')}/{quote(c.model_id, safe='/')}"
    _sub(entry, "link", rel="alternate", type="application/json", href=href)
    _sub(entry, "category", term=c.kind, label=c.kind)
    _sub(entry, "category", term=_text(c.provider_id), scheme=f"{base}/api/v1/providers")
    _sub(entry, "content", content, type="text")


def atom_document(
    *,
    base: str,
    self_url: str,
    json_url: str,
    feed_key: str,
    changes: Sequence[Change],
    updated: datetime,
    next_url: str | None = None,
) -> bytes:
    """The feed of `changes`. `base` is the deployment's origin, `feed_key`
    what makes this feed itself (its filters), `updated` its time when `changes` is empty."""
    ET.register_namespace("", ATOM_NS)
    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    _sub(feed, "id", _urn(f"{base}/api/v1/changes.atom?{feed_key}"))
    _sub(feed, "title", "modelmeta: catalog changes")
    _sub(feed, "subtitle", "Models added, updated and removed in the catalog, field by field")
    _sub(feed, "updated", _when(max((c.at for c in changes), default=updated)))
    author = _sub(feed, "author")
    _sub(author, "name", "modelmeta")
    _sub(feed, "generator", "modelmeta")
    _sub(feed, "link", rel="self", type=CONTENT_TYPE, href=self_url)
    _sub(feed, "link", rel="alternate", type="application/json", href=json_url)
    if next_url is not None:
        _sub(feed, "link", rel="next", type=CONTENT_TYPE, href=next_url)
    for c in changes:
        _entry(feed, base, c)
    document: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return document
