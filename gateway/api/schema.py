"""The published OpenAPI document (``/openapi.json``): request and answer schemas of the
upstream API, every error body, and the HMAC signature scheme.

The batch models are pydantic models built from the field specifications the intake
validates against (``gateway.batches.validation``: ``HEADER_SPEC``, ``ITEM_SPEC``,
``REISSUE_SPEC``), so the document and the intake cannot drift apart. They describe the
request only: ``POST /v1/batches`` still streams its body through the bounded reader
(``gateway.kit.boundedjson``) and never lets FastAPI parse it into a model (a batch may
hold a million items).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field, create_model

from gateway.api.limits import (
    BATCH_BODY_MAX,
    CALLBACK_BODY_MAX,
    UNDECLARED_BATCH_BODY_MAX,
)
from gateway.auth.hmac_auth import (
    H_CLIENT,
    H_CONTENT_SHA256,
    H_NONCE,
    H_SIGNATURE,
    H_TIMESTAMP,
)
from gateway.batches.validation import (
    HEADER_SPEC,
    ITEM_SPEC,
    MAX_ITEMS,
    REISSUE_SPEC,
    FieldSpec,
)
from gateway.payments.states import ItemState

# --- the request: a batch ------------------------------------------------------------------


def _field_type(spec: FieldSpec, nested: type[BaseModel] | None = None) -> Any:
    if spec.json_type == "object" and nested is not None:
        base: Any = nested
    elif spec.json_type == "integer":
        base = Annotated[int, Field(ge=spec.minimum, le=spec.maximum)]
    else:
        base = Annotated[
            str,
            Field(
                min_length=1,
                max_length=spec.max_length,
                pattern=spec.pattern,
            ),
        ]
    return base


def _model(
    name: str,
    specs: Mapping[str, FieldSpec],
    doc: str,
    nested: Mapping[str, type[BaseModel]] | None = None,
) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    groups: dict[str, list[str]] = {}
    for key, spec in specs.items():
        typ = _field_type(spec, (nested or {}).get(key))
        if spec.required and spec.one_of is None:
            fields[key] = (typ, Field(description=spec.description))
        else:
            # optional: may be left out (not null: the intake refuses a null amount)
            fields[key] = (typ, Field(default=None, description=spec.description))
        if spec.one_of:
            groups.setdefault(spec.one_of, []).append(key)

    def tidy(schema: dict[str, Any]) -> None:
        for prop in schema.get("properties", {}).values():
            prop.pop("default", None)
            prop.pop("title", None)
        if groups:
            # exactly one of each group (e.g. amount_fen or amount_yuan)
            schema["allOf"] = [
                {"oneOf": [{"required": [k]} for k in keys]} for keys in groups.values()
            ]

    model: type[BaseModel] = create_model(
        name,
        __config__=ConfigDict(extra="forbid", json_schema_extra=tidy),
        __doc__=doc,
        **fields,
    )
    return model


ReissueRef = _model("ReissueRef", REISSUE_SPEC, "The finally failed item that this item re-issues.")
BatchHeader = _model("BatchHeader", HEADER_SPEC, "The batch header (批次头).")
BatchItem = _model(
    "BatchItem",
    ITEM_SPEC,
    "One payment to one person (明细).",
    nested={"reissue_of": ReissueRef},
)


class BatchSubmission(BaseModel):
    """An approved batch (批次): the header and its items. Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    header: BatchHeader  # type: ignore[valid-type]
    items: Annotated[list[BatchItem], Field(min_length=1, max_length=MAX_ITEMS)]  # type: ignore[valid-type]


# --- answers ---------------------------------------------------------------------------------


class Problem(BaseModel):
    """One reason a request (or one item of it) is refused, or one warning."""

    seq: int | None = Field(description="the item's sequence number; null for the batch")
    field: str = Field(description="the field (or header, parameter, JSON path) at fault")
    code: str = Field(description="machine-readable reason")
    message_zh: str
    message_en: str
    limit: int | None = Field(default=None, description="the limit exceeded, if one was")
    unit: str | None = Field(default=None, description="the limit's unit")


class ErrorBody(BaseModel):
    """Every refusal of the API has this shape."""

    errors: list[Problem]


class IntakeAnswer(BaseModel):
    """The answer to a batch: accepted (201) or rejected with every reason (422). The same
    batch number with the same content answers the same again (``Idempotent-Replayed``)."""

    batch_no: str
    state: str = Field(description="accepted, rejected, or later states on a replay")
    serial: str | None = Field(description="the gateway's batch serial; null when rejected")
    item_count: int
    total_fen: int
    received_at: str
    error_count: int
    errors: list[Problem]
    warning_count: int = 0
    warnings: list[Problem] = Field(default_factory=list)


class InvalidAnswer(BaseModel):
    """The answer to a body without a usable batch number (422): nothing is stored."""

    state: str = Field(description="invalid")
    error_count: int = 0
    errors: list[Problem]
    warning_count: int = 0
    warnings: list[Problem] = Field(default_factory=list)


class ConflictAnswer(BaseModel):
    """The batch number was taken in already with other content (409)."""

    batch_no: str
    state: str
    errors: list[Problem]


class CountAmount(BaseModel):
    count: int
    amount_fen: int


class BatchStatus(BaseModel):
    """A batch's state, with counts and amounts per item state."""

    batch_no: str
    serial: str | None
    state: str
    bank_profile: str
    subsidy_code: str
    period: str
    item_count: int
    total_fen: int
    items_by_state: dict[str, CountAmount]
    paid: CountAmount
    failed: CountAmount
    pending: CountAmount
    received_at: str
    completed_at: str | None


