"""Tasks: the registry, the per-job context, and the built-in tasks."""

from computeinfra.tasks.context import TaskContext
from computeinfra.tasks.registry import InputFile, Task, TaskRegistry, load_registry, task

__all__ = ["InputFile", "Task", "TaskContext", "TaskRegistry", "load_registry", "task"]
