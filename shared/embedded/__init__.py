"""Real models.dev catalogs shipped inside the package (MIT, see LICENSE-models.dev beside this file).

The newest is the embedded offline catalog: what a refresh loads when the database is empty and
the upstream cannot be reached. The older one is kept for tests and benchmarks, so that a fresh
clone runs every test without the team's reference folder.
"""

from __future__ import annotations

import gzip
from functools import cache
from importlib import resources

#: The catalog a new deployment serves when models.dev cannot be reached.
EMBEDDED_CATALOG = "api-2026-07-02"
#: models.dev's /models.json at the same commit as EMBEDDED_CATALOG.
EMBEDDED_MODELS = "models-2026-07-02"
#: Every document shipped here, oldest first.
DOCUMENTS = ("api-2026-03-01", "api-2026-07-02", "models-2026-07-02")
#: The source URL a run records when it loaded the embedded catalog.
EMBEDDED_URL = f"embedded:{EMBEDDED_CATALOG}"
#: ... and the models document it loaded with it.
EMBEDDED_MODELS_URL = f"embedded:{EMBEDDED_MODELS}"


@cache
def document(name: str) -> bytes:
    """One shipped document, decompressed (exactly the bytes models.dev served)."""
    if name not in DOCUMENTS:
        raise KeyError(f"no embedded document {name!r}; expected one of {', '.join(DOCUMENTS)}")
    return gzip.decompress((resources.files(__name__) / f"{name}.json.gz").read_bytes())


def embedded_catalog() -> bytes:
    """The embedded offline catalog (models.dev's api.json of 2026-07-02)."""
    return document(EMBEDDED_CATALOG)
