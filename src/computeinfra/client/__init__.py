"""Client application side: the SDK and completion lookups."""

from computeinfra.client.sdk import Client, JobHandle, new_key

__all__ = ["Client", "JobHandle", "new_key"]
