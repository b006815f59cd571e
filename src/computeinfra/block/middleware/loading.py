"""User middleware: ``COMPUTEINFRA_MIDDLEWARE=package.module:Class[,…]`` adds instances of
these classes after the built-in middleware, as Dramatiq's middleware list does.

Each class is imported and instantiated with no arguments when the block starts; a name that
cannot be loaded is a ``ConfigError`` that says which and why, so a typo never starts a
cluster that silently lacks a policy.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from computeinfra.errors import ConfigError

from . import Middleware

__all__ = ["load_middleware"]


def _load_one(spec: str) -> Middleware:
    module_name, sep, class_name = spec.partition(":")
    if not sep or not module_name or not class_name:
        raise ConfigError(f"COMPUTEINFRA_MIDDLEWARE: {spec!r} is not package.module:Class")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"COMPUTEINFRA_MIDDLEWARE: cannot load {spec!r}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Middleware)):
        raise ConfigError(
            f"COMPUTEINFRA_MIDDLEWARE: {spec!r} is not a subclass of "
            "computeinfra.block.middleware.Middleware"
        )
    try:
        return cls()
    except Exception as exc:
        raise ConfigError(f"COMPUTEINFRA_MIDDLEWARE: {spec!r} failed to start: {exc!r}") from exc


def load_middleware(specs: Sequence[str]) -> list[Middleware]:
    """Instances of the classes ``specs`` name, in order."""
    return [_load_one(spec) for spec in specs]
