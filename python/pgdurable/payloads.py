"""Payloads: how values are stored, and the codec every stored payload passes through.

Payloads are JSON plus ``datetime``, ``date``, ``UUID``, ``Decimal`` and
``bytes``, which round-trip exactly (tagged objects); tuples come back as
lists. Enum members are stored tagged with their type and come back as the
same member (decoded into the annotated enum type, or into the enum class of
that name when its module is imported; else a :class:`PayloadError` naming it).
Dataclass instances and Pydantic v2 models are stored as JSON objects of their
fields and decoded into the annotated parameter or return type of the workflow
or activity function (:func:`convert`); without an annotation they stay dicts.
Other subclasses of ``int``, ``str`` and ``float`` (and non-``str`` dict keys)
would lose their type: refused. Anything else is a ``TypeError`` naming the
type, raised before any state changes. A registered codec (``encode(str) ->
str``, ``decode(str) -> str``) then turns the JSON text into what is stored,
e.g. ciphertext.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import functools
import inspect
import json
import math
import sys
import traceback as _traceback
import types
import typing
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


def _type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _pydantic_model(value: Any) -> bool:
    """Whether ``value`` is a Pydantic v2 model instance (without importing pydantic)."""
    module = sys.modules.get("pydantic")
    base = getattr(module, "BaseModel", None) if module is not None else None
    return base is not None and isinstance(value, base) and hasattr(value, "model_dump")


def _escape(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        if not math.isfinite(value):
            raise ValueError(f"cannot store the float {value!r}: JSON has no NaN or Infinity")
        return value
    # A user dict that happens to carry the tag key is wrapped, so it round-trips.
    if isinstance(value, dict):
        for key in value:
            if type(key) is not str:
                raise TypeError(
                    f"cannot store a dict with a key of type {_type_name(type(key))}: "
                    "JSON object keys are plain strings"
                )
        escaped = {k: _escape(v) for k, v in value.items()}
        if _TAG not in value:
            return escaped
        # Items as pairs, not an object: json's object_hook decodes inner objects first, so a
        # user dict that looks tagged must not reach it as an object.
        return {_TAG: "dict", "v": [[k, v] for k, v in escaped.items()]}
    if isinstance(value, (list, tuple)):
        return [_escape(v) for v in value]
    if isinstance(value, enum.Enum):
        return {_TAG: "enum", "t": _type_name(kind), "v": _escape(value.value)}
    if isinstance(value, (str, int, float)):
        # json would write them as their base type: the type would be lost without a word.
        base = "str" if isinstance(value, str) else "int" if isinstance(value, int) else "float"
        raise TypeError(
            f"cannot store a value of type {_type_name(kind)}: a {base} subclass would come back as a "
            f"plain {base}; pass {base}(value), or make it an Enum"
        )
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _escape({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if _pydantic_model(value):
        return _escape(value.model_dump(mode="python"))
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


def _hook_enum(obj: dict[str, Any]) -> Any:
    if obj.get(_TAG) == "enum" and len(obj) == 3 and "t" in obj and "v" in obj:
        return _EnumValue(obj["t"], obj["v"])
    return _hook(obj)


@dataclasses.dataclass(frozen=True)
class _EnumValue:
    """A stored enum member whose class is not known yet (resolved by :func:`_resolve`)."""

    type_name: str
    value: Any


def _enum_class(type_name: str) -> type[enum.Enum] | None:
    """The enum class named ``type_name`` among the modules already imported (never imports one)."""
    module_name, _, qualname = type_name.rpartition(".")
    while module_name:
        module = sys.modules.get(module_name)
        if module is not None:
            obj: Any = module
            for part in qualname.split("."):
                obj = getattr(obj, part, None)
            if isinstance(obj, type) and issubclass(obj, enum.Enum):
                return obj
            return None
        module_name, _, head = module_name.rpartition(".")
        qualname = f"{head}.{qualname}"
    return None


def _resolve(value: Any) -> Any:
    """Stored enum members made members again: of the class of their name, when imported."""
    if isinstance(value, _EnumValue):
        cls = _enum_class(value.type_name)
        if cls is None:
            raise PayloadError(
                f"a stored payload holds a member of enum {value.type_name}, which is not imported in this "
                "process: annotate the parameter or return type with it, or import its module")
        return cls(_resolve(value.value))
    if isinstance(value, list):
        return [_resolve(v) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v) for k, v in value.items()}
    return value


def _has_enum(value: Any) -> bool:
    if isinstance(value, _EnumValue):
        return True
    if isinstance(value, list):
        return any(_has_enum(v) for v in value)
    if isinstance(value, dict):
        return any(_has_enum(v) for v in value.values())
    return False


def _resolving(value: Any) -> Any:
    return _resolve(value) if _has_enum(value) else value


_EMPTY = inspect.Parameter.empty
_ENUM_MARK = '"$pd":"enum"'  # in a payload's JSON text only where dumps tagged an enum member


def _same(value: Any) -> Any:
    return value


def convert(value: Any, annotation: Any) -> Any:
    """``value`` (as :func:`loads` returns it) decoded into ``annotation``: enums, dataclasses and
    Pydantic v2 models (also inside ``list[...]``, ``dict[str, ...]``, ``Optional``/unions, tuples
    and sets, which stay lists) become instances of their type; everything else is returned as is.
    A value that does not fit the annotated type raises ``TypeError``/``ValueError``."""
    return _convert(value, annotation, True)


def _convert(value: Any, annotation: Any, enums: bool) -> Any:
    """:func:`convert`; ``enums`` False: the value holds no stored enum member (nothing to resolve)."""
    keep = _resolving if enums else _same
    if not _typed(annotation):  # plain JSON types, Any, no annotation: nothing to build
        return keep(value)
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _convert(value, typing.get_args(annotation)[0], enums)
    if origin is typing.Union or origin is types.UnionType:
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None:
            return None
        if isinstance(value, (dict, list)):
            # A stored object or array is meant for the dataclass, model or typed container among
            # the options: a plain option (int, str, Any) listed first would accept it unchanged.
            options.sort(key=lambda option: not _typed(option))
        errors: list[BaseException] = []
        for option in options:
            try:
                return _convert(value, option, enums)
            except (TypeError, ValueError, PayloadError) as exc:
                errors.append(exc)
        if errors and len(errors) == len(options):
            raise errors[0]
        return keep(value)
    if origin in (list, tuple, set, frozenset, typing.Sequence, typing.MutableSequence,
                  typing.Iterable) or (origin is not None and _is_abc(origin, "Sequence")):
        given = typing.get_args(annotation)
        args = [a for a in given if a is not Ellipsis]
        if not isinstance(value, list):
            return keep(value)
        if origin is tuple and Ellipsis not in given and len(args) == len(value):
            return [_convert(v, a, enums) for v, a in zip(value, args, strict=True)]
        item = args[0] if args else None
        return [_convert(v, item, enums) for v in value]
    if origin is dict or (origin is not None and _is_abc(origin, "Mapping")):
        args = typing.get_args(annotation)
        if not isinstance(value, dict):
            return keep(value)
        key_type, value_type = (args + (None, None))[:2] if args else (None, None)
        return {_convert(k, key_type, enums): _convert(v, value_type, enums) for k, v in value.items()}
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            if isinstance(value, _EnumValue):
                if value.type_name != _type_name(annotation):
                    raise TypeError(f"a member of enum {value.type_name} cannot be decoded into "
                                    f"{_type_name(annotation)}")
                return annotation(_resolve(value.value))
            return value if isinstance(value, annotation) else annotation(value)
        if dataclasses.is_dataclass(annotation):
            if isinstance(value, annotation):
                return value
            if not isinstance(value, dict):
                raise TypeError(f"cannot decode a {type(value).__name__} into dataclass "
                                f"{_type_name(annotation)}: it was stored as a JSON object")
            hints = _hints(annotation)
            known = {f.name for f in dataclasses.fields(annotation) if f.init}
            unknown = sorted(set(value) - known)
            if unknown:
                raise TypeError(f"cannot decode into dataclass {_type_name(annotation)}: unknown "
                                f"field(s) {', '.join(unknown)}")
            return annotation(**{k: _convert(v, hints.get(k), enums) for k, v in value.items()})
        validate = getattr(annotation, "model_validate", None)
        if validate is not None and _is_pydantic_class(annotation):
            return value if isinstance(value, annotation) else validate(keep(value))
    return keep(value)


def _typed(annotation: Any) -> bool:
    """Whether ``annotation`` names (or contains) an enum, a dataclass or a Pydantic model."""
    try:
        return _typed_cached(annotation)
    except TypeError:  # unhashable
        return _typed_uncached(annotation)


@functools.lru_cache(maxsize=4096)
def _typed_cached(annotation: Any) -> bool:
    return _typed_uncached(annotation)


def _typed_uncached(annotation: Any) -> bool:
    if annotation is None or annotation is _EMPTY or annotation is Any or isinstance(annotation, str):
        return False
    args = typing.get_args(annotation)
    if args:
        return any(_typed(a) for a in args if a is not Ellipsis)
    if isinstance(annotation, type):
        return (issubclass(annotation, enum.Enum) or dataclasses.is_dataclass(annotation)
                or _is_pydantic_class(annotation))
    return False


def _is_abc(origin: Any, name: str) -> bool:
    import collections.abc as abc

    base = getattr(abc, name)
    return isinstance(origin, type) and issubclass(origin, base) and origin is not str


def _is_pydantic_class(cls: type) -> bool:
    module = sys.modules.get("pydantic")
    base = getattr(module, "BaseModel", None) if module is not None else None
    return base is not None and issubclass(cls, base)


def _hints(obj: Any) -> dict[str, Any]:
    try:
        return _cached_hints(obj)
    except TypeError:  # unhashable
        return _type_hints(obj)


@functools.lru_cache(maxsize=4096)
def _cached_hints(obj: Any) -> dict[str, Any]:
    return _type_hints(obj)


def _type_hints(obj: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(obj, include_extras=True)
    except Exception:  # noqa: BLE001 - an unresolvable annotation means "no annotation"
        return {}


@functools.lru_cache(maxsize=4096)
def _positional(fn: Any) -> tuple[tuple[str, ...], str | None] | None:
    """The names of ``fn``'s positional parameters, and of its ``*args`` (None: no signature)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    params = tuple(p.name for p in signature.parameters.values()
                   if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
    rest = next((p.name for p in signature.parameters.values() if p.kind is p.VAR_POSITIONAL), None)
    return params, rest


