"""User middleware: ``COMPUTEINFRA_MIDDLEWARE=package.module:Class[,…]`` adds instances of
these classes after the built-in middleware, as Dramatiq's middleware list does.

Each class is imported and instantiated with no arguments when the block starts; a name that
cannot be loaded, or a class defining a hook that no longer exists, is a ``ConfigError``
that says which and why, so a typo or an upgrade never starts a cluster that silently lacks
a policy.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from computeinfra.errors import ConfigError

from . import Middleware

__all__ = ["REMOVED_HOOKS", "load_middleware"]

# Hooks a middleware may still define from an older release, and what replaced them.
REMOVED_HOOKS = {
    "before_commit": "commit_records(in_hand), whose records go in the transaction",
}


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
    for hook, instead in REMOVED_HOOKS.items():
        if hasattr(cls, hook):  # never called any more: the policy would silently be gone
            raise ConfigError(
                f"COMPUTEINFRA_MIDDLEWARE: {spec!r} defines {hook}, a hook that no longer "
                f"exists; use {instead}"
            )
    try:
        return cls()
    except Exception as exc:
        raise ConfigError(f"COMPUTEINFRA_MIDDLEWARE: {spec!r} failed to start: {exc!r}") from exc


def load_middleware(specs: Sequence[str]) -> list[Middleware]:
    """Instances of the classes ``specs`` name, in order."""
    return [_load_one(spec) for spec in specs]
