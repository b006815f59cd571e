"""Every error is JSON: ``{"message", "field", "detail"}``, with a status that says whose
fault it is (4xx: the request; 503: Kafka or Ray is away)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from computeinfra.errors import ClusterError, KafkaError, RequestError
from computeinfra.web.uploads import UploadTooLarge

__all__ = ["error_response", "install_error_handlers"]


def error_response(
    status: int,
    message: str,
    field: str | None = None,
    detail: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"message": message, "field": field}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    return ".".join(parts[1:] if parts and parts[0] in ("body", "query", "path") else parts)


async def _invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    first = _location(errors[0]["loc"]) if errors else None
    sentences = [f"{_location(e['loc']) or 'request'}: {e['msg']}" for e in errors[:5]]
    detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]
    return error_response(422, "; ".join(sentences), first, detail)


async def _request_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestError)
    status = 413 if isinstance(exc, UploadTooLarge) else 422
    loc = ["body", *exc.field.split(".")] if exc.field else ["body"]
    detail = [{"loc": loc, "msg": str(exc), "type": type(exc).__name__}]
    return error_response(status, str(exc), exc.field, detail)


async def _unavailable(_request: Request, exc: Exception) -> JSONResponse:
    return error_response(503, str(exc))


async def _http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = "no such page or API route; the API is listed at /docs"
    # Keep the exception's headers: a 405 must say which methods are allowed.
    return error_response(exc.status_code, message, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(RequestError, _request_error)
    app.add_exception_handler(ClusterError, _unavailable)
    app.add_exception_handler(KafkaError, _unavailable)
    app.add_exception_handler(HTTPException, _http)
