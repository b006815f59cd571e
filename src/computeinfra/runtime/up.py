"""``computeinfra up``: the broker (unless an external one is named), topics, blocks, analyzer.

Runs in the foreground until SIGINT or SIGTERM, then stops everything it started in order:
supervisors finish their job and leave the group, Ray shuts down, the broker stops last.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from types import FrameType
from typing import Any

import ray

from computeinfra.block.middleware.loading import load_middleware
from computeinfra.cluster.connect import remove_state, write_state
from computeinfra.cluster.keeper import BlockKeeper
from computeinfra.cluster.launcher import Cluster
from computeinfra.config import Settings, mark_run
from computeinfra.errors import ClusterError
from computeinfra.kafka.admin import check_reachable, ensure_topics
from computeinfra.kafka.doctor import Doctor
from computeinfra.kafka.local import LocalKafka, local_broker
from computeinfra.runtime.reap import reap
from computeinfra.runtime.web import start_web, stop_web

__all__ = ["serve", "wait_for_signal"]

_log = logging.getLogger("computeinfra.up")


def _start_broker(
    settings: Settings, say: Callable[[str], None]
) -> tuple[LocalKafka | None, Settings]:
    """Start the local broker if it is ours to run; return it when we started it, and the
    settings naming every local node, so blocks and clients reach the cluster through any."""
    if not settings.uses_local_broker:
        say(f"using Kafka at {settings.bootstrap_servers}")
        return None, settings
    broker = local_broker(settings)
    local = replace(settings, bootstrap=broker.config.bootstrap)
    if broker.status().running:
        say(f"using the local broker already running at {broker.config.bootstrap}")
        return None, local
    say(f"starting Kafka at {broker.config.bootstrap} (data in {broker.config.data_dir})")
    broker.start()
    return broker, local


def wait_for_signal(say: Callable[[str], None]) -> threading.Event:
    """Block until SIGINT or SIGTERM. Returns the event a second Ctrl-C sets from then on
    (``stop_on_second_signal``): it is in place before this returns, so a Ctrl-C while
    what ran beside the wait stops (a keeper's check can take seconds) is never a
    ``KeyboardInterrupt`` in the middle of the teardown."""
    stop = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        now = stop_on_second_signal(say)  # SIGINT's handler, replaced in one step
        signal.signal(signal.SIGTERM, previous)
    return now


def stop_on_second_signal(say: Callable[[str], None]) -> threading.Event:
    """An event a second Ctrl-C sets: the drain ends at once (what was running is read
    again by the next owner of its partition). Ctrl-C after that is ignored, so the
    teardown itself is not cut short."""
    now = threading.Event()

    def stop_now(_signum: int, _frame: FrameType | None) -> None:
        if not now.is_set():
            say("stopping now: jobs still running are read again by the next owner")
        now.set()

    signal.signal(signal.SIGINT, stop_now)
    return now


@contextmanager
def _interrupt_after(say: Callable[[str], None]) -> Iterator[None]:
    """A Ctrl-C during the block is taken when it ends. ``ray.init`` interrupted half-way
    leaves its driver half-connected: the process then crashed (SIGSEGV) or hung at exit
    (``test_ctrl_c``, in CI) instead of stopping what it had started. A second Ctrl-C
    stops at once all the same (joining a cluster that does not answer waits 60 s)."""
    pressed = threading.Event()

    def press(_signum: int, _frame: FrameType | None) -> None:
        if pressed.is_set():
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        pressed.set()
        say("stopping once Ray has started (Ctrl-C again to stop at once)…")

    previous = signal.signal(signal.SIGINT, press)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed.is_set():
        raise KeyboardInterrupt


def serve(
    settings: Settings,
    blocks: int,
    say: Callable[[str], None],
    on_ready: Callable[[Cluster], Any] | None = None,
    web_port: int = 0,
) -> None:
    """Run until a signal; with ``web_port``, the web app runs as a child process too."""
    load_middleware(settings.middleware)  # a typo is one clear error now, not dead blocks
    run_id = uuid.uuid4().hex
    mark_run(run_id)  # before anything is started: all of it carries the mark
    broker, settings = _start_broker(settings, say)
    cluster: Cluster | None = None
    web: subprocess.Popen[bytes] | None = None
    now: threading.Event | None = None
    try:
        _prepare_topics(settings, say)
        say(f"starting Ray and {blocks} working block(s)…")
        cluster = Cluster(settings, blocks)
        with _interrupt_after(say):
            cluster.launch()
        _wait_ready(settings, cluster, say)
        if web_port:
            web = start_web(web_port, say, {"COMPUTEINFRA_BOOTSTRAP": settings.bootstrap_servers})
        if on_ready is not None:
            on_ready(cluster)
        now = _keep_until_signal(settings, cluster, say)
        say("stopping…")
    finally:
        stop_web(web)
        _shutdown(settings, cluster, broker, say, now or stop_on_second_signal(say))
        left = reap(run_id)
        if left:
            _log.info("ended %d process(es) the run left behind", left)


def _prepare_topics(settings: Settings, say: Callable[[str], None]) -> None:
    check_reachable(settings.bootstrap_servers)
    created = ensure_topics(settings)
    if created:
        say(f"created topics: {', '.join(created)}")


def _keep_until_signal(
    settings: Settings, cluster: Cluster, say: Callable[[str], None]
) -> threading.Event:
    """Keep every block running (one that dies is started again) until a signal comes;
    the event a second signal sets (``wait_for_signal``)."""
    group = Doctor(settings)
    keeper = BlockKeeper(
        cluster.status, cluster.restart_block, unowned=group.unowned, reseat=cluster.reseat
    )
    keeper.start()
    try:
        return wait_for_signal(say)
    finally:
        keeper.stop()


def _wait_ready(settings: Settings, cluster: Cluster, say: Callable[[str], None]) -> None:
    """Wait for the blocks, but never give up on the stack because one is not ready: it
    comes up with the blocks that are, and the others keep starting where `computeinfra
    blocks` shows them. The state file is there from the start, so that `blocks` answers
    while they start, and says ``ready`` once they did (or the wait ended)."""
    state = {
        "ray_address": cluster.address,
        "pid": os.getpid(),
        "bootstrap": settings.bootstrap_servers,
        "blocks": cluster.blocks,
    }
    write_state(settings, **state, ready=False)
    try:
        cluster.wait_ready()
    except ClusterError as exc:
        say(
            f"[yellow]{exc}[/]; running with the blocks that are ready. "
            "`computeinfra blocks` shows the others and why; they keep starting."
        )
    write_state(settings, **state, ready=True)


def _shutdown(
    settings: Settings,
    cluster: Cluster | None,
    broker: LocalKafka | None,
    say: Callable[[str], None],
    now: threading.Event,
) -> None:
    remove_state(settings)
    try:
        if cluster is not None:
            say("draining: running jobs end and commit (Ctrl-C again to stop now)…")
            cluster.stop(now=now)
    except Exception as exc:
        _log.warning("stopping the blocks: %s", exc)
    if ray.is_initialized():
        ray.shutdown()
    if broker is not None:
        say("stopping Kafka…")
        broker.stop()
    say("stopped.")
