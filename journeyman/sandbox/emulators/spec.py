"""Request validation against the vendors' OpenAPI documents in `../shared/api_specs/`.

Two known defects in those documents are patched on load (and documented in
docs/connectors.md): SendGrid types the top-level `custom_args` as a string (the API takes an
object; per-personalization `custom_args` stays validated as an object), and Mailchimp
Transactional's `ApiKey` schema sets `additionalProperties: false` inside an `allOf`, which
would reject every real request, and types `send_at` as RFC 3339 date-time where the API
documents `YYYY-MM-DD HH:MM:SS`.

FCM publishes no OpenAPI document but a Google discovery document (`fcm_v1_discovery.json`):
`discovery_to_json_schema` turns its `schemas` into JSON Schema (`discovery_validator`). Braze
publishes no machine-readable schema at all: its documented request rules are written down as
JSON Schema in this package (`braze_schema.json`, loaded with `package_validator`), as is the
format of journeyman's own messages (`journeyman_message_schema.json`: the file destination's
outbox line and the generic webhook's body).
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from journeyman import settings

SPEC_DIR_ENV = "JOURNEYMAN_API_SPECS"


def spec_dir() -> Path:
    """Where the vendor OpenAPI documents live (the shared folder beside the project)."""
    import os

    override = os.environ.get(SPEC_DIR_ENV)
    return Path(override) if override else settings.PROJECT_ROOT.parent / "shared" / "api_specs"


def spec_available(filename: str) -> bool:
    return (spec_dir() / filename).is_file()


def _patch(filename: str, doc: dict[str, Any]) -> None:
    if filename == "sendgrid_mail_v3.json":
        body = doc["components"]["requestBodies"]["PostMailSend"]["content"]["application/json"]
        body["schema"]["properties"]["custom_args"] = {"type": "object"}
    if filename == "mailchimp_transactional_messages_send.json":
        doc["components"]["schemas"]["ApiKey"].pop("additionalProperties", None)
        # the docs define send_at as "YYYY-MM-DD HH:MM:SS" (UTC); the spec says date-time
        for part in doc["components"]["schemas"]["MessagesSendRequest"]["allOf"]:
            part.get("properties", {}).get("send_at", {}).pop("format", None)


def _pointer(doc: dict[str, Any], pointer: str) -> Any:
    node: Any = doc
    for part in pointer.lstrip("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _messages(validator: Any, instance: Any, limit: int = 5) -> list[str]:
    """At most `limit` violations as `path: message` (path `a/0/b`, `(root)` for the top)."""
    out = []
    for error in validator.iter_errors(instance):
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        out.append(f"{where}: {error.message[:200]}")
        if len(out) >= limit:
            break
    return out


class SpecValidator:
    """Validates request bodies of one operation against its OpenAPI requestBody schema."""

    def __init__(self, filename: str, path: str, method: str, content_type: str) -> None:
        from openapi_schema_validator import OAS30Validator, OAS31Validator

        with open(spec_dir() / filename, encoding="utf-8") as fh:
            doc = json.load(fh)
        _patch(filename, doc)
        operation = doc["paths"][path][method]
        pointer = f"#/paths/{_escape(path)}/{method}/requestBody"
        body = operation["requestBody"]
        if "$ref" in body:
            pointer = body["$ref"]
            body = _pointer(doc, pointer)
        pointer = f"{pointer}/content/{_escape(content_type)}/schema"
        self.schema = _pointer(doc, pointer)
        root = copy.copy(doc)
        root["$ref"] = pointer
        cls = OAS31Validator if str(doc.get("openapi", "")).startswith("3.1") else OAS30Validator
        import jsonschema

        self._validator = cls(root, format_checker=jsonschema.FormatChecker())

    def errors(self, instance: Any) -> list[str]:
        """Human-readable violations (empty when valid)."""
        return _messages(self._validator, instance)

    def form_errors(self, form: dict[str, list[str]]) -> list[str]:
        """Validate form-encoded fields after coercing them to the schema's types."""
        props = self.schema.get("properties", {})
        coerced: dict[str, Any] = {}
        for name, values in form.items():
            kind = props.get(name, {}).get("type")
            if kind == "array":
                coerced[name] = values
                continue
            value: Any = values[-1]
            if kind == "boolean":
                value = {"true": True, "false": False}.get(value.lower(), value)
            elif kind in ("integer", "number"):
                with contextlib.suppress(ValueError):
                    value = int(value) if kind == "integer" else float(value)
            coerced[name] = value
        return self.errors(coerced)


