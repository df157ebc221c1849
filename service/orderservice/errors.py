"""Errors the API turns into HTTP answers: a status, a stable code and one sentence."""

from __future__ import annotations


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ApiError):
    status = 400
    code = "bad_request"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class OutOfStock(Conflict):
    code = "out_of_stock"


class ReadOnly(ApiError):
    status = 503
    code = "read_only"


class Unavailable(ApiError):
    status = 503
    code = "unavailable"
