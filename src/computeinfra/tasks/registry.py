"""The task registry: a task is a name, a payload model, and a function.

Tasks come from the built-ins, from modules named in ``COMPUTEINFRA_TASKS``, and from the
``computeinfra.tasks`` entry-point group. A module contributes every ``Task`` object it
defines at top level (what the ``@task`` decorator returns).
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ValidationError

from computeinfra.errors import RequestError, TaskError
from computeinfra.protocol import (
    MAX_ATTEMPTS_CAP,
    MAX_TIME_LIMIT_SECONDS,
    describe_validation_error,
)
from computeinfra.tasks.context import InputRoots, TaskContext, check_input_file

__all__ = ["ENTRY_POINT_GROUP", "InputFile", "Task", "TaskRegistry", "load_registry", "task"]

ENTRY_POINT_GROUP = "computeinfra.tasks"
BUILTIN_MODULES = (
    "computeinfra.tasks.image_compression",
    "computeinfra.tasks.sleep",
    "computeinfra.tasks.word_count",
)

# A payload field holding a path to an input file. The supervisor confines and checks it.
InputFile = Annotated[str, AfterValidator(check_input_file)]

P = TypeVar("P", bound=BaseModel)
TaskFunction = Callable[[P, TaskContext], Any]


DEFAULT_TIME_LIMIT_SECONDS = 600.0


@dataclass(frozen=True)
class Task(Generic[P]):
    """A registered task. Calling it runs the function directly, which is handy in tests.

    ``time_limit`` bounds one attempt (``None``: no limit); a request may ask for any limit
    up to ``max_time_limit`` (by default ``time_limit`` itself); ``max_attempts`` overrides
    the cluster default (a request may change it up to ``MAX_ATTEMPTS_CAP``); exceptions of
    the ``retry_on`` types, like ``computeinfra.Retry``, make the attempt worth repeating.
    ``resources`` (``num_cpus``, ``num_gpus``, ``memory`` in bytes, or a custom name given to
    a node with ``up --join … --resources``) limits its jobs to blocks on nodes that have
    them (``cluster/middleware/placement.py``).
    """

    name: str
    payload_model: type[P]
    fn: TaskFunction[P]
    description: str = ""
    time_limit: float | None = DEFAULT_TIME_LIMIT_SECONDS
    max_attempts: int | None = None
    max_time_limit: float | None = None
    retry_on: tuple[type[BaseException], ...] = ()
    # Pairs, not a dict, so the task stays hashable; ``needs`` is the mapping.
    resources: tuple[tuple[str, float], ...] = ()

    @property
    def needs(self) -> dict[str, float]:
        return dict(self.resources)

    def __post_init__(self) -> None:
        for name, amount in self.resources:
            if not name or not isinstance(amount, int | float) or not amount > 0:
                raise TaskError(
                    f"task {self.name!r}: resource {name!r} needs a positive amount, not {amount!r}"
                )
        for name, limit in (
            ("time_limit", self.time_limit),
            ("max_time_limit", self.max_time_limit),
        ):
            if limit is not None and not 0 < limit <= MAX_TIME_LIMIT_SECONDS:
                raise TaskError(
                    f"task {self.name!r}: {name} must be in (0, {MAX_TIME_LIMIT_SECONDS:.0f}] "
                    "seconds, or None for no limit"
                )
        if self.max_time_limit is not None and (
            self.time_limit is None or self.max_time_limit < self.time_limit
        ):
            raise TaskError(f"task {self.name!r}: max_time_limit is below time_limit")
        if self.max_attempts is not None and not 1 <= self.max_attempts <= MAX_ATTEMPTS_CAP:
            raise TaskError(f"task {self.name!r}: max_attempts must be 1..{MAX_ATTEMPTS_CAP}")

    @property
    def longest_time_limit(self) -> float | None:
        """The longest limit a request may ask for (None: any, or none at all)."""
        return self.max_time_limit if self.max_time_limit is not None else self.time_limit

    def validate(self, payload: dict[str, Any], roots: InputRoots | None = None) -> P:
        try:
            return self.payload_model.model_validate(payload, context=roots)
        except ValidationError as exc:
            message, field = describe_validation_error(exc, prefix="payload")
            raise RequestError(message, field=field) from None

    def __call__(self, payload: P, ctx: TaskContext) -> Any:
        return self.fn(payload, ctx)

    def schema(self) -> dict[str, Any]:
        return self.payload_model.model_json_schema()


def task(
    name: str,
    *,
    payload: type[P],
    description: str | None = None,
    time_limit: float | None = DEFAULT_TIME_LIMIT_SECONDS,
    max_time_limit: float | None = None,
    max_attempts: int | None = None,
    retry_on: tuple[type[BaseException], ...] = (),
    resources: Mapping[str, float] | None = None,
) -> Callable[[TaskFunction[P]], Task[P]]:
    """Declare a task: ``@task("resize", payload=ResizePayload)`` over ``def f(payload, ctx)``.

    ``resources={"num_gpus": 1}`` runs it only where a node has a GPU."""

    def wrap(fn: TaskFunction[P]) -> Task[P]:
        doc = description if description is not None else (fn.__doc__ or "").strip()
        return Task(
            name=name,
            payload_model=payload,
            fn=fn,
            description=doc.split("\n")[0],
            time_limit=time_limit,
            max_time_limit=max_time_limit,
            max_attempts=max_attempts,
            retry_on=retry_on,
            resources=tuple(sorted((resources or {}).items())),
        )

    return wrap


class TaskRegistry:
    """Name to task. Unknown names raise ``RequestError`` listing what is available."""

    def __init__(self, tasks: Iterable[Task[Any]] = ()) -> None:
        self._tasks: dict[str, Task[Any]] = {}
        for item in tasks:
            self.add(item)

    def add(self, item: Task[Any]) -> None:
        existing = self._tasks.get(item.name)
        if existing is not None and existing.fn is not item.fn:
            raise TaskError(f"two different tasks are registered as {item.name!r}")
        self._tasks[item.name] = item

    def get(self, name: str) -> Task[Any]:
        try:
            return self._tasks[name]
        except KeyError:
            known = ", ".join(sorted(self._tasks)) or "none"
            raise RequestError(
                f"unknown task {name!r}; known tasks: {known}", field="task"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    def __iter__(self) -> Iterator[Task[Any]]:
        return iter(sorted(self._tasks.values(), key=lambda t: t.name))

    def __len__(self) -> int:
        return len(self._tasks)


def _tasks_in(module: ModuleType) -> list[Task[Any]]:
    return [value for value in vars(module).values() if isinstance(value, Task)]


def _import(module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure is a configuration problem for the user
        raise TaskError(
            f"cannot import task module {module_name!r}: {type(exc).__name__}: {exc}. "
            "Check COMPUTEINFRA_TASKS and that the module is on PYTHONPATH."
        ) from exc


def _entry_point_tasks() -> Iterator[Task[Any]]:
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        loaded = entry.load()
        if isinstance(loaded, Task):
            yield loaded
        elif isinstance(loaded, ModuleType):
            yield from _tasks_in(loaded)
        else:
            raise TaskError(f"entry point {entry.name!r} is neither a Task nor a module of tasks")


def load_registry(task_modules: Iterable[str] = ()) -> TaskRegistry:
    registry = TaskRegistry()
    for module_name in (*BUILTIN_MODULES, *task_modules):
        for item in _tasks_in(_import(module_name)):
            registry.add(item)
    for item in _entry_point_tasks():
        registry.add(item)
    return registry
