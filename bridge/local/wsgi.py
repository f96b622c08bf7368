"""Reading a WSGI request's JSON body without taking it from the app that answers it."""

from __future__ import annotations

import io
from typing import Any

import orjson
from werkzeug.wsgi import get_input_stream


def peek_json(environ: dict[str, Any]) -> dict[str, Any]:
    """The request's JSON object, read and put back for moto; empty when it is not one (moto
    answers a malformed request itself)."""
    raw = get_input_stream(environ).read()
    environ["wsgi.input"] = io.BytesIO(raw)
    environ["CONTENT_LENGTH"] = str(len(raw))
    environ.pop("wsgi.input_terminated", None)
    try:
        request = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        return {}
    return request if isinstance(request, dict) else {}
