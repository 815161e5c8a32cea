"""The API's error: the exception a route raises and the JSON body every error answer has,
{"error": {"code", "message", "fix"}}."""

from __future__ import annotations

from fastapi.responses import JSONResponse


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, fix: str):
        self.status, self.code, self.message, self.fix = status, code, message, fix


def error_response(status: int, code: str, message: str, fix: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "fix": fix}}, status, headers=headers)
