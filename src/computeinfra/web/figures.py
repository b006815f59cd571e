"""The analyzer's figures and the blocks' states, cached briefly so that many viewers and
scrapers cost one fetch per ``CACHE_SECONDS``. The fetch is given by whoever runs the app
(``computeinfra.runtime.web`` reads Ray): this package never imports the cluster."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from computeinfra.config import Settings
from computeinfra.errors import ClusterError

__all__ = ["ClusterFigures", "Figures"]

CACHE_SECONDS = 1.0
Figures = dict[str, Any]


def _no_cluster(_settings: Settings) -> Figures:
    raise ClusterError("this web app was started without a cluster to read figures from")


class ClusterFigures:
    """``get()`` returns ``{"analyzer", "blocks", "at"}`` or raises ``ClusterError``."""

    def __init__(
        self, settings: Settings, fetch: Callable[[Settings], Figures] = _no_cluster
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
