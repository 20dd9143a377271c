"""Stripe's form encoding: bracket notation in, typed values out.

`metadata[k]=v` becomes a dict, `expand[]=a` and `expand[0]=a` both become lists (the SDK sends
the indexed form). Values stay strings until a handler asks for a type, as Stripe parses them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from .errors import invalid_request, missing_parameter, unknown_parameter

Params = dict[str, Any]

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")


def decode(raw: str) -> Params:
    """Decode an `application/x-www-form-urlencoded` body or query string."""
    root: Params = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        match = _KEY.match(key)
        if match is None:
            raise invalid_request(f"Invalid parameter name: {key}", param=key)
        path = [match.group(1), *_PART.findall(match.group(2))]
        _insert(root, path, value, key)
    return _listify(root)  # type: ignore[no-any-return]


def _insert(node: Params, path: list[str], value: str, key: str) -> None:
    head, rest = path[0], path[1:]
    if not rest:
        if head == "":
            head = str(_next_index(node))
        if isinstance(node.get(head), dict):
            raise invalid_request(f"Invalid value for {key}: expected an object", param=key)
        node[head] = value
        return
    if head == "":
        head = str(_next_index(node))
    child = node.setdefault(head, {})
    if not isinstance(child, dict):
        raise invalid_request(f"Invalid value for {key}: expected a string", param=key)
    _insert(child, rest, value, key)


def _next_index(node: Params) -> int:
    return len(node)


def _listify(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    converted = {k: _listify(v) for k, v in value.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def check_known(params: Params, allowed: Iterable[str]) -> None:
    """Reject top-level parameters the endpoint does not accept, as Stripe does."""
    allowed_set = set(allowed) | {"expand"}
    for name in params:
        if name not in allowed_set:
            raise unknown_parameter(name)


def get_str(params: Params, name: str, *, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None:
        if required:
            raise missing_parameter(name)
        return None
    if not isinstance(value, str):
        raise invalid_request(f"Invalid string: {name}", param=name)
    return value


def require_str(params: Params, name: str) -> str:
    value = get_str(params, name, required=True)
    assert value is not None
    return value


def get_int(params: Params, name: str, *, required: bool = False) -> int | None:
    value = params.get(name)
    if value is None:
        if required:
            raise missing_parameter(name)
        return None
    if isinstance(value, int):
        return value
    if not isinstance(value, str) or not re.fullmatch(r"-?\d+", value):
        raise invalid_request(
            f"Invalid integer: {value}", param=name, code="parameter_invalid_integer"
        )
    return int(value)


def get_bool(params: Params, name: str, default: bool = False) -> bool:
    value = params.get(name)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    raise invalid_request(f"Invalid boolean: {value}", param=name)


def get_list(params: Params, name: str) -> list[str]:
    value = params.get(name)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise invalid_request(f"Invalid array: {name}", param=name)


def get_dict(params: Params, name: str) -> dict[str, Any]:
    value = params.get(name)
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise invalid_request(f"Invalid object: {name}", param=name)
    return value


def metadata_update(current: dict[str, str], params: Params) -> dict[str, str]:
    """Apply Stripe's metadata rules: `metadata=""` clears, `metadata[k]=""` deletes k."""
    if "metadata" not in params:
        return current
    value = params["metadata"]
    if value == "":
        return {}
    if not isinstance(value, dict):
        raise invalid_request("Invalid object", param="metadata")
    merged = dict(current)
    for key, item in value.items():
        if not isinstance(item, str):
            raise invalid_request("Invalid metadata value", param=f"metadata[{key}]")
        if len(key) > 40:
            raise invalid_request(
                "Metadata keys can have a maximum length of 40 characters.",
                param=f"metadata[{key}]",
            )
        if len(item) > 500:
            raise invalid_request(
                "Metadata values can have a maximum length of 500 characters.",
                param=f"metadata[{key}]",
            )
        if item == "":
            merged.pop(key, None)
        else:
            merged[key] = item
    if len(merged) > 50:
        raise invalid_request("Metadata can have a maximum of 50 keys.", param="metadata")
    return merged


def fingerprint(params: Params) -> str:
    """A canonical form of the parameters, for comparing idempotent requests."""
    return repr(_canonical(params))


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _canonical(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_canonical(v) for v in value)
    return value
