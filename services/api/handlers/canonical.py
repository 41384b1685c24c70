"""Canonical models (models.dev's model cards): the list, and one card with every offering linked
to it ("where can I run this model, and at what price")."""

from __future__ import annotations

from aiohttp import web

from services.api import keys
from services.api.cache import ALL
from services.api.respond import Cached, json_page
from shared.db import canonical_reads
from shared.errors import NotFound
from shared.schemas.api import CanonicalModelsQuery, CanonicalPath, Query


async def list_canonical_models(request: web.Request, *, query: CanonicalModelsQuery) -> Cached:
    """The cards by id, each as received with modelmeta's fields: what another modelmeta mirrors
    them from. Tagged with every provider, so that the pages a mirror reads in a row carry the
    same catalog version unless the catalog changed between them."""
    pool = request.app[keys.POOL]
    q = query.q.strip() if query.q is not None else None
    families = [f.strip() for f in query.family if f.strip()]

    async def build() -> bytes:
        docs, total, last = await canonical_reads.list_cards(
            pool,
            q=q or None,
            families=families,
            has_benchmarks=query.has_benchmarks,
            include_removed=query.include_removed,
            after_id=query.cursor,
            limit=query.limit,
        )
        return json_page(docs, total, last)

    return Cached(frozenset({ALL}), build)


async def get_canonical_model(request: web.Request, *, query: Query, path: CanonicalPath) -> Cached:
    """One card (listed or removed) with its listed offerings; 404 when there is no such card."""
    pool, canonical_id = request.app[keys.POOL], f"{path.lab}/{path.id}"

    async def build() -> bytes:
        doc = await canonical_reads.get_card(pool, canonical_id)
        if doc is None:
            raise NotFound(f"no canonical model {canonical_id}")
        return doc.encode()

    return Cached(frozenset({ALL}), build)  # its offerings are any provider's
