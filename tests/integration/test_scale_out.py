"""Scale-out on one machine: 3 Kafka brokers, a head and a joined processing node, each its
own process tree on 127.0.0.1. One broker and the whole node die in the middle of a run;
every job still gets exactly one answer. Tasks that declare resources run only where a node
has them, or are rejected with a reason.

This module runs its own cluster (``computeinfra.testing.cluster``), not the session stack.
"""

from __future__ import annotations

import json
import os
import random
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from confluent_kafka.admin import AdminClient

from computeinfra import Client, Status
from computeinfra.cluster.launcher import analyzer_snapshot, block_statuses
from computeinfra.kafka.partitioner import partition_for
from computeinfra.protocol import PENDING_TOPIC, lane_topic
from computeinfra.testing.cluster import ClusterStack, cluster_stack
from tests.chaos import ChaosReport, _check, _counts, _images
from tests.helpers import read_topic, run_cli, wait_for

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
JOBS = 1000
HEAD_BLOCKS = 2
NODE_BLOCKS = 2
NODE = "node-2"
NODE_RESOURCES = '{"special": 1}'
SPECIAL_JOBS = 40
SETTLE_SECONDS = 400
LONG_SECONDS = 240.0


def _swap_env(env: dict[str, str]) -> dict[str, str | None]:
    """Make this process read the cluster's settings; returns what to put back."""
    names = {n for n in os.environ if n.startswith("COMPUTEINFRA_") or n == "RAY_ADDRESS"}
    saved = {name: os.environ.get(name) for name in names | set(env)}
    for name in names:
        del os.environ[name]
    os.environ.update(env)
    return saved


def _restore_env(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterStack]:
    extra = {
        "COMPUTEINFRA_TASKS": "sample_tasks",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
    }
    if ray.is_initialized():  # connected to the session stack by an earlier test
        ray.shutdown()
    with cluster_stack(tmp_path_factory.mktemp("scale"), HEAD_BLOCKS, extra) as stack:
        stack.join(NODE, NODE_BLOCKS, NODE_RESOURCES)
        saved = _swap_env(stack.env)
        try:
            yield stack
        finally:
            if ray.is_initialized():
                ray.shutdown()
            _restore_env(saved)


def _node_ids(stack: ClusterStack) -> dict[str, str]:
    return {row["node_name"]: row["node"] for row in block_statuses(stack.settings)}


def _pending_partitions(stack: ClusterStack) -> dict[str, list[int]]:
    """``pendingJobs`` partitions per group member (static id), as the group assigned them."""
    admin = AdminClient({"bootstrap.servers": stack.settings.bootstrap_servers})
    group = stack.settings.group
    description = admin.describe_consumer_groups([group])[group].result(timeout=30)
    return {
        member.group_instance_id or member.member_id: sorted(
            tp.partition for tp in member.assignment.topic_partitions if tp.topic == PENDING_TOPIC
        )
        for member in description.members
    }


def _node_has_partitions(stack: ClusterStack, name: str) -> bool:
    """Every block of node ``name`` reads part of ``pendingJobs``, not only its lanes."""
    members = {m: p for m, p in _pending_partitions(stack).items() if f"-node-{name}-" in m}
    return len(members) == NODE_BLOCKS and all(members.values())


def _submit(client: Client, stack: ClusterStack, rng: random.Random) -> list:
    images = _images(stack.inputs / "scale", 6)
    handles = []
    for i in range(JOBS):
        if i % 10 == 0:
            payload = {"images": [rng.choice(images)], "quality": rng.randint(20, 80)}
            handles.append(client.submit("image-compression", payload, f"scale/{i}"))
        else:
            handles.append(client.submit("sleep", {"seconds": rng.uniform(0, 0.01)}, "scale/s"))
    return handles


@pytest.mark.timeout(900)
def test_broker_and_node_lost_mid_run(cluster: ClusterStack) -> None:
    blocks = block_statuses(cluster.settings)
    assert Counter(r["node_name"] for r in blocks) == {"head": HEAD_BLOCKS, NODE: NODE_BLOCKS}
    wait_for(lambda: _node_has_partitions(cluster, NODE), 60, "the node's blocks to consume")
    ids = _node_ids(cluster)
    before = _counts(cluster)
    with Client(settings=cluster.settings) as client:
        handles = _submit(client, cluster, random.Random(11))
        wait_for(lambda: sum(h.done() for h in handles) >= JOBS * 0.3, SETTLE_SECONDS, "30%")
        broker_pid = cluster.kafka.broker(2).status().pid
        assert broker_pid is not None
        os.kill(broker_pid, signal.SIGKILL)
        assert cluster.kill_node(NODE) >= 1 + 2 * NODE_BLOCKS  # up --join, raylet, blocks
        for handle in handles:
            handle.completion(SETTLE_SECONDS)
    report = ChaosReport(JOBS)
    _check(cluster, handles, before, report)  # one committed answer each, files, analyzer
    assert report.problems == []
    assert report.statuses == {"succeeded": JOBS}
    ran_on = Counter(h.completion().node for h in handles)
    assert ran_on[ids[NODE]] > 0 and ran_on[ids["head"]] > 0
    assert set(ran_on) <= set(ids.values())

    # The node comes back under its name: its blocks fence their dead selves and get
    # partitions again (the broker returns too, so the next test has all three).
    cluster.kafka.broker(2).start()
    cluster.join(NODE, NODE_BLOCKS, NODE_RESOURCES)
    wait_for(lambda: _node_has_partitions(cluster, NODE), 120, "the blocks to rebalance")


