"""Finding and joining the Ray cluster, and the state file ``computeinfra up`` leaves behind."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import ray

from computeinfra.config import Settings, ray_keeps_loopback
from computeinfra.errors import ClusterError

__all__ = ["connect", "read_state", "remove_state", "write_state"]

STATE_FILE = "cluster.json"
LOOPBACK = "127.0.0.1"
# The Ray node `computeinfra up` starts; nodes that join are named by `up --join --node-name`.
HEAD_NODE_NAME = "head"


def _keep_loopback() -> None:
    """Stop Ray from swapping 127.0.0.1 for the host's outward address when joining.

    Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER once, when it is first imported; a program
    that imported Ray before computeinfra set it would otherwise reach the cluster through
    the host's public interface. Our rule is loopback unless the user says otherwise.
    """
    from ray._private import ray_constants

    if ray_keeps_loopback():
        ray_constants.ENABLE_RAY_CLUSTER = False


def write_state(settings: Settings, **state: Any) -> Path:
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    path = settings.run_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(path)
    return path


def read_state(settings: Settings) -> dict[str, Any] | None:
    path = settings.run_dir / STATE_FILE
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    pid = state.get("pid")
    if isinstance(pid, int) and not Path(f"/proc/{pid}").exists():
        return None  # left behind by a run that did not exit cleanly
    return state


def remove_state(settings: Settings) -> None:
    (settings.run_dir / STATE_FILE).unlink(missing_ok=True)


def connect(
    settings: Settings,
    *,
    start_local: bool = False,
    num_cpus: int | None = None,
    address: str | None = None,
) -> str:
    """Join the running cluster (``address``, ``RAY_ADDRESS``, else the one ``up`` recorded).

    With ``start_local`` and no cluster to join, start a single-node Ray on 127.0.0.1.
    Returns the cluster's GCS address.
    """
    if not ray.is_initialized():
        _keep_loopback()
        common: dict[str, Any] = {"namespace": settings.namespace, "logging_level": logging.WARNING}
        env_address = address or settings.ray_address
        # Which Ray node on this host a driver attaches to, and the address a head binds.
        common["_node_ip_address"] = settings.node_ip
        if env_address:
            _join(env_address, common)
        elif start_local:
            ray.init(
                _node_name=HEAD_NODE_NAME,
                num_cpus=num_cpus,
                include_dashboard=False,
                # How long a failed call to an actor waits for the cluster's word on why.
                # Every call to a worker that was just killed waits this out before the
                # supervisor hears of it: SIGKILL to the job sent again took 1.6 s with Ray's
                # 1,000 ms and 0.55 s with 100 ms (bench/recovery.py). Joining nodes inherit it.
                _system_config={
                    "timeout_ms_task_wait_for_death_info": settings.ray_death_info_wait_ms
                },
                **common,
            )
        else:
            recorded = (read_state(settings) or {}).get("ray_address")
            if not recorded:
                raise ClusterError(
                    "no running cluster found: start one with `make run` or `computeinfra up`, "
                    "or set RAY_ADDRESS to join an existing Ray cluster"
                )
            _join(recorded, common)
    gcs: str = ray.get_runtime_context().gcs_address
    return gcs


def _join(address: str, common: dict[str, Any]) -> None:
    try:
        ray.init(address=address, log_to_driver=False, **common)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"cannot join the Ray cluster at {address}: {exc}") from exc
