from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from reconciler.apply.applier import _decoded


@dataclass(frozen=True)
class _Stored:
    id: int
    payload: str


@pytest.mark.parametrize(
    "payload",
    [
        '{"id": "evt_1", "data": {"object": {"amount": 1099, "metadata": {}, "x": [1.5, null]}}}',
        '{"big": 123456789012345678901234567890, "id": "evt_1", "id": "evt_2"}',
        '{"id": "evt_1", "far": 1e400}',  # past a float's range: msgspec refuses, json reads inf
        '{"id": "evt_\\u00e9\\ud83d\\ude00", "s": "line\\nnext"}',
        # Stored before the intake refused them: msgspec refuses, json reads.
        '{"id": "evt_1", "rate": NaN, "cap": Infinity, "floor": -Infinity}',
        '{"id": "evt_1", "name": "\\ud83d"}',  # a lone surrogate, escaped
        '{"id": "evt_1", "name": "\ud83d"}',  # and as it stands in the text
    ],
)
def test_stored_events_are_decoded_as_json_decodes_them(payload: str) -> None:
    decoded, expected = _decoded(_Stored(1, payload)), json.loads(payload)
    assert repr(decoded) == repr(expected)  # repr: NaN is not equal to itself
