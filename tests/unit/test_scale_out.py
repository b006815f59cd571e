"""Scale-out logic without Kafka or Ray: the quorum layout, lanes, placement decisions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from computeinfra import TaskContext, task
from computeinfra.block.jobs import Assignment, Forward
from computeinfra.block.middleware.placement import ResourcePlacement, lacking, ray_resources
from computeinfra.errors import BrokerError, ConfigError, RequestError, TaskError
from computeinfra.kafka.quorum import BrokerQuorum, QuorumConfig, recorded_nodes
from computeinfra.protocol import LANE_PREFIX, lane_topic
from computeinfra.runtime.node import NodeSpec, parse_resources
from computeinfra.tasks.registry import TaskRegistry


class Empty(BaseModel):
    pass


@task("gpu-job", payload=Empty, resources={"num_gpus": 1})
def gpu_job(payload: Empty, ctx: TaskContext) -> None:
    """Needs a GPU."""


@task("special-job", payload=Empty, resources={"special": 1})
def special_job(payload: Empty, ctx: TaskContext) -> None:
    """Needs the custom resource `special`."""


@task("plain", payload=Empty)
def plain(payload: Empty, ctx: TaskContext) -> None:
    """Runs anywhere."""


class Nodes:
    """A fixed directory of live nodes, standing in for ``ray.nodes()``."""

    def __init__(self, nodes: dict[str, dict[str, Any]]) -> None:
        self.nodes = nodes

    def alive(self) -> dict[str, dict[str, Any]]:
        return self.nodes


HEAD = {"name": "head", "resources": {"CPU": 2.0}}
SPECIAL = {"name": "node-2", "resources": {"CPU": 2.0, "special": 1.0}}


def _assignment(name: str) -> Assignment:
    return Assignment(key="k", task=name, payload=Empty(), result_dir="r", submitted_at=None)


def _placement(node: str, nodes: dict[str, dict[str, Any]]) -> tuple[ResourcePlacement, list]:
    created: list[list[str]] = []
    registry = TaskRegistry([gpu_job, special_job, plain])
    return ResourcePlacement(registry, node, Nodes(nodes), created.append), created


def test_quorum_ports_voters_and_replication(tmp_path: Path) -> None:
    config = QuorumConfig(tmp_path, nodes=3, port=9092, controller_port=9093)
    assert config.bootstrap == "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096"
    assert config.voters == "1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097"
    props = config.node(2).server_properties()
    assert props["node.id"] == "2"
    assert props["controller.quorum.voters"] == config.voters
    assert "controller.quorum.bootstrap.servers" not in props
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9095"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9094"
    assert props["default.replication.factor"] == "3"
    assert props["min.insync.replicas"] == "2"
    assert props["transaction.state.log.min.isr"] == "2"
    assert props["offsets.topic.replication.factor"] == "3"


def test_quorum_refuses_a_different_size(tmp_path: Path) -> None:
    (tmp_path / "quorum.json").write_text('{"nodes": 3}')
    assert recorded_nodes(tmp_path) == 3
    with pytest.raises(BrokerError, match="has 3 nodes"):
        BrokerQuorum(QuorumConfig(tmp_path, nodes=5)).start()
    with pytest.raises(BrokerError):
        QuorumConfig(tmp_path, nodes=1)


def test_lane_topics_are_valid_kafka_names() -> None:
    assert lane_topic("special-job") == f"{LANE_PREFIX}special-job"
    odd = lane_topic("résumé parser/v2")
    assert odd.startswith(LANE_PREFIX) and all(c.isascii() and c not in " /" for c in odd)
    assert lane_topic("a/b") != lane_topic("a_b")
    assert len(lane_topic("x" * 400)) <= 249


def test_task_resources_are_declared_and_checked() -> None:
    assert gpu_job.needs == {"num_gpus": 1}
    assert plain.needs == {}
    assert ray_resources(gpu_job.needs) == {"GPU": 1.0}
    assert lacking({"CPU": 2.0}, {"GPU": 1.0}) == {"GPU": 1.0}
    assert lacking({"CPU": 2.0, "GPU": 1.0}, {"GPU": 1.0}) == {}
    with pytest.raises(TaskError, match="positive"):
        task("bad", payload=Empty, resources={"special": 0})(lambda p, c: None)


def test_a_job_runs_where_its_resources_are() -> None:
    placement, _ = _placement("n2", {"n1": HEAD, "n2": SPECIAL})
    assert placement.placement(_assignment("special-job")) is None
    assert placement.placement(_assignment("plain")) is None


def test_a_node_without_them_forwards_to_the_lane() -> None:
    placement, created = _placement("n1", {"n1": HEAD, "n2": SPECIAL})
    decision = placement.placement(_assignment("special-job"))
    assert isinstance(decision, Forward)
    assert decision.topic == lane_topic("special-job")
    assert "node-2" in decision.reason
    placement.placement(_assignment("special-job"))
    assert created == [[lane_topic("special-job")]]  # created once, then remembered


def test_no_node_with_them_rejects_with_a_way_out() -> None:
    placement, _ = _placement("n1", {"n1": HEAD, "n2": SPECIAL})
    decision = placement.placement(_assignment("gpu-job"))
    assert isinstance(decision, RequestError)
    assert decision.field == "task"
    assert "GPU" in str(decision) and "--join" in str(decision)


def test_lanes_are_the_tasks_this_node_can_run() -> None:
    special, created = _placement("n2", {"n1": HEAD, "n2": SPECIAL})
    assert special.lanes() == [lane_topic("special-job")]
    assert created == [[lane_topic("special-job")]]
    head, _ = _placement("n1", {"n1": HEAD, "n2": SPECIAL})
    assert head.lanes() == []


def test_join_resources_and_ray_params() -> None:
    assert parse_resources('{"special": 1, "num_gpus": 2}') == {"special": 1.0, "GPU": 2.0}
    for bad in ("[1]", '{"special": -1}', '{"x": true}', "nope"):
        with pytest.raises(ConfigError):
            parse_resources(bad)
    spec = NodeSpec("127.0.0.1:6379", 2, "node-2", {"special": 1.0, "GPU": 1.0, "CPU": 3.0})
    params = spec.ray_params()
    assert params["node_ip_address"] == "127.0.0.1"
    assert params["num_cpus"] == 3 and params["num_gpus"] == 1
    assert params["resources"] == {"special": 1.0}
    assert params["node_name"] == "node-2" and params["gcs_address"] == "127.0.0.1:6379"
