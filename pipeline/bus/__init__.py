"""The Bus interface and its implementations, chosen by URL scheme.

- base: the `Bus` and `Consumer` protocols and the at-least-once contract.
- memory: `MemoryBus`, in-process (`memory://`), the embedded default.
- kafka: `KafkaBus` on a Kafka cluster (`kafka://host:port?...`), the scale-out back end.
- topics: the topic names every stage agrees on.

`BUSES` maps each scheme to a lazy `"module:Class"` string, so kafka-python is imported only when
a `kafka://` URL asks for it. A class that has `from_url(url)` reads the rest of the URL itself.
"""

from __future__ import annotations

import importlib
from typing import cast

from pipeline.bus.base import Bus, Consumer, Message
from pipeline.errors import BusError

__all__ = ["BUSES", "Bus", "Consumer", "Message", "open_bus"]

BUSES: dict[str, str] = {
    "memory": "pipeline.bus.memory:MemoryBus",
    "kafka": "pipeline.bus.kafka:KafkaBus",
}


def open_bus(url: str) -> Bus:
    """A bus for `url`; unknown schemes, or a back end whose client is not installed, raise `BusError`."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    target = BUSES.get(scheme)
    if target is None:
        known = ", ".join(f"{name}://" for name in sorted(BUSES))
        raise BusError(f"unknown bus URL scheme {scheme + '://' if scheme else url!r}; known schemes: {known}")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise BusError(f"{scheme}:// needs the {e.name!r} package: pip install 'govsoc[scale]'") from e
    cls = getattr(module, class_name)
    from_url = getattr(cls, "from_url", None)
    # MemoryBus takes no settings from its URL yet, so it is built without one.
    return cast(Bus, from_url(url) if from_url is not None else cls())
