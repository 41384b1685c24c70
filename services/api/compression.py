"""Content codings of cached answers: which one a request's `Accept-Encoding` picks, and how a
body is compressed into it (once per cache entry and coding, by services/api/cache.py)."""

from __future__ import annotations

import functools
import gzip
import re
from collections.abc import Callable
from typing import Final

import brotli
import zstandard

IDENTITY: Final = "identity"
#: The codings served, best first: on equal q-values the first listed wins.
CODINGS: Final = ("br", "zstd", "gzip")
#: The same, fastest to make first: for a body compressed for each request (an HTML page), where zstd
#: takes a tenth of brotli's time (0.4 ms against 4.7 for the catalog page) for a few percent more bytes.
FAST_CODINGS: Final = ("zstd", "br", "gzip")
#: A body this size or smaller is served as is: compressing it saves less than it costs.
MIN_SIZE: Final = 1024
#: A body larger than this is compressed in a thread, off the event loop.
THREADED_SIZE: Final = 256 * 1024

_QVALUE = re.compile(r"(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


# Levels: a small body is compressed on the event loop, in a millisecond or two; a large one (a
# whole-catalog document, once per catalog version) in a thread, harder: the real catalog's 2.4 MB
# become 0.20 MB gzip, 0.12 MB br 9, 0.13 MB zstd 12 in 0.1-0.3 s each (br 11 and zstd 19 take
# seconds for a few percent more).


def _brotli(body: bytes) -> bytes:
    return bytes(brotli.compress(body, quality=9 if len(body) > THREADED_SIZE else 5))


def _zstd(body: bytes) -> bytes:
    return zstandard.ZstdCompressor(level=12 if len(body) > THREADED_SIZE else 3).compress(body)


def _gzip(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=6, mtime=0)  # mtime 0: the same bytes every time


COMPRESSORS: Final[dict[str, Callable[[bytes], bytes]]] = {"br": _brotli, "zstd": _zstd, "gzip": _gzip}


def unpack(coding: str, body: bytes) -> bytes:
    """A body compressed by COMPRESSORS[coding], as it was."""
    if coding == "zstd":
        return bytes(zstandard.ZstdDecompressor().decompress(body))
    if coding == "br":
        return bytes(brotli.decompress(body))
    return gzip.decompress(body)


def negotiate(accept_encoding: str | None, codings: tuple[str, ...] = CODINGS) -> str:
    """The coding to answer in: the acceptable one with the highest q-value (RFC 9110 12.5.3), the
    first of `codings` on equal q-values, `identity` when none is, or when the header cannot be read."""
    if not accept_encoding:
        return IDENTITY
    if len(accept_encoding) > 200:
        return _negotiate(accept_encoding, codings)
    return _remembered(accept_encoding, codings)


@functools.lru_cache(maxsize=256)
def _remembered(accept_encoding: str, codings: tuple[str, ...]) -> str:
    return _negotiate(accept_encoding, codings)


def _negotiate(accept_encoding: str, codings: tuple[str, ...]) -> str:
    weights = _weights(accept_encoding)
    if weights is None:
        return IDENTITY
    wildcard = weights.get("*")
    best, best_q = IDENTITY, 0.0
    for coding in codings:
        q = weights.get(coding, wildcard if wildcard is not None else 0.0)
        if q > best_q:
            best, best_q = coding, q
    return best


def _weights(accept_encoding: str) -> dict[str, float] | None:
    """coding -> q-value of an Accept-Encoding header, or None when it is malformed."""
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        if not coding:
            continue
        if not _TOKEN.fullmatch(coding):
            return None
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() != "q" or not _QVALUE.fullmatch(value.strip()):
                return None
            q = float(value)
        weights[coding.lower()] = q
    return weights
