"""What every vendor emulator shares: routes, authentication, request validation against the
vendor's document, rejection. A vendor module states its routes and what differs (credentials,
error bodies, documented limits the vendor's document does not encode, the handlers).

A request goes: route → credentials (unless the route is open) → the vendor's preconditions →
404 → body parsed (JSON or form, once) → validated (`validate="all"`, or one in `sample_every`)
→ the route's handler. Injected faults and the control API come before all of it (`server`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, ClassVar, Literal

from journeyman.sandbox.emulators.server import Emulator, Request, Response
from journeyman.sandbox.emulators.spec import (
    JsonSchemaValidator,
    SpecValidator,
    discovery_validator,
    package_validator,
    validator,
)


@dataclass(frozen=True)
class Spec:
    """Where a route's request schema is written down: an operation of a vendor's OpenAPI
    document (`name`: its path), a schema of a Google discovery document (`name`: the root
    schema) or a `$defs` entry of a schema file in this package (`name`: the entry)."""

    kind: Literal["openapi", "discovery", "package"]
    filename: str
    name: str
    content_type: str = "application/json"

    def validator(self) -> SpecValidator | JsonSchemaValidator | None:
        """The cached validator; None when the shared spec folder (or the file) is absent."""
        if self.kind == "openapi":
            return validator(self.filename, self.name, "post", self.content_type)
        if self.kind == "discovery":
            return discovery_validator(self.filename, self.name)
        return package_validator(self.filename, self.name)


@dataclass(frozen=True)
class Route:
    """One endpoint. `method` None: any method. `path` may name the emulator's attributes
    (`{account_sid}`); `prefix`: every path that starts with it. `handler`: the name of the
    emulator's method that answers. `body`: "json" or "form", parsed (a malformed body gets
    the vendor's 400) and checked against `spec` before the handler; `auth` False: no
    credentials needed (an OAuth token endpoint)."""

    method: str | None
    path: str
    handler: str
    body: Literal["json", "form"] | None = None
    spec: Spec | None = None
    prefix: bool = False
    auth: bool = True

    def matches(self, request: Request) -> bool:
        """True if this route serves the request's method and path."""
        if self.method is not None and self.method != request.method:
            return False
        return request.path.startswith(self.path) if self.prefix else request.path == self.path


def bearer(request: Request) -> str:
    """The token of an `Authorization: Bearer <token>` header ("" without one)."""
    value = request.headers.get("Authorization") or ""
    return value[7:] if value.startswith("Bearer ") else ""


class VendorEmulator(Emulator):
    """An emulator answering through `ROUTES` (first match wins); override the hooks below."""

    ROUTES: ClassVar[tuple[Route, ...]] = ()

    @cached_property
    def routes(self) -> tuple[Route, ...]:
        """ROUTES with the emulator's attributes filled into their paths."""
        return tuple(replace(r, path=r.path.format_map(vars(self))) for r in self.ROUTES)

    def route(self, request: Request) -> Route | None:
        """The route serving the request, or None."""
        return next((r for r in self.routes if r.matches(request)), None)

    def handle(self, request: Request) -> Response:
        route = self.route(request)
        if (route is None or route.auth) and not self.authenticate(request):
            with self.lock:
                self.auth_failures += 1
            return self.auth_failure(request)
        refusal = self.refuse(request, route)
        if refusal is not None:
            return refusal
        if route is None:
            return self.not_found(request)
        try:
            payload = self.payload(request, route)
        except ValueError:
            return self.malformed(request)
        errors = self.request_errors(route, request, payload) if route.spec is not None else []
        if errors:
            return self.reject(route, errors)
        return getattr(self, route.handler)(request)

    # -- the steps, for a vendor to override ---------------------------------------------------

    def authenticate(self, request: Request) -> bool:
        """True if the request carries the credentials the vendor accepts."""
        raise NotImplementedError

    def auth_failure(self, request: Request) -> Response:
        """The answer to missing or wrong credentials."""
        return self.unauthorized()

    def refuse(self, request: Request, route: Route | None) -> Response | None:
        """The vendor's answer to a request it refuses before routing (a missing header)."""
        return None

    def not_found(self, request: Request) -> Response:
        """The answer to a path (or method) the vendor does not serve."""
        return Response(404, {"errors": [{"message": "not found"}]})

    def payload(self, request: Request, route: Route) -> Any:
        """The parsed body (None for routes without one); ValueError when malformed."""
        if route.body == "json":
            return request.json()
        if route.body == "form":
            return request.form()
        return None

    def malformed(self, request: Request) -> Response:
        """The answer to a body that does not parse."""
        return Response(400, {"errors": [{"message": "malformed body"}]})

    def request_errors(self, route: Route, request: Request, payload: Any) -> list[str]:
        """Violations of the route's `spec` and documented limits, when validating."""
        if not self.should_validate():
            return []
        return self.spec_errors(route, payload) + self.limits(route, payload)

    def spec_errors(self, route: Route, payload: Any) -> list[str]:
        """Violations of the route's schema (none without the shared spec folder)."""
        check = route.spec.validator() if route.spec is not None else None
        if check is None:
            return []
        instance = self.spec_instance(route, payload)
        if route.body == "form" and isinstance(check, SpecValidator):
            return check.form_errors(instance)
        return check.errors(instance)

    def spec_instance(self, route: Route, payload: Any) -> Any:
        """What the schema checks (the payload; a vendor may trim or sample it)."""
        return payload

    def limits(self, route: Route, payload: Any) -> list[str]:
        """Documented limits the vendor's document does not encode."""
        return []

    def reject(self, route: Route, errors: list[str]) -> Response:
        """Record the violations and answer them."""
        self.invalid(errors)
        return self.rejected(errors)

    def rejected(self, errors: list[str]) -> Response:
        """The vendor's answer to an invalid request."""
        return Response(400, {"errors": [{"message": e} for e in errors]})