@pytest.mark.timeout(600)
def test_tasks_run_only_where_their_resources_are(cluster: ClusterStack) -> None:
    if NODE not in cluster.nodes:  # run alone, or after a failed first test
        cluster.join(NODE, NODE_BLOCKS, NODE_RESOURCES)
    wait_for(lambda: _node_has_partitions(cluster, NODE), 120, "the node's blocks to consume")
    node_id = _node_ids(cluster)[NODE]
    counted = analyzer_snapshot(cluster.settings)["tasks"].get("special-where", {})
    with Client(settings=cluster.settings) as client:
        handles = [
            client.submit("special-where", {"message": str(i)}, "special")
            for i in range(SPECIAL_JOBS)
        ]
        unicorn = client.submit("needs-unicorn", {}, "unicorn")
        done = [h.completion(SETTLE_SECONDS) for h in handles]
        refused = unicorn.completion(60)
    assert {c.status for c in done} == {Status.SUCCEEDED}
    assert {c.node for c in done} == {node_id}
    # Blocks on the head received some of them on pendingJobs and forwarded them.
    lane = read_topic(cluster.settings.bootstrap_servers, lane_topic("special-where"))
    keys = {h.key for h in handles}
    assert lane and {k.decode() for k, _v, _h in lane} <= keys
    # The lane is not a second submission: the analyzer counts each job once.
    expected = (
        counted.get("requests_read", 0) + SPECIAL_JOBS,
        counted.get("succeeded", 0) + SPECIAL_JOBS,
    )

    def special() -> tuple[int, int]:
        row = analyzer_snapshot(cluster.settings)["tasks"]["special-where"]
        return row["requests_read"], row["succeeded"]

    wait_for(lambda: special() == expected, 60, "the analyzer to count the special jobs once")
    assert refused.status is Status.REJECTED and refused.error is not None
    assert "unicorn" in refused.error.message and "--join" in refused.error.message


def test_cli_shows_nodes_and_resources(cluster: ClusterStack) -> None:
    rows = json.loads(run_cli("blocks", "--json", env=cluster.env, check=True).stdout)
    assert {r["node_name"] for r in rows} >= {"head"}
    assert all(r["node"] and r["name"].startswith("supervisor-") for r in rows)
    tasks = json.loads(run_cli("tasks", "--json", env=cluster.env, check=True).stdout)
    assert tasks["special-where"]["resources"] == {"special": 1}
    assert tasks["sleep"]["resources"] == {}
    local = {**cluster.env, "COMPUTEINFRA_BOOTSTRAP": ""}  # as on the Kafka host itself
    status = json.loads(run_cli("kafka", "status", env=local).stdout)
    assert len(status["nodes"]) == 3


@pytest.mark.timeout(600)
def test_a_node_stops_at_once_on_a_second_ctrl_c(cluster: ClusterStack) -> None:
    """`up --join` drains on Ctrl-C as `up` does, and a second Ctrl-C stops it at once
    (issue #13): a node whose job runs for minutes is gone long before it would end."""
    if NODE not in cluster.nodes:  # run alone, or after a failed first test
        cluster.join(NODE, NODE_BLOCKS, NODE_RESOURCES)
    wait_for(lambda: _node_has_partitions(cluster, NODE), 120, "the node's blocks to consume")
    members = _pending_partitions(cluster)
    theirs = {p for m, ps in members.items() if f"-node-{NODE}-" in m for p in ps}
    count = cluster.settings.partitions
    key = next(k for i in range(10_000) if partition_for((k := f"node-long-{i}").encode(),
                                                         count) in theirs)  # fmt: skip
    with Client(settings=cluster.settings) as client:
        handle = client.submit("sleep", {"seconds": LONG_SECONDS}, "scale/long", key=key)
        wait_for(
            lambda: any(
                r["node_name"] == NODE and r.get("jobs") for r in block_statuses(cluster.settings)
            ),
            120,
            "the long job to run on the node",
        )
        process, log = cluster.nodes.pop(NODE), cluster.root / f"node-{NODE}.log"
        process.send_signal(signal.SIGINT)
        wait_for(lambda: b"Ctrl-C again to stop now" in log.read_bytes(), 60, "the drain")
        process.send_signal(signal.SIGINT)
        # A deadline well short of the job's end: the drain did not wait for it.
        process.wait(LONG_SECONDS / 2)
        assert b"stopping now" in log.read_bytes()
        assert not handle.done()  # cut short, unanswered: read again by the next owner
