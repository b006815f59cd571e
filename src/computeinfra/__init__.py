"""computeinfra: compute jobs over Kafka, run by a Ray actor cluster.

The public API is what ``__all__`` lists; everything else may change.
"""

import os

# Ray must be told before it is imported: bind to and advertise loopback only (a single-host
# cluster), send no usage statistics, and require the token in ~/.ray/auth_token from every
# process that connects (set explicitly so the CLI, which joins, agrees with `up`, which
# starts). Each can be overridden from the environment.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "token")

from computeinfra.client.sdk import Client, JobHandle
from computeinfra.config import Settings
from computeinfra.errors import (
    BrokerError,
    ClusterError,
    ComputeInfraError,
    ConfigError,
    JobError,
    JobTimeout,
    KafkaError,
    PathError,
    RequestError,
    Retry,
    TaskError,
)
from computeinfra.protocol import Completion, ErrorInfo, JobRequest, Output, Status
from computeinfra.tasks import InputFile, Task, TaskContext, task

__all__ = [
    "BrokerError",
    "Client",
    "ClusterError",
    "Completion",
    "ComputeInfraError",
    "ConfigError",
    "ErrorInfo",
    "InputFile",
    "JobError",
    "JobHandle",
    "JobRequest",
    "JobTimeout",
    "KafkaError",
    "Output",
    "PathError",
    "RequestError",
    "Retry",
    "Settings",
    "Status",
    "Task",
    "TaskContext",
    "TaskError",
    "__version__",
    "task",
]

__version__ = "0.1.0"