def convert_args(fn: Any, args: list[Any]) -> list[Any]:
    """``args`` decoded into the annotated parameter types of ``fn`` (positional, in order)."""
    return _convert_args(fn, args, True)


def _convert_args(fn: Any, args: list[Any], enums: bool) -> list[Any]:
    try:
        shape = _positional(fn)
    except TypeError:  # unhashable callable
        shape = _positional.__wrapped__(fn)
    if shape is None:
        return [_resolving(a) if enums else a for a in args]
    params, rest = shape
    hints = _hints(fn)
    converted: list[Any] = []
    for index, value in enumerate(args):
        name = params[index] if index < len(params) else rest
        annotation = _EMPTY if name is None else hints.get(name, _EMPTY)
        if enums or _typed(annotation):
            value = _convert(value, annotation, enums)
        converted.append(value)
    return converted


def return_type(fn: Any) -> Any:
    """The annotated return type of ``fn`` (None without one, or for a name)."""
    if fn is None or isinstance(fn, str):
        return None
    return _hints(fn).get("return")


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


def loads(stored: str, annotation: Any = None) -> Any:
    """Reads stored text back into a value (the codec, then JSON); :class:`PayloadError` when it
    cannot be decoded. With ``annotation``, the value is decoded into that type (:func:`convert`)."""
    value, enums = _decoded_tagged(stored)
    if annotation is None and not enums:
        return value
    return _convert(value, annotation, enums)


