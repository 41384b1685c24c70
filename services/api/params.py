"""Request parameters declared once, as the msgspec Structs of shared/schemas/api.py.

decode() turns a route's query string or path into its Struct and reports every problem at once
(unknown parameter, wrong type, out of range, bad enum value, missing) as invalid_params;
describe() turns the same Struct into the route's OpenAPI parameters. A list-typed field is a
comma-separated list (OpenAPI `style: form, explode: false`).
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import msgspec

from shared.errors import BadRequest

S = TypeVar("S", bound=msgspec.Struct)
Location = Literal["query", "path", "header"]
_REF = "#/components/schemas/{name}"


@dataclass(frozen=True, slots=True)
class _Field:
    type: Any
    is_list: bool
    #: Takes a number (its text is read as a JSON number) or a boolean (true/false, 1/0).
    numeric: bool
    boolean: bool
    required: bool
    expected: str


def _unwrap(tp: Any) -> Any:
    """A field type without its Annotated metadata."""
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _present(tp: Any) -> Any:
    """The type of a parameter that is there: an optional field's type without None (a query says
    null by leaving a parameter out; the text "null" is no value of it)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        kept = [a for a in typing.get_args(tp) if a is not type(None)]
        return kept[0] if len(kept) == 1 else typing.Union[tuple(kept)]  # noqa: UP007
    return tp


def _members(tp: Any) -> list[Any]:
    """The plain types a field type may hold (its union's members, without metadata)."""
    tp = _unwrap(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [m for a in typing.get_args(tp) for m in _members(a)]
    return [tp]


@functools.cache
def _schema(spec: type[msgspec.Struct]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Struct's JSON schema and the components it refers to (enums)."""
    (_,), components = msgspec.json.schema_components([spec], ref_template=_REF)
    return components.pop(spec.__name__), components


@functools.cache
def _fields(spec: type[msgspec.Struct]) -> dict[str, _Field]:
    schema, components = _schema(spec)
    return {
        f.encode_name: _Field(
            type=_present(f.type),
            is_list=typing.get_origin(_unwrap(_present(f.type))) is list,
            numeric=any(m in (int, float) for m in _members(f.type)),
            boolean=bool in _members(f.type),
            required=f.required,
            expected=expectation(schema["properties"][f.encode_name], components),
        )
        for f in msgspec.structs.fields(spec)
    }


def _shown(raw: str) -> str:
    return repr(raw if len(raw) <= 80 else raw[:80] + "...")


def decode(values: Mapping[str, str], spec: type[S], where: Location = "query") -> S:
    """The Struct of a query string, a path's or a header's parameters; BadRequest naming every bad one."""
    fields = _fields(spec)
    if where == "header":  # a request has many headers: only the declared ones are the route's
        values = {name: values[name] for name in fields if name in values}
    errors: list[tuple[str, str]] = []
    converted: dict[str, Any] = {}
    for name in dict.fromkeys(values):
        raw = values[name]
        field = fields.get(name)
        if "\x00" in raw or "\x00" in name:
            errors.append((name, "contains a NUL character"))
        elif field is None:
            if spec.__struct_config__.forbid_unknown_fields:  # a lenient Struct ignores the rest
                errors.append((name, "unknown parameter"))
        elif len(getattr(values, "getall", lambda n: [n])(name)) > 1:
            errors.append((name, "given more than once (a list is comma-separated)"))
        else:
            try:
                converted[name] = msgspec.convert(_value(raw, field), field.type, strict=not field.boolean)
            except msgspec.ValidationError:
                errors.append((name, f"expected {field.expected}, got {_shown(raw)}"))
    errors += [(name, "required") for name, f in fields.items() if f.required and name not in values]
    if errors:
        raise BadRequest(f"invalid {where} parameters", errors)
    return spec(**{_name(spec, k): v for k, v in converted.items()})


def _value(raw: str, field: _Field) -> Any:
    """A parameter's text as the value the document describes: a list split on commas (and nothing
    else), a number read as a JSON number; text otherwise (a date, a time, an enum are text)."""
    if field.is_list:
        return raw.split(",") if raw else []
    if field.numeric:
        try:
            number = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return raw
        return number if isinstance(number, int | float) and not isinstance(number, bool) else raw
    return raw


def _name(spec: type[msgspec.Struct], encoded: str) -> str:
    """The attribute of a parameter whose Struct field is renamed (`Idempotency-Key`)."""
    return _attributes(spec).get(encoded, encoded)


@functools.cache
def _attributes(spec: type[msgspec.Struct]) -> dict[str, str]:
    return {f.encode_name: f.name for f in msgspec.structs.fields(spec)}


def decode_json(data: bytes, spec: type[S], *, empty: S | None = None) -> S:
    """A JSON body as its Struct (`empty` when there is none and that is allowed)."""
    if empty is not None and not data.strip():
        return empty
    try:
        return msgspec.json.decode(data, type=spec)
    except (msgspec.DecodeError, RecursionError) as e:
        raise BadRequest(f"invalid body: {e}", [("body", str(e))]) from None


def expectation(schema: dict[str, Any], components: Mapping[str, Any]) -> str:
    """What a value must be, in words, from its JSON schema."""
    if "$ref" in schema:
        return expectation(components[schema["$ref"].rsplit("/", 1)[1]], components)
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        return " or ".join(expectation(s, components) for s in options)
    if "enum" in schema:
        return "one of " + ", ".join(map(str, schema["enum"]))
    kind = schema.get("type")
    if kind == "array":
        items = expectation(schema.get("items", {}), components)
        lo, hi = schema.get("minItems"), schema.get("maxItems")
        count = f"{lo or 0} to {hi} " if hi is not None else (f"at least {lo} " if lo else "")
        return f"{count}comma-separated values, each {items}"
    if kind in ("integer", "number"):
        whole = "a whole number" if kind == "integer" else "a number"
        return f"{whole} {schema.get('minimum', '')}..{schema.get('maximum', '')}".rstrip(".")
    if kind == "boolean":
        return "true or false"
    if schema.get("format") == "date":
        return "a date YYYY-MM-DD"
    if schema.get("format") == "date-time":
        return "an RFC 3339 time with offset"
    return _text(schema)


def _text(schema: dict[str, Any]) -> str:
    if "title" in schema:
        return str(schema["title"])
    lo, hi = schema.get("minLength"), schema.get("maxLength")
    size = f" of {lo or 0} to {hi} characters" if hi is not None else ""
    pattern = f" matching {schema['pattern']}" if "pattern" in schema else ""
    return f"text{size}{pattern}"


def describe(spec: type[msgspec.Struct], where: Location) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The OpenAPI parameters of a Struct, and the components their schemas refer to."""
    schema, components = _schema(spec)
    out = []
    for name, prop in schema["properties"].items():
        prop = _without_null(prop)
        description = prop.pop("description", None)
        param: dict[str, Any] = {
            "name": name,
            "in": where,
            "required": where == "path" or name in schema.get("required", []),
            "schema": prop,
        }
        if description:
            param["description"] = description
        if prop.get("type") == "array":
            param |= {"style": "form", "explode": False}
        out.append(param)
    return out, components


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A property's schema as a parameter's: an absent parameter is how a query says null."""
    prop = {k: v for k, v in prop.items() if not (k == "default" and v in (None, []))}
    options = prop.get("anyOf")
    if options is not None:
        kept = [o for o in options if o.get("type") != "null"]
        rest = {k: v for k, v in prop.items() if k != "anyOf"}
        prop = {**kept[0], **rest} if len(kept) == 1 else {**rest, "anyOf": kept}
    return prop
