"""The deliveries already acknowledged, remembered for a bounded window (least recently seen
first out), so that a re-sent delivery is answered 2xx without being produced again."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class AcknowledgedWindow:
    def __init__(self, size: int) -> None:
        self.size = size
        self._seen: OrderedDict[Hashable, None] = OrderedDict()

    def __contains__(self, key: Hashable) -> bool:
        if key not in self._seen:
            return False
        self._seen.move_to_end(key)
        return True

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, key: Hashable) -> None:
        if self.size <= 0:
            return
        self._seen[key] = None
        self._seen.move_to_end(key)
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)
