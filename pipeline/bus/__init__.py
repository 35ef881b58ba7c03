"""The Bus interface and its implementations, chosen by URL scheme.

- base: the `Bus` and `Consumer` protocols and the at-least-once contract.
- memory: `MemoryBus`, in-process (`memory://`), the embedded default.
- topics: the topic names every stage agrees on.
"""

from __future__ import annotations

import importlib
from typing import cast

from pipeline.bus.base import Bus, Consumer, Message
from pipeline.errors import BusError

__all__ = ["Bus", "Consumer", "Message", "open_bus"]

BUSES: dict[str, str] = {
    "memory": "pipeline.bus.memory:MemoryBus",
}


def open_bus(url: str) -> Bus:
    """A bus for `url` (`memory://`); unknown schemes raise `BusError` naming the known ones."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    target = BUSES.get(scheme)
    if target is None:
        raise BusError(f"unknown bus URL {url!r}; known schemes: {', '.join(sorted(BUSES))}")
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cast(Bus, cls())
