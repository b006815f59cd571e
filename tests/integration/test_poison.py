"""One job's poison is its answer alone (issue #13): a result too large for Kafka, a value
JSON cannot carry, a result directory that names a file. Each gets one clear ``failed``
completion, and the jobs sent with it in the same batch all succeed."""

from __future__ import annotations

import uuid

from computeinfra import Client, Status
from computeinfra.protocol import FailureKind
from computeinfra.testing.stack import DevStack
from tests.helpers import completions_for

TIMEOUT = 120


def _mixed(stack: DevStack, client: Client) -> dict[str, object]:
    tag = uuid.uuid4().hex[:8]
    (stack.results / f"a-file-{tag}").parent.mkdir(parents=True, exist_ok=True)
    (stack.results / f"a-file-{tag}").write_text("not a folder")
    poison = {
        "big": client.submit("big-result", {"size": 5_000_000}, result_dir="poison"),
        "json": client.submit("not-json", {}, result_dir="poison"),
        "path": client.submit("sleep", {"seconds": 0}, result_dir=f"a-file-{tag}"),
    }
    fine = [client.submit("sleep", {"seconds": 0}, result_dir="poison") for _ in range(30)]
    return {"poison": poison, "fine": fine}


def test_poison_jobs_fail_alone_and_everything_else_succeeds(
    stack: DevStack, client: Client
) -> None:
    jobs = _mixed(stack, client)
    poison = {name: h.completion(timeout=TIMEOUT) for name, h in jobs["poison"].items()}
    fine = [h.completion(timeout=TIMEOUT) for h in jobs["fine"]]
    assert all(c.status is Status.SUCCEEDED for c in fine)
    expected = {
        "big": FailureKind.RESULT_TOO_LARGE,
        "json": FailureKind.RESULT_NOT_JSON,
        "path": FailureKind.PATH,
    }
    for name, kind in expected.items():
        completion = poison[name]
        assert completion.status is Status.FAILED, (name, completion)
        assert completion.error is not None and completion.error.type == kind, completion.error
        assert completion.attempts == 1  # not retried: it would fail the same way
    assert "COMPUTEINFRA_MAX_RESULT_BYTES" in (poison["big"].error.message or "")
    assert poison["path"].error.field == "result_dir"
    keys = [c.key for c in (*poison.values(), *fine)]
    found = completions_for(stack.settings.bootstrap_servers, keys)
    assert all(len(completions) == 1 for completions in found.values())
