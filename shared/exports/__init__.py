"""Whole-catalog documents for other tools, built from a parsed models.dev document.

Pure functions (no I/O): the API serves them through its response cache, and tests build them from
the embedded catalogs. `model_schema` is models.dev's own `/model-schema.json`; `litellm` is the
catalog as a LiteLLM model cost map.
"""
