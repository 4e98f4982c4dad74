"""Property-based requests generated from the app's own OpenAPI schema (schemathesis): no 5xx, and
every error in the shape of its API. Bounded examples per operation."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

schemathesis = pytest.importorskip("schemathesis")
pytest_plugins = ["server_support.fixtures"]


@pytest.mark.slow  # ~15 s on 2 cores
def test_no_server_errors(server):
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    operations = [r.ok() for r in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/chat/completions", "/v1/messages", "/v1/completions"}
    for op in operations:
        @settings(max_examples=25, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy())
        def check(case):
            if isinstance(case.body, dict) and "max_tokens" in case.body and isinstance(case.body["max_tokens"], int):
                case.body["max_tokens"] = min(case.body["max_tokens"], 4)  # keep generation short
            if isinstance(case.body, dict) and isinstance(case.body.get("n"), int):
                case.body["n"] = min(case.body["n"], 2)
            r = case.call(base_url=server.url, timeout=60)
            assert r.status_code < 500, (op.path, case.body, r.text[:300])
            if r.status_code >= 400 and op.path.startswith("/v1/"):
                body = r.json()
                assert ("error" in body and "message" in body["error"]) if not op.path.startswith("/v1/messages") \
                    else body["type"] == "error"
        check()
