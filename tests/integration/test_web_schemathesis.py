"""schemathesis against the OpenAPI spec the running web app serves: no 5xx, and every
answer conforms to the spec. Bounded: a few examples per operation.

POST /api/jobs submits real jobs; generated task names are random text, so in practice they
are rejected (422) before reaching Kafka, and any that pass are harmless: results stay in
the stack's results root.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.helpers import Stack
from tests.integration.web_helpers import wait_for_web

MAX_EXAMPLES = 15
# The event stream never ends by design; test_web_api.py reads it.
SKIPPED_PATHS = ["/api/events"]


def check_operation(operation: schemathesis.APIOperation) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        # Schema-valid requests may still be refused: a payload must fit the schema of the
        # task it names, which only the task registry knows (GET /api/tasks).
        case.call_and_validate(timeout=60, excluded_checks=[positive_data_acceptance])

    run()


def test_api_conforms_to_its_spec(stack: Stack) -> None:
    # Loaded here, not at import time (schemathesis' usual way), because the app only
    # exists once the session stack runs.
    wait_for_web(stack)
    schema = schemathesis.openapi.from_url(f"{stack.web_url}/openapi.json")
    failures = {}
    tested = []
    for result in schema.exclude(path=SKIPPED_PATHS).get_all_operations():
        operation = result.ok()
        tested.append(operation.label)
        try:
            check_operation(operation)
        except Exception as exc:  # collect every operation's failure, then report them all
            failures[operation.label] = str(exc)[:2000]
    assert {"POST /api/jobs", "GET /api/jobs/{key}", "GET /metrics"} <= set(tested)
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
