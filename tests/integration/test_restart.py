"""Start-up on whatever the broker holds (issue #17): a data directory left behind by an
earlier run, on which the blocks once never became ready, starts, and every job on it gets
exactly one completion."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from computeinfra.block.membership import GroupMember
from computeinfra.cluster.launcher import RUN_ID, group_instance_id, member_id
from computeinfra.kafka.broker import BrokerConfig, LocalBroker
from computeinfra.protocol import PENDING_TOPIC
from computeinfra.testing.stack import dev_stack, free_port, settings_under
from tests.helpers import REPO, completions_for, read_topic, wait_for

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
    tmp_path: Path,
) -> None:
    """The root cause, without Ray: the group's stored state is the first half of a
    cooperative rebalance (block 0 kept 6..11 and gave up 0..5, block 1 got nothing). Blocks
    that take back those static seats get that half assignment and no rebalance, ever."""
    _unpack(tmp_path)
    broker = LocalBroker(
        BrokerConfig(data_dir=tmp_path / "kafka", port=free_port(), controller_port=free_port())
    )
    broker.start()
    members: list[GroupMember] = []
    try:
        settings = settings_under(
            {"COMPUTEINFRA_BOOTSTRAP": broker.config.bootstrap, "COMPUTEINFRA_HOST_ID": REPRO_HOST}
        )
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
        broker.stop()
