"""One exception root: every exception class the package defines derives from ConsumerError,
so `except ConsumerError` catches each failure it raises on purpose and no library's or bug's."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import consumer
from consumer.errors import ConsumerError


def _exception_classes() -> list[type[BaseException]]:
    found = []
    for info in pkgutil.walk_packages(consumer.__path__, "consumer."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        found += [
            cls
            for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, BaseException) and cls.__module__ == info.name and cls is not ConsumerError
        ]
    return found


def test_every_exception_the_package_defines_derives_from_the_root() -> None:
    classes = _exception_classes()
    assert len(classes) >= 20, [c.__name__ for c in classes]  # the walk sees the package's exceptions
    strays = [f"{c.__module__}.{c.__qualname__}" for c in classes if not issubclass(c, ConsumerError)]
    assert not strays, f"exceptions outside ConsumerError: {strays}"