def loads_args(fn: Any, stored: str) -> list[Any]:
    """Stored arguments read back and decoded into ``fn``'s annotated parameter types
    (:func:`convert_args`)."""
    value, enums = _decoded_tagged(stored)
    return _convert_args(fn, list(value), enums)


def _decoded_tagged(stored: str) -> tuple[Any, bool]:
    try:
        text = decode_text(stored)
        enums = _ENUM_MARK in text
        return json.loads(text, object_hook=_hook_enum if enums else _hook), enums
    except PayloadError:
        raise
    except Exception as exc:
        raise PayloadError(f"cannot decode a stored payload ({type(exc).__name__}: {exc}); "
                           "is the same codec registered as when it was written?") from exc


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
    stored = {
        "type": getattr(exc, "error_type", None) or type(exc).__name__,
        "types": error_type_names(exc),
        "message": encode_text(message if isinstance(message, str) else str(exc)),
        "traceback": encode_text(tb),
        "non_retryable": non_retryable,
    }
    cause = _cause_to_json(exc, 0)
    if cause is not None:
        stored["cause"] = cause
    if type(exc).__name__ == "DurableMaxedError" and hasattr(exc, "attempts"):
        stored["retries_exhausted"] = True
    return stored


_CAUSE_DEPTH = 5


