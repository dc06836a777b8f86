"""Request validation against the vendors' OpenAPI documents in `../shared/api_specs/`.

Two known defects in those documents are patched on load (and documented in
docs/connectors.md): SendGrid types the top-level `custom_args` as a string (the API takes an
object; per-personalization `custom_args` stays validated as an object), and Mailchimp
Transactional's `ApiKey` schema sets `additionalProperties: false` inside an `allOf`, which
would reject every real request, and types `send_at` as RFC 3339 date-time where the API
documents `YYYY-MM-DD HH:MM:SS`.
"""

from __future__ import annotations

import contextlib
import copy
import json
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
        out = []
        for error in self._validator.iter_errors(instance):
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            out.append(f"{where}: {error.message[:200]}")
            if len(out) >= 5:
                break
        return out

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
