"""Compact facts of an OpenAPI document, for comparing the emulator with Retab's spec.

`facts(spec)` keeps what clients depend on: operations (path, method, operationId,
security, success status), parameters (name, in, required, types, default, bounds,
enum) and schemas (property names, property types, required sets, whether extra
properties are refused). Run this module with a published spec's path to
regenerate a facts file (the files spec also describes usage endpoints the emulator
does not serve: `--prefix` keeps the paths under it and the schemas they use):

    python -m tests.emulator.openapi_facts docs/api/partitions.openapi.json
    python -m tests.emulator.openapi_facts docs/api/files-usage.openapi.json \
        --prefix /v1/files tests/emulator/files_spec_facts.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

FACTS_FILE = Path(__file__).with_name("spec_facts.json")
FILES_FACTS_FILE = Path(__file__).with_name("files_spec_facts.json")
METHODS = ("get", "post", "put", "patch", "delete")


def facts(spec: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    if prefix:
        spec = _under(spec, prefix)
    return {"operations": _operations(spec), "schemas": _schemas(spec)}


def _under(spec: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The spec cut to the paths under `prefix` and the schemas they reach."""
    paths = {path: item for path, item in spec["paths"].items() if path.startswith(prefix)}
    schemas = spec.get("components", {}).get("schemas", {})
    reached: set[str] = set()
    pending = _refs(paths)
    while pending:
        name = pending.pop()
        if name not in reached:
            reached.add(name)
            pending |= _refs(schemas[name])
    kept = {name: schema for name, schema in schemas.items() if name in reached}
    return {**spec, "paths": paths, "components": {"schemas": kept}}


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[-1]} if "$ref" in node else set()
        return found.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node))
    return set()


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
        return "ref:" + str(schema["$ref"]).rsplit("/", 1)[-1]
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
    arguments = sys.argv[1:]
    cut = ""
    if "--prefix" in arguments:
        at = arguments.index("--prefix")
        cut = arguments[at + 1]
        del arguments[at : at + 2]
    published = json.loads(Path(arguments[0]).read_text())
    target = Path(arguments[1]) if len(arguments) > 1 else FACTS_FILE
    target.write_text(json.dumps(facts(published, cut), indent=1, sort_keys=True) + "\n")
