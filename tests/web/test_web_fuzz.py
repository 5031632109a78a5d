"""API fuzzing with schemathesis against the OpenAPI description: no server errors."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")
from hypothesis import HealthCheck, given, settings  # noqa: E402


@pytest.fixture(scope="module")
def fuzz_app(web_run):
    from trapline.web import create_app

    return create_app(web_run, "fuzz-token", use_env_token=False)


def test_no_server_errors(fuzz_app):
    """Every operation, a few generated requests each: never a 5xx."""
    from schemathesis.checks import not_a_server_error

    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        strategy = operation.as_strategy()

        @settings(max_examples=8, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def check(case):
            response = case.call()
            if response.status_code >= 500:
                failures.append((case.operation.label, case.path, case.query, response.status_code,
                                 response.text[:300]))
            case.validate_response(response, checks=[not_a_server_error])

        check()
    assert not failures, failures
