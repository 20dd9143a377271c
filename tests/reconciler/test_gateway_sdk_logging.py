"""The SDK's debug lines (each response body, formatted) are made only when written."""

from __future__ import annotations

import logging

import pytest
import stripe._api_requestor as requestor
import stripe._util as sdk_util

import reconciler.gateway  # noqa: F401  (importing it is what changes the SDK's logging)


def test_a_response_body_is_formatted_only_when_its_debug_line_is_written(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    formatted: list[dict[str, object]] = []
    real = sdk_util.logfmt

    def counting(props: dict[str, object]) -> str:
        formatted.append(props)
        return real(props)

    monkeypatch.setattr(sdk_util, "logfmt", counting)
    monkeypatch.delenv("STRIPE_LOG", raising=False)
    monkeypatch.setattr("stripe.log", None, raising=False)

    caplog.set_level(logging.INFO, logger="stripe")
    requestor.log_debug("API response body", body='{"data": []}')
    assert formatted == []

    caplog.set_level(logging.DEBUG, logger="stripe")
    requestor.log_debug("API response body", body='{"data": []}')
    assert len(formatted) == 1
    [line] = [record.getMessage() for record in caplog.records]
    assert "message='API response body'" in line and "body=" in line
