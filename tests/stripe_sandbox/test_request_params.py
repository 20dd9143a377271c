"""Every parameter SDK 16.1.0 may send to a create/confirm call is known to the sandbox, so code
that Stripe accepts is never refused here with `parameter_unknown`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stripe_sandbox import accounts, payment_intents, refunds, transfers

PARAMS_PATH = (
    Path(__file__).parents[2] / ".." / "shared" / "stripe" / "sdk-16.1.0-request-params.txt"
)

pytestmark = pytest.mark.skipif(
    not PARAMS_PATH.exists(),
    reason=f"REQUEST PARAMETERS NOT CHECKED: {PARAMS_PATH} is absent (no ../shared); CI has it",
)

KNOWN = {
    "TransferCreateParams": transfers.CREATE_PARAMS,
    "RefundCreateParams": refunds.CREATE_PARAMS,
    "PaymentIntentCreateParams": payment_intents.CREATE_PARAMS,
    "PaymentIntentConfirmParams": payment_intents.CONFIRM_PARAMS,
    "AccountCreateParams": accounts.CREATE_PARAMS,
}


def sdk_params() -> dict[str, set[str]]:
    sections: dict[str, set[str]] = {}
    current = ""
    for line in PARAMS_PATH.read_text().splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            sections[current] = set()
        elif match := re.match(r"^\s+(\w+):", line):
            sections[current].add(match.group(1))
    return sections


@pytest.mark.parametrize("section", sorted(KNOWN))
def test_sandbox_knows_every_sdk_parameter(section: str) -> None:
    missing = sdk_params()[section] - KNOWN[section] - {"expand"}
    assert missing == set(), f"{section}: the sandbox would refuse {sorted(missing)}"
