"""Payloads: how values are stored, and the codec every stored payload passes through.

Payloads are JSON plus ``datetime``, ``date``, ``UUID``, ``Decimal`` and
``bytes``, which round-trip exactly (tagged objects); tuples come back as
lists. Anything else is a ``TypeError`` naming the type, raised before any
state changes. A registered codec (``encode(str) -> str``, ``decode(str) ->
str``) then turns the JSON text into what is stored, e.g. ciphertext.
"""

from __future__ import annotations

import base64
import json
import math
import traceback as _traceback
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID

from .errors import InvalidArgumentError, PayloadError
from .retry import error_type_names

MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
"""The largest payload (after encoding) pgdurable stores: 16 MiB."""

_TAG = "$pd"


class PayloadCodec(Protocol):
    """A synchronous transformation of stored payload text (encryption, compression)."""

    def encode(self, data: str) -> str: ...
    def decode(self, data: str) -> str: ...


_codec: PayloadCodec | None = None


def register_codec(codec: PayloadCodec | None) -> None:
    """Applies ``codec`` to every payload this process persists or reads; ``None`` removes it."""
    global _codec
    if codec is not None and not (callable(getattr(codec, "encode", None))
                                  and callable(getattr(codec, "decode", None))):
        raise TypeError("a codec needs encode(str) -> str and decode(str) -> str methods")
    _codec = codec


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return {_TAG: "datetime", "v": value.isoformat()}
    if isinstance(value, date):
        return {_TAG: "date", "v": value.isoformat()}
    if isinstance(value, UUID):
        return {_TAG: "uuid", "v": str(value)}
    if isinstance(value, Decimal):
        return {_TAG: "decimal", "v": str(value)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {_TAG: "bytes", "v": base64.b64encode(bytes(value)).decode("ascii")}
    raise TypeError(
        f"cannot store a value of type {type(value).__module__}.{type(value).__qualname__}: payloads are "
        "JSON plus datetime, date, UUID, Decimal and bytes; convert it first"
    )


def _escape(value: Any) -> Any:
    # A user dict that happens to carry the tag key is wrapped, so it round-trips.
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(
                    f"cannot store a dict with a key of type {type(key).__name__}: "
                    "JSON object keys are strings"
                )
        escaped = {k: _escape(v) for k, v in value.items()}
        if _TAG not in value:
            return escaped
        # Items as pairs, not an object: json's object_hook decodes inner objects first, so a
        # user dict that looks tagged must not reach it as an object.
        return {_TAG: "dict", "v": [[k, v] for k, v in escaped.items()]}
    if isinstance(value, (list, tuple)):
        return [_escape(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"cannot store the float {value!r}: JSON has no NaN or Infinity")
    return value


def _hook(obj: dict[str, Any]) -> Any:
    tag = obj.get(_TAG)
    if tag is None or len(obj) != 2 or "v" not in obj:
        return obj
    value = obj["v"]
    if tag == "datetime":
        return datetime.fromisoformat(value)
    if tag == "date":
        return date.fromisoformat(value)
    if tag == "uuid":
        return UUID(value)
    if tag == "decimal":
        return Decimal(value)
    if tag == "bytes":
        return base64.b64decode(value)
    if tag == "dict":
        return dict(value) if isinstance(value, list) else value
    return obj


def dumps(value: Any) -> str:
    """Serialises ``value`` to stored text (JSON, then the codec). A value that is no payload is a
    ``TypeError``; one over :data:`MAX_PAYLOAD_BYTES` once encoded an
    :class:`~pgdurable.errors.InvalidArgumentError` (a ``ValueError``)."""
    text = json.dumps(_escape(value), default=_default, allow_nan=False, separators=(",", ":"),
                      ensure_ascii=False)
    stored = encode_text(text)
    if len(stored.encode("utf-8")) > MAX_PAYLOAD_BYTES:
        raise InvalidArgumentError(
            f"payload of {len(stored.encode('utf-8'))} bytes exceeds the {MAX_PAYLOAD_BYTES} byte limit: "
            "store large data elsewhere and pass a reference"
        )
    return stored


def loads(stored: str) -> Any:
    """Reads stored text back into a value (the codec, then JSON); :class:`PayloadError` when it
    cannot be decoded."""
    return _decoded(stored, _hook)


def to_json_value(stored: str | None) -> Any:
    """A stored payload as plain JSON values (tagged types left as tagged objects);
    :class:`PayloadError` when it cannot be decoded."""
    return None if stored is None else _decoded(stored, None)


def _decoded(stored: str, hook: Any) -> Any:
    try:
        return json.loads(decode_text(stored), object_hook=hook)
    except PayloadError:
        raise
    except Exception as exc:
        raise PayloadError(f"cannot decode a stored payload ({type(exc).__name__}: {exc}); "
                           "is the same codec registered as when it was written?") from exc


def encode_text(text: str) -> str:
    """Applies the codec's ``encode`` (identity without a codec)."""
    if _codec is None:
        return text
    encoded = _codec.encode(text)
    if not isinstance(encoded, str):
        raise TypeError(f"codec.encode must return str, got {type(encoded).__name__}")
    return encoded


def decode_text(text: str) -> str:
    """Applies the codec's ``decode`` (identity without a codec)."""
    if _codec is None:
        return text
    try:
        return _codec.decode(text)
    except Exception as exc:
        raise PayloadError(f"the registered codec cannot decode a stored payload: {exc}") from exc


def error_to_json(exc: BaseException, *, non_retryable: bool = False) -> dict[str, Any]:
    """An exception as the engine stores it: type names in clear (the engine
    retries on them), message and traceback through the codec."""
    message = getattr(exc, "message", None) if hasattr(exc, "error_type") else None
    tb = "".join(_traceback.format_exception(type(exc), exc, exc.__traceback__))
    remote = getattr(exc, "traceback", None) if hasattr(exc, "error_type") else None
    if isinstance(remote, str) and remote:
        # A DurableMaxedError/DurableChildError escaping a workflow: keep where it really failed.
        tb += f"\nThe original error, raised in the activity or child workflow:\n{remote}"
    return {
        "type": getattr(exc, "error_type", None) or type(exc).__name__,
        "types": error_type_names(exc),
        "message": encode_text(message if isinstance(message, str) else str(exc)),
        "traceback": encode_text(tb),
        "non_retryable": non_retryable,
    }


def error_from_json(error: dict[str, Any] | None) -> tuple[str, str, str | None]:
    """(type, message, traceback) of a stored error, decoded."""
    if not error:
        return ("Error", "unknown error", None)
    message = error.get("message")
    tb = error.get("traceback")
    return (
        error.get("type") or "Error",
        decode_text(message) if isinstance(message, str) else (error.get("detail") or ""),
        decode_text(tb) if isinstance(tb, str) else None,
    )