class ItemView(BaseModel):
    """One item, personal data masked."""

    seq: int
    serial: str
    state: ItemState
    state_zh: str
    amount_fen: int
    name: str
    id_number: str
    account_no: str
    bank_code: str | None
    bank_ref: str | None
    reason_code: str | None
    reason_zh: str | None
    action_zh: str | None
    paid_at: str | None


class ItemsPage(BaseModel):
    batch_no: str
    items: list[ItemView]
    next_after_seq: int | None = Field(description="pass as after_seq for the next page")


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for error statuses, all of the ``ErrorBody`` shape."""
    descriptions = {
        400: "malformed request: not JSON within the limits, or a bad parameter",
        401: "not authenticated (signature, client, timestamp, nonce, body digest)",
        404: "not found",
        409: "conflict",
        413: "body over the route's limit",
        415: "Content-Type is not application/json",
        503: "the database is busy; retry after Retry-After seconds (nothing changed)",
    }
    return {s: {"model": ErrorBody, "description": descriptions[s]} for s in statuses}


# --- the document ------------------------------------------------------------------------------

SECURITY_SCHEMES: Final[dict[str, dict[str, Any]]] = {
    "GatewayClient": {
        "type": "apiKey",
        "in": "header",
        "name": H_CLIENT,
        "description": "the client id (1-64 characters [A-Za-z0-9_.:-])",
    },
    "GatewayTimestamp": {
        "type": "apiKey",
        "in": "header",
        "name": H_TIMESTAMP,
        "description": "Unix time in seconds (1-12 ASCII digits), within 300 s of the server's",
    },
    "GatewayNonce": {
        "type": "apiKey",
        "in": "header",
        "name": H_NONCE,
        "description": "16-64 characters [A-Za-z0-9_-], never used before by this client",
    },
    "GatewayContentSha256": {
        "type": "apiKey",
        "in": "header",
        "name": H_CONTENT_SHA256,
        "description": "the lowercase hex SHA-256 of the body (of the empty string without "
        f"one). Lets the gateway check the signature before reading the body; required "
        f"for POST /v1/batches bodies over {UNDECLARED_BATCH_BODY_MAX} bytes",
    },
    "GatewaySignature": {
        "type": "apiKey",
        "in": "header",
        "name": H_SIGNATURE,
        "description": "base64 HMAC-SHA256 with the client's secret of the five lines "
        "METHOD, path?query, timestamp, nonce, body SHA-256 hex, joined by \\n",
    },
}

SIGNING: Final = f"""
## Authentication

Every `/v1/batches…` and `/v1/changes` request is signed with the client's secret
(HMAC-SHA256). Headers:

| header | value |
|---|---|
| `{H_CLIENT}` | client id, 1–64 characters `[A-Za-z0-9_.:-]` |
| `{H_TIMESTAMP}` | Unix time, seconds, 1–12 ASCII digits; within ±300 s |
| `{H_NONCE}` | 16–64 characters `[A-Za-z0-9_-]`, never reused |
| `{H_CONTENT_SHA256}` | lowercase hex SHA-256 of the body (of `""` without one) |
| `{H_SIGNATURE}` | base64 HMAC-SHA256(secret, string to sign), 44 characters |

The string to sign is five lines joined by `\\n` (no trailing newline): the method in
upper case; the path (percent-decoded) and `?query` as sent; the timestamp; the nonce;
the body's SHA-256 in lowercase hex.

With `{H_CONTENT_SHA256}` the signature is checked before the body is read, and the
body is refused (401 `auth_content_digest`, nothing stored) when it is not the declared
one. Without it, `POST /v1/batches` reads at most {UNDECLARED_BATCH_BODY_MAX} bytes before it
checks the signature; with it, at most {BATCH_BODY_MAX} bytes. Bank callbacks and SMS
receipts (at most {CALLBACK_BODY_MAX} bytes) carry their senders' own signatures.
`gateway/auth/client.py` is a reference client; `docs/api-limits.md` lists every limit.
"""

_SIGNED_PREFIXES: Final = ("/v1/batches", "/v1/changes")


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of ``app``, with the request schema of ``POST /v1/batches``,
    the signature scheme and our error bodies in place of FastAPI's defaults."""
    doc = get_openapi(
        title=app.title,
        version=app.version,
        description=(app.description or "") + SIGNING,
        routes=app.routes,
    )
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    submission = BatchSubmission.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in submission.pop("$defs", {}).items():
        schemas.setdefault(name, sub)
    schemas["BatchSubmission"] = submission
    errors = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in errors.pop("$defs", {}).items():
        schemas.setdefault(name, sub)
    schemas.setdefault("ErrorBody", errors)
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    components["securitySchemes"] = SECURITY_SCHEMES
    for path, operations in doc.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            # FastAPI's parameter refusals are ours: 400 with the ErrorBody shape
            validation = responses.pop("422", None)
            if validation is not None and "HTTPValidationError" not in str(validation):
                responses["422"] = validation
            if operation.get("parameters"):
                responses.setdefault("400", _ref_response(error_responses(400)[400]))
            responses.setdefault("413", _ref_response(error_responses(413)[413]))
            if path.startswith(_SIGNED_PREFIXES):
                operation["security"] = [{name: [] for name in SECURITY_SCHEMES}]
                responses.setdefault("401", _ref_response(error_responses(401)[401]))
                responses.setdefault("503", _ref_response(error_responses(503)[503]))
    return doc


def _ref_response(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "description": entry["description"],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }


def install_openapi(app: FastAPI) -> None:
    """Serve :func:`build_openapi` at ``/openapi.json`` (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


SUBMIT_OPENAPI: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "description": "the batch, UTF-8 JSON; streamed and read with the limits of "
        "docs/api-limits.md (never parsed whole)",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/BatchSubmission"}}
        },
    },
}