@lru_cache(maxsize=32)
def validator(filename: str, path: str, method: str, content_type: str) -> SpecValidator | None:
    """A cached validator, or None when the spec folder is absent (documented limits only)."""
    if not spec_available(filename):
        return None
    return SpecValidator(filename, path, method, content_type)


# -- plain JSON Schema -----------------------------------------------------------------------------

#: schema files shipped in this package (documented rules of vendors without a published schema)
PACKAGE_SCHEMA_DIR = Path(__file__).resolve().parent


class JsonSchemaValidator:
    """Validates instances against a JSON Schema document (its `$schema` draft, else 2020-12),
    formats (date-time, ...) checked."""

    def __init__(self, schema: dict[str, Any]) -> None:
        import jsonschema

        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        cls.check_schema(schema)
        self.schema = schema
        self._validator = cls(schema, format_checker=cls.FORMAT_CHECKER)

    def errors(self, instance: Any) -> list[str]:
        """Human-readable violations (empty when valid)."""
        return _messages(self._validator, instance)


@lru_cache(maxsize=16)
def package_validator(filename: str, definition: str | None = None) -> JsonSchemaValidator:
    """A validator for a schema file of this package; `definition` picks one of its `$defs`."""
    with open(PACKAGE_SCHEMA_DIR / filename, encoding="utf-8") as fh:
        doc = json.load(fh)
    if definition is not None:
        if definition not in doc.get("$defs", {}):
            raise KeyError(f"{filename} defines no {definition!r}")
        doc = {**doc, "$ref": f"#/$defs/{definition}"}
    return JsonSchemaValidator(doc)


# -- Google discovery documents ----------------------------------------------------------------

