"""The data processor's tests run with its wall-time limit far away (60 s, not 5 s).

What a query may do is bounded by memory, CPU and rows as well as by the wall clock, and a
loaded machine (CI, the suite's own workers) can stretch a query that takes 0.3 s alone past
5 s: the tests of the other bounds must not fail on it. Tests of the wall-time limit set their
own, short one (``monkeypatch.setenv`` after this fixture wins).
"""

from __future__ import annotations

import pytest

FAR_QUERY_TIMEOUT_S = "60"


@pytest.fixture(autouse=True)
def far_query_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_PROCESSOR_QUERY_TIMEOUT_S", FAR_QUERY_TIMEOUT_S)
