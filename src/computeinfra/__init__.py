"""computeinfra: compute jobs over Kafka, run by a Ray actor cluster.

The public API is what ``__all__`` lists; everything else may change.
"""

from computeinfra.client.sdk import Client, JobHandle
from computeinfra.config import Settings
from computeinfra.errors import (
    BrokerError,
    Cancelled,
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
    "Cancelled",
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