#: google.protobuf.Duration in JSON: seconds with up to 9 fractional digits and an "s" suffix
_DURATION = r"^-?[0-9]+(\.[0-9]{1,9})?s$"
_INT64 = r"^-?[0-9]+$"
_UINT64 = r"^[0-9]+$"
_BASE64 = r"^[A-Za-z0-9+/_-]*={0,2}$"
_INT_RANGE = {"int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1)}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _required(prop: dict[str, Any]) -> bool:
    """Google marks required fields in the description ("Required. ...") or `required: true`."""
    return bool(prop.get("required") is True or prop.get("description", "").startswith("Required."))


def _discovery_node(node: dict[str, Any]) -> dict[str, Any]:
    """One discovery schema node as JSON Schema (see `discovery_to_json_schema`)."""
    if "$ref" in node:
        return {"$ref": f"#/$defs/{node['$ref']}"}
    out = _discovery_type(node, node.get("type"), node.get("format"))
    if "enum" in node:
        out["enum"] = list(node["enum"])
    if node.get("deprecated"):
        out["deprecated"] = True
    if node.get("readOnly"):
        out["readOnly"] = True
    return out


def _discovery_type(node: dict[str, Any], kind: str | None, fmt: str | None) -> dict[str, Any]:
    """The JSON Schema of a node's `type` and `format`."""
    if kind == "any" or kind is None:
        return {}
    if kind == "object":
        return _discovery_object(node)
    if kind == "array":
        out: dict[str, Any] = {"type": "array"}
        if "items" in node:
            out["items"] = _discovery_node(node["items"])
        return out
    if kind == "string":
        return _discovery_string(node, fmt)
    if kind == "integer":
        out = {"type": "integer"}
        if fmt in _INT_RANGE:
            out["minimum"], out["maximum"] = _INT_RANGE[fmt]
        return out
    if kind in ("number", "boolean"):
        return {"type": kind}
    raise ValueError(f"unknown discovery type {kind!r}")


def _discovery_object(node: dict[str, Any]) -> dict[str, Any]:
    """An object node: its properties (each also under its proto name), the required ones,
    closed unless it names `additionalProperties`."""
    out: dict[str, Any] = {"type": "object"}
    props: dict[str, Any] = {}
    required: list[Any] = []
    for name, prop in (node.get("properties") or {}).items():
        converted = _discovery_node(prop)
        props[name] = converted
        alias = _snake(name)
        if alias != name:  # the proto field name is accepted as well as the JSON name
            props[alias] = converted
        if _required(prop):
            required.append(name if alias == name else (name, alias))
    if props:
        out["properties"] = props
    plain = [r for r in required if isinstance(r, str)]
    if plain:
        out["required"] = plain
    either = [
        {"anyOf": [{"required": [r[0]]}, {"required": [r[1]]}]}
        for r in required
        if isinstance(r, tuple)
    ]
    if either:
        out["allOf"] = either
    extra = node.get("additionalProperties")
    # Google's JSON parser rejects unknown fields ("Invalid JSON payload received. Unknown
    # name ..."), so an object without additionalProperties is closed
    out["additionalProperties"] = _discovery_node(extra) if extra is not None else False
    return out


def _discovery_string(node: dict[str, Any], fmt: str | None) -> dict[str, Any]:
    """A string node: 64-bit integers (digit strings or numbers), durations, date-times, dates,
    base64, plus the node's own pattern."""
    if fmt in ("int64", "uint64"):
        # 64-bit integers travel as strings; numbers are accepted too
        return {
            "anyOf": [
                {"type": "string", "pattern": _INT64 if fmt == "int64" else _UINT64},
                {"type": "integer", **({"minimum": 0} if fmt == "uint64" else {})},
            ]
        }
    out: dict[str, Any] = {"type": "string"}
    if fmt == "google-duration":
        out["pattern"] = _DURATION
    elif fmt in ("google-datetime", "date-time"):
        out["format"] = "date-time"
    elif fmt == "date":
        out["format"] = "date"
    elif fmt == "byte":
        out["pattern"] = _BASE64
    if "pattern" in node:
        out.setdefault("allOf", []).append({"pattern": node["pattern"]})
    return out


def discovery_to_json_schema(doc: dict[str, Any], root: str) -> dict[str, Any]:
    """JSON Schema (2020-12) for `schemas[root]` of a Google API discovery document.

    Every entry of `schemas` becomes a `$defs` entry; `{"$ref": "Name"}` (a key of `schemas`)
    becomes `#/$defs/Name`. Types string / object / array / boolean / integer / number / any,
    `items`, `additionalProperties` and `enum` map directly; objects are closed (no
    `additionalProperties` → unknown fields rejected, as Google's API front end does), and each
    field may also be spelt as its proto name (`collapseKey` or `collapse_key`). Formats: int32 /
    uint32 ranges, int64 / uint64 as digit strings (or numbers), google-duration (`"3.5s"`),
    google-datetime (RFC 3339), byte (base64). Fields documented "Required." are required.
    """
    schemas = doc.get("schemas") or {}
    if root not in schemas:
        raise KeyError(f"discovery document has no schema {root!r}")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": f"converted from the discovery document {doc.get('id', '?')} "
        f"(revision {doc.get('revision', '?')}), schema {root}",
        "$ref": f"#/$defs/{root}",
        "$defs": {name: _discovery_node(schema) for name, schema in schemas.items()},
    }


@lru_cache(maxsize=8)
def discovery_validator(filename: str, root: str) -> JsonSchemaValidator | None:
    """A cached validator for `schemas[root]` of a discovery document in the shared spec folder,
    or None when that folder (or file) is absent (documented limits only)."""
    if not spec_available(filename):
        return None
    with open(spec_dir() / filename, encoding="utf-8") as fh:
        doc = json.load(fh)
    return JsonSchemaValidator(discovery_to_json_schema(doc, root))
