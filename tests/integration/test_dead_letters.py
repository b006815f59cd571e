"""Dead letters (issue #14): listed from the CLI and the HTTP API, replayed under new keys
derived from the old one, the new request carrying ``replay_of``, and each replay noted
on the dead letter. An unknown key is an error that writes nothing."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from computeinfra import Client, Status
from computeinfra.client.lookup import find_last
from computeinfra.protocol import PENDING_TOPIC, decode_request
from tests.helpers import Stack, run_cli, wait_for
from tests.integration.web_helpers import wait_for_web

TIMEOUT = 120


def _listed(stack: Stack, key: str) -> dict[str, Any] | None:
    out = run_cli("dead-letters", "--task", "explode", "--json", env=stack.env, check=True)
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    return next((row for row in rows if row["key"] == key), None)


def test_a_dead_job_is_listed_and_replayed_from_the_cli_and_the_http_api(
    stack: Stack, client: Client
) -> None:
    key = f"dead-{uuid.uuid4().hex[:8]}"
    failed = client.submit("explode", {"message": "dead"}, "dead-letters", key=key)
    assert failed.completion(TIMEOUT).status is Status.FAILED
    letter = wait_for(lambda: _listed(stack, key), TIMEOUT, "the dead letter to be listed")
    assert letter["task"] == "explode" and "ValueError: dead" in letter["reason"]
    assert letter["attempts"] == 1 and letter["replayed_as"] == []

    replayed = run_cli("dead-letters", "replay", key, env=stack.env, check=True)
    assert replayed.stdout.split() == [f"{key}.r1"]
    found = find_last(stack.settings.bootstrap_servers, PENDING_TOPIC, f"{key}.r1")
    assert found is not None and decode_request(found[0]).replay_of == key
    again = client.job(f"{key}.r1").completion(TIMEOUT)
    assert again.status is Status.FAILED and again.task == "explode"  # it ran again
    noted = wait_for(lambda: ((row := _listed(stack, key)) and row["replayed_as"]) or None,
                     TIMEOUT, "the replay noted on the dead letter")  # fmt: skip
    assert noted == [f"{key}.r1"]

    wait_for_web(stack)
    listing = httpx.get(f"{stack.web_url}/api/dead-letters", params={"task": "explode"}, timeout=60)
    views = {v["key"]: v for v in listing.json()["dead_letters"]}
    assert views[key]["replayed_as"] == [f"{key}.r1"] and views[key]["replayable"]
    answer = httpx.post(f"{stack.web_url}/api/dead-letters/{key}/replay", timeout=60)
    assert answer.status_code == 201, answer.text
    assert answer.json() == {"key": f"{key}.r2", "replay_of": key}

    unknown = f"no-such-{uuid.uuid4().hex[:8]}"
    missing = httpx.post(f"{stack.web_url}/api/dead-letters/{unknown}/replay", timeout=60)
    assert missing.status_code == 404, missing.text
    cli = run_cli("dead-letters", "replay", unknown, env=stack.env)
    assert cli.returncode == 2 and "no job has the key" in cli.stderr, cli
    assert find_last(stack.settings.bootstrap_servers, PENDING_TOPIC, f"{unknown}.r1") is None


def test_replay_all_sends_again_only_the_dead_letters_not_replayed_yet(
    stack: Stack, client: Client
) -> None:
    first, second = (f"dead-all-{uuid.uuid4().hex[:8]}" for _ in range(2))
    for key in (first, second):
        assert client.submit("explode", {}, "dead-letters", key=key).completion(TIMEOUT).status
    for key in (first, second):
        wait_for(lambda k=key: _listed(stack, k), TIMEOUT, f"{key} listed")
    assert run_cli("dead-letters", "replay", first, env=stack.env, check=True).stdout.split() == [
        f"{first}.r1"
    ]
    wait_for(lambda: (_listed(stack, first) or {}).get("replayed_as"), TIMEOUT, "the note")
    every = run_cli(
        "dead-letters", "replay", "--all", "--task", "explode", env=stack.env, check=True
    )
    new = every.stdout.split()
    assert f"{second}.r1" in new and f"{first}.r2" not in new  # replayed once already
    usage = run_cli("dead-letters", "replay", env=stack.env)
    assert usage.returncode == 2 and "--all" in usage.stderr, usage
