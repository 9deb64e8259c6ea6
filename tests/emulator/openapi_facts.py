"""Compact facts of an OpenAPI document, for comparing the emulator with Retab's spec.

`facts(spec)` keeps what clients depend on: operations (path, method, operationId,
security, success status), parameters (name, in, required, types, default, bounds,
enum) and schemas (property names, property types, required sets, whether extra
properties are refused). Run this module with the published spec's path to
regenerate `spec_facts.json`:

    python -m tests.emulator.openapi_facts ../shared/retab-api/partitions.openapi.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

FACTS_FILE = Path(__file__).with_name("spec_facts.json")
METHODS = ("get", "post", "put", "patch", "delete")


def facts(spec: dict[str, Any]) -> dict[str, Any]:
    return {"operations": _operations(spec), "schemas": _schemas(spec)}


def _operations(spec: dict[str, Any]) -> dict[str, Any]:
    operations: dict[str, Any] = {}
    for path, item in sorted(spec["paths"].items()):
        for method in METHODS:
            if method not in item:
                continue
            op = item[method]
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            operations[f"{method.upper()} {path}"] = {
                "operationId": op.get("operationId"),
                "security": sorted(name for entry in op.get("security", []) for name in entry),
                "responses": sorted(op.get("responses", {})),
                "requestBody": _type(body.get("schema")) if body else None,
                "parameters": {p["name"]: _parameter(p) for p in op.get("parameters", [])},
            }
    return operations


def _parameter(param: dict[str, Any]) -> dict[str, Any]:
    schema = param.get("schema", {})
    enum = schema.get("enum") or next((s["enum"] for s in schema.get("anyOf", []) if "enum" in s), None)
    return {
        "in": param["in"],
        "required": bool(param.get("required", False)),
        "type": _type(schema),
        "default": schema.get("default"),
        "minimum": schema.get("minimum"),
        "maximum": schema.get("maximum"),
        "enum": enum,
    }


def _type(schema: dict[str, Any] | None) -> str:
    """A short type signature: `string`, `integer|null`, `array<ref:PartitionChunk>`."""
    if not schema:
        return "any"
    if "$ref" in schema:
        return "ref:" + schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return "|".join(sorted(_type(s) for s in schema["anyOf"]))
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array<{_type(schema.get('items'))}>"
    return str(kind)


def _schemas(spec: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, schema in sorted(spec.get("components", {}).get("schemas", {}).items()):
        properties = schema.get("properties", {})
        result[name] = {
            "properties": {prop: _type(value) for prop, value in sorted(properties.items())},
            "required": sorted(schema.get("required", [])),
            "additionalProperties": schema.get("additionalProperties"),
        }
    return result


if __name__ == "__main__":
    published = json.loads(Path(sys.argv[1]).read_text())
    FACTS_FILE.write_text(json.dumps(facts(published), indent=1, sort_keys=True) + "\n")