def _cause_to_json(exc: BaseException, depth: int) -> dict[str, Any] | None:
    """The error chained to ``exc`` (messages through the codec): for a remote error (an activity's
    exhausted retries, a failed child) the remote error itself, then what it wraps; else
    ``raise ... from`` (or the implicit context)."""
    if depth >= _CAUSE_DEPTH:
        return None
    remote_type = getattr(exc, "error_type", None) if hasattr(exc, "error_type") else None
    if depth == 0 and remote_type and type(exc).__name__ in ("DurableMaxedError", "DurableChildError"):
        # Kept as the workflow's own error (type and message): the chain says how it got there.
        wrapper: dict[str, Any] = {"type": type(exc).__name__,
                                   "message": encode_text(str(getattr(exc, "message", exc)))}
        details = getattr(exc, "details", None) or {}
        for key in ("activity_name", "status"):
            if isinstance(details.get(key), str):
                wrapper[key] = details[key]
        if getattr(exc, "attempts", None) is not None:
            wrapper["attempts"] = exc.attempts  # type: ignore[attr-defined]
        if getattr(exc, "child_workflow_id", None) is not None:
            wrapper["child_workflow_id"] = exc.child_workflow_id  # type: ignore[attr-defined]
        original: dict[str, Any] = {"type": remote_type,
                                    "message": encode_text(str(getattr(exc, "message", exc)))}
        remote_tb = getattr(exc, "traceback", None)
        if isinstance(remote_tb, str) and remote_tb:
            original["traceback"] = encode_text(remote_tb)
        wrapper["cause"] = original
        return wrapper
    chained = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if chained is None:
        return None
    entry: dict[str, Any] = {"type": type(chained).__name__,
                             "message": encode_text(str(getattr(chained, "message", None) or chained))}
    if isinstance(getattr(chained, "error_type", None), str):
        entry["error_type"] = chained.error_type  # type: ignore[attr-defined]  # a remote error's original
    deeper = _cause_to_json(chained, depth + 1)
    if deeper is not None:
        entry["cause"] = deeper
    return entry


def error_cause(error: dict[str, Any] | None) -> tuple[dict[str, Any] | None, bool]:
    """(cause, retries_exhausted) of a stored error: the chained error as a dict, messages and
    tracebacks decoded (``None`` without one), and whether the workflow let an activity's exhausted
    retries (``DurableMaxedError``) escape."""
    if not error:
        return None, False
    return _decode_cause(error.get("cause"), 0), bool(error.get("retries_exhausted"))


def _decode_cause(cause: Any, depth: int) -> dict[str, Any] | None:
    if not isinstance(cause, dict) or depth > _CAUSE_DEPTH:
        return None
    decoded = dict(cause)
    for key in ("message", "traceback"):
        if isinstance(decoded.get(key), str):
            decoded[key] = decode_text(decoded[key])
    if "cause" in decoded:
        decoded["cause"] = _decode_cause(decoded["cause"], depth + 1)
    return decoded


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
