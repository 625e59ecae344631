"""The one credential scrubber: configured values, credential shapes, keys cut short."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from shared.errors import CredentialsRefused
from shared.redact import MARKER, Redactor, redact

ENVIRON = {
    "ANTHROPIC_API_KEY": "gw-upstream-secret-7f3a9c1e5b",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "TAVILY_API_KEY": "plain-tavily-secret-0042",
    "GATEWAY_API_KEYS": " client-key-one-1234 ,client-key-two-5678,",
    "AWS_ACCESS_KEY_ID": "testing",  # moto's: too short to be anyone's secret
}


@pytest.mark.parametrize(
    "secret",
    [
        "gw-upstream-secret-7f3a9c1e5b",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "plain-tavily-secret-0042",
        "client-key-one-1234",
        "client-key-two-5678",
    ],
)
def test_every_configured_credential_is_replaced(secret: str) -> None:
    text = f"invalid x-api-key {secret!r}; received {secret}"

    assert redact(text, ENVIRON) == f"invalid x-api-key '{MARKER}'; received {MARKER}"


@pytest.mark.parametrize(
    "leak",
    [
        "sk-ant-api03-Zx9_aB-cD3eFgHiJkLmNoPqRsTuVwXyZ0123456789",
        "sk-ant-oat01-abcdefghijklmnop",
        "AKIAIOSFODNN7EXAMPLE",
        "ASIAY34FZKBOKMUTVV7A",
        "tvly-dev-abcdefgh12345678",
        "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2d3In0.c2lnbmF0dXJl-_x",  # an ID token
    ],
)
def test_anything_shaped_like_a_credential_is_replaced_unconfigured(leak: str) -> None:
    assert redact(f"the key {leak} was refused", {}) == f"the key {MARKER} was refused"


def test_a_long_bearer_token_goes_and_the_word_stays() -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"

    assert redact(f"Authorization: Bearer {token}", {}) == f"Authorization: Bearer {MARKER}"
    assert redact("use a Bearer token", {}) == "use a Bearer token"


def test_short_configured_values_and_ordinary_text_are_left_alone() -> None:
    text = "testing the fake-anthropic scripted 401 authentication_error"

    assert redact(text, ENVIRON) == text


def test_a_key_cut_short_at_the_end_of_a_quote_still_goes() -> None:
    # An upstream body quoted to 200 characters can end in the first part of a key.
    secret = ENVIRON["ANTHROPIC_API_KEY"]

    assert redact(f"HTTP 401: <html>bad key {secret[:12]}", ENVIRON) == (
        f"HTTP 401: <html>bad key {MARKER}"
    )
    assert redact(f"bad key {secret[:12]}...", ENVIRON) == f"bad key {MARKER}..."


def test_a_secret_inside_another_is_replaced_whole() -> None:
    redactor = Redactor.from_environ(
        {"ANTHROPIC_API_KEY": "outer-secret-inner-key-99", "GATEWAY_API_KEY": "inner-key-99"}
    )

    assert redactor("got outer-secret-inner-key-99") == f"got {MARKER}"


def test_an_error_is_scrubbed_in_place_message_and_str() -> None:
    error = CredentialsRefused(f"anthropic: invalid x-api-key {ENVIRON['ANTHROPIC_API_KEY']}")

    Redactor.from_environ(ENVIRON).scrub(error)

    assert error.message == str(error) == f"anthropic: invalid x-api-key {MARKER}"
    assert error.body()["error"]["message"] == error.message


QUOTED_KEY = 'k3y"with\\back-slash-é-0042'
"""A configured secret that JSON writes escaped (``\\"``, ``\\\\``, ``\\u00e9``)."""
SLASHED_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_a_secret_is_replaced_as_a_json_line_holds_it(ensure_ascii: bool) -> None:
    scrub = Redactor.from_environ({"ANTHROPIC_API_KEY": QUOTED_KEY})
    line = json.dumps({"msg": f"refused {QUOTED_KEY}"}, ensure_ascii=ensure_ascii)
    assert QUOTED_KEY not in line  # the line holds only the escaped form

    assert scrub(line) == json.dumps({"msg": f"refused {MARKER}"})


def test_a_secret_is_replaced_url_encoded() -> None:
    scrub = Redactor.from_environ({"AWS_SECRET_ACCESS_KEY": SLASHED_KEY})
    text = f"GET /?secret={quote(SLASHED_KEY, safe='')} refused"
    assert "%2F" in text and "%2B" in text

    assert scrub(text) == f"GET /?secret={MARKER} refused"


def test_encoded_forms_are_added_only_when_they_differ() -> None:
    assert Redactor().adding("plain-secret-0042").secrets == ("plain-secret-0042",)


def test_an_otlp_exporters_headers_are_secrets() -> None:
    from shared.redact import Redactor

    scrub = Redactor.from_environ({"OTEL_EXPORTER_OTLP_HEADERS": "x-honeycomb-team=hc-secret-123"})
    assert "hc-secret-123" not in scrub("exporting with hc-secret-123 failed")
