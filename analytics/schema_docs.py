"""The API documentation page, read from the OpenAPI schema drf-spectacular generates, so
that it never drifts from the API: each endpoint with its parameters and the fields of its
responses, descriptions rendered from Markdown."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import markdown
from django.utils.safestring import SafeString, mark_safe

# Nested objects are listed to this depth (results[].wave.name is depth 3).
MAX_DEPTH = 4


def render_markdown(text: str) -> SafeString:
    """Descriptions are written in this code base (docstrings, help texts), not by users,
    so their HTML is trusted."""
    return mark_safe(markdown.markdown(text or "", extensions=["extra"]))  # noqa: S308


@dataclass(frozen=True)
class Field:
    path: str  # results[].wave.name
    type: str
    required: bool
    nullable: bool
    description: SafeString
    depth: int


@dataclass(frozen=True)
class Response:
    status: str
    description: SafeString
    schema_name: str
    fields: list[Field]


@dataclass(frozen=True)
class Parameter:
    name: str
    where: str
    type: str
    required: bool
    description: SafeString


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    id: str
    summary: str
    description: SafeString
    parameters: list[Parameter] = field(default_factory=list)
    responses: list[Response] = field(default_factory=list)


def endpoints(schema: dict[str, Any]) -> list[Endpoint]:
    components = schema.get("components", {}).get("schemas", {})
    return [
        _endpoint(method, path, operation, components)
        for path, operations in schema.get("paths", {}).items()
        for method, operation in operations.items()
    ]


def _endpoint(
    method: str, path: str, operation: dict[str, Any], components: dict[str, Any]
) -> Endpoint:
    return Endpoint(
        method=method.upper(),
        path=path,
        id=operation.get("operationId", ""),
        summary=operation.get("summary", ""),
        description=render_markdown(operation.get("description", "")),
        parameters=[_parameter(p) for p in operation.get("parameters", [])],
        responses=[
            _response(status, answer, components)
            for status, answer in sorted(operation.get("responses", {}).items())
        ],
    )


def _parameter(parameter: dict[str, Any]) -> Parameter:
    return Parameter(
        name=parameter["name"],
        where=parameter["in"],
        type=_type_of(parameter.get("schema", {}), {}),
        required=parameter.get("required", False),
        description=render_markdown(parameter.get("description", "")),
    )


def _response(status: str, answer: dict[str, Any], components: dict[str, Any]) -> Response:
    schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
    name = _ref_name(schema)
    return Response(
        status=status,
        description=render_markdown(answer.get("description", "")),
        schema_name=name,
        fields=list(_fields(schema, components, "", 1)) if schema else [],
    )


def _ref_name(schema: dict[str, Any]) -> str:
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref else ""


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """The schema itself, with a $ref or a single allOf (a nullable reference) followed."""
    if "$ref" in schema:
        return {**components.get(_ref_name(schema), {}), **_without(schema, "$ref")}
    if len(schema.get("allOf", [])) == 1:
        return {**_resolve(schema["allOf"][0], components), **_without(schema, "allOf")}
    return schema


def _without(schema: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k != key}


def _fields(schema: dict[str, Any], components: dict[str, Any], prefix: str, depth: int) -> Any:
    schema = _resolve(schema, components)
    if schema.get("type") == "array":
        yield from _fields(schema.get("items", {}), components, prefix + "[]", depth)
        return
    required = set(schema.get("required", []))
    for name, child in schema.get("properties", {}).items():
        resolved = _resolve(child, components)
        path = f"{prefix}.{name}" if prefix else name
        yield Field(
            path=path,
            type=_type_of(child, components),
            required=name in required,
            nullable=bool(child.get("nullable") or resolved.get("nullable")),
            description=render_markdown(
                child.get("description") or resolved.get("description", "")
            ),
            depth=depth,
        )
        if depth < MAX_DEPTH and _is_nested(resolved, components):
            yield from _fields(resolved, components, path, depth + 1)


def _is_nested(schema: dict[str, Any], components: dict[str, Any]) -> bool:
    if schema.get("type") == "array":
        return bool(_resolve(schema.get("items", {}), components).get("properties"))
    return bool(schema.get("properties"))


def _type_of(schema: dict[str, Any], components: dict[str, Any]) -> str:
    resolved = _resolve(schema, components)
    if "enum" in resolved:
        return " | ".join(str(v) for v in resolved["enum"] if v not in ("", None)) or "string"
    kind = resolved.get("type", "object")
    if kind == "array":
        return f"array of {_type_of(resolved.get('items', {}), components)}"
    if kind == "object" and "additionalProperties" in resolved:
        return f"object of {_type_of(resolved['additionalProperties'], components)}"
    name = _ref_name(schema) or _ref_name((schema.get("allOf") or [{}])[0])
    if kind == "object" and name:
        return name
    fmt = resolved.get("format")
    return f"{kind} ({fmt})" if fmt else kind
