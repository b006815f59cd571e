"""Start-up on whatever the broker holds (issue #17): a data directory left behind by an
earlier run, on which the blocks once never became ready, starts, and every job on it gets
exactly one completion."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import KafkaException

from computeinfra.block.membership import GroupMember
from computeinfra.block.supervisor import Supervisor
from computeinfra.cluster.keeper import BlockKeeper
from computeinfra.cluster.launcher import RUN_ID, group_instance_id, member_id
from computeinfra.config import Settings
from computeinfra.kafka.broker import BrokerConfig, LocalBroker
from computeinfra.kafka.doctor import Doctor
from computeinfra.protocol import PENDING_TOPIC
from computeinfra.tasks.registry import load_registry
from computeinfra.testing.stack import dev_stack, free_port, settings_under
from tests.helpers import REPO, completions_for, read_topic, wait_for
from tests.integration.test_supervisor_rejoin import InProcessWorker

# As CI lays it out: shared/ beside the clone.
REPRO = REPO.parent / "shared" / "repro" / "stuck-kafka-data.tar.gz"
# The repro's blocks were named after a host called "vm": the same ids make this run meet
# the group state they left (static members in the middle of a cooperative rebalance).
REPRO_HOST = "vm"
READY_SECONDS = 60.0
ANSWERED_SECONDS = 180.0
# The previous run's seats expire after the session timeout (10 s), then the group settles.
GROUP_SECONDS = 60.0


def _unpack(root: Path) -> None:
    with tarfile.open(REPRO) as archive:
        archive.extractall(root, filter="data")


@pytest.fixture
def repro_broker(tmp_path: Path) -> Iterator[Settings]:
    """The shared directory's broker alone (no blocks), and settings that reach it with the
    repro's host name (so block ids are the ones its group remembers)."""
    _unpack(tmp_path)
    broker = LocalBroker(
        BrokerConfig(data_dir=tmp_path / "kafka", port=free_port(), controller_port=free_port())
    )
    broker.start()
    try:
        yield settings_under(
            {
                "COMPUTEINFRA_BOOTSTRAP": broker.config.bootstrap,
                "COMPUTEINFRA_HOST_ID": REPRO_HOST,
                "COMPUTEINFRA_RESULTS_ROOT": str(tmp_path / "results"),
            }
        )
    finally:
        broker.stop()


@pytest.mark.skipif(not REPRO.is_file(), reason=f"no reproduction at {REPRO}")
def test_the_shared_stuck_data_directory_starts_and_answers_every_job(tmp_path: Path) -> None:
    _unpack(tmp_path)
    env = {"COMPUTEINFRA_HOST_ID": REPRO_HOST}
    with dev_stack(tmp_path, 2, env, ready_timeout=READY_SECONDS) as stack:
        bootstrap = stack.settings.bootstrap_servers
        keys = {
            key.decode() for key, _value, _headers in read_topic(bootstrap, PENDING_TOPIC) if key
        }
        assert len(keys) > 100  # the run's history is there

        def all_answered() -> dict[str, list[object]] | None:
            found = completions_for(bootstrap, keys)
            return found if all(found.values()) else None

        found = wait_for(all_answered, ANSWERED_SECONDS, "every pending job to be answered")
        doubled = {key: len(c) for key, c in found.items() if len(c) != 1}
        assert doubled == {}


@pytest.mark.skipif(not REPRO.is_file(), reason=f"no reproduction at {REPRO}")
def test_a_new_run_of_blocks_gets_every_partition_of_the_group_left_mid_rebalance(
    repro_broker: Settings,
) -> None:
    """The root cause, without Ray: the group's stored state is the first half of a
    cooperative rebalance (block 0 kept 6..11 and gave up 0..5, block 1 got nothing). Blocks
    that take back those static seats get that half assignment and no rebalance, ever."""
    settings = repro_broker
    members: list[GroupMember] = []
    try:
        seats = [group_instance_id(member_id(settings, block), RUN_ID) for block in range(2)]
        members = [GroupMember(settings, seat, [PENDING_TOPIC]) for seat in seats]

        def every_partition_owned() -> set[int] | None:
            for member in members:
                member.records(100, 0.1)  # serves the group protocol; nothing is committed
            owned = {p for m in members for topic, p in m.assigned if topic == PENDING_TOPIC}
            return owned if len(owned) == settings.partitions else None

        wait_for(every_partition_owned, GROUP_SECONDS, "the blocks to own every partition")
    finally:
        for member in members:
            member.close()


@pytest.mark.skipif(not REPRO.is_file(), reason=f"no reproduction at {REPRO}")
def test_blocks_back_in_a_half_rebalanced_seat_are_found_and_rejoin_with_new_seats(
    repro_broker: Settings,
) -> None:
    """What a supervisor restarted by Ray meets when it died between the two rounds of a
    cooperative rebalance: its seat comes back with the stored half assignment. Here the
    repro's own seats are taken back on purpose. ``doctor`` names the partitions no one
    reads, and the keeper's remedy (every block rejoins with a new seat) ends it."""
    # No task modules: the session's stack may have set COMPUTEINFRA_TASKS in this
    # process's environment, for modules importable only in its own children.
    settings = replace(repro_broker, task_modules=())
    supervisors: list[Supervisor] = []
    try:
        for block in range(2):
            seat = member_id(settings, block)  # the seat the repro's run left in the group
            supervisors.append(
                Supervisor(
                    settings,
                    block,
                    [InProcessWorker(settings)],
                    member_id=seat,
                    group_instance_id=seat,
                    registry=load_registry(()),
                )
            )
            supervisors[-1].start()
        doctor = Doctor(settings)

        def unread() -> list[tuple[str, int]] | None:
            try:
                return doctor.unowned()
            except KafkaException:  # the broker is still loading the group (NOT_COORDINATOR)
                return None

        stuck = wait_for(unread, GROUP_SECONDS, "the group to leave partitions unread")
        finding = next(f for f in doctor.examine().findings if f.area == "group")
        assert finding.code == "unowned-partitions", finding

        def reseat_one() -> None:  # as ``Cluster.reseat``: the block with fewest partitions
            min(supervisors, key=lambda s: len(s.status()["partitions"])).reseat()

        keeper = BlockKeeper(lambda: [], lambda i: None, grace=0.0,
                             unowned=doctor.unowned, reseat=reseat_one)  # fmt: skip
        assert not keeper.check_group()  # the first look only starts counting
        assert keeper.check_group()

        def every_partition_read() -> bool:
            owned = {p for s in supervisors for p in s.status()["partitions"]}
            return len(owned) == settings.partitions and unread() == []

        wait_for(every_partition_read, GROUP_SECONDS, f"{stuck} to be read again")
        seats = sorted(s.status()["group_instance_id"] for s in supervisors)
        assert [seat.endswith(".1") for seat in seats] == [False, True], seats
    finally:
        for supervisor in supervisors:
            supervisor.stop(0)
