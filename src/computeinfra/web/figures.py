"""The analyzer's figures and the blocks' states, fetched from Ray and cached briefly so
that many viewers and scrapers cost one Ray call per ``CACHE_SECONDS``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from computeinfra.config import Settings
from computeinfra.errors import ClusterError

__all__ = ["ClusterFigures", "Figures"]

CACHE_SECONDS = 1.0
RAY_TIMEOUT_SECONDS = 10.0
Figures = dict[str, Any]


def _from_ray(settings: Settings) -> Figures:
    # Imported here: the app serves everything else without Ray, and starts faster.
    from computeinfra.cluster.launcher import analyzer_snapshot, block_statuses

    try:
        snapshot = analyzer_snapshot(settings, RAY_TIMEOUT_SECONDS)
        blocks = block_statuses(settings)
    except ClusterError:
        raise
    except Exception as exc:  # Ray's own errors: the cluster is away or restarting
        raise ClusterError(f"cannot read the analyzer from Ray: {exc}") from exc
    return {"analyzer": snapshot, "blocks": blocks, "at": time.time()}


class ClusterFigures:
    """``get()`` returns ``{"analyzer", "blocks", "at"}`` or raises ``ClusterError``."""

    def __init__(
        self, settings: Settings, fetch: Callable[[Settings], Figures] = _from_ray
    ) -> None:
        self._settings = settings
        self._fetch = fetch
        self._lock = threading.Lock()
        self._cached: tuple[float, Figures] | None = None

    def get(self) -> Figures:
        with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < CACHE_SECONDS:
                return self._cached[1]
            figures = self._fetch(self._settings)
            self._cached = (time.monotonic(), figures)
            return figures
