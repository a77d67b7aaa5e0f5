"""Which worker of its group this process is on its host: the slot in its default transactional id.

Exactly-once needs a transactional id no other live producer uses: a second producer with the
same id fences the first, which exits. `<group>-<host>` alone gave two workers on one host
(two systemd units, two terminals, containers on the host network) the same id, and each
fenced the other in turn. So each takes the lowest free slot on its host: the first keeps
`<group>-<host>`, the next gets `<group>-<host>-1`, and so on. A slot is held by a socket bound
in Linux's abstract namespace, which belongs to the network namespace (a host, or a pod) and
is released by the kernel when the process dies, however it dies: a worker restarted in its
place takes the same slot, so its id, and fences its own zombie.
"""

from __future__ import annotations

import errno
import hashlib
import socket
from dataclasses import dataclass
from typing import Final

from consumer.errors import ConsumerError

MAX_SLOTS: Final = 1024


class NoFreeSlot(ConsumerError, RuntimeError):
    """Every slot of the group is held on this host."""


@dataclass(frozen=True)
class Slot:
    number: int
    holder: socket.socket | None  # kept open while the process runs: closing it frees the slot

    def transactional_id(self, base: str) -> str:
        return base if self.number == 0 else f"{base}-{self.number}"


def claim(base_id: str) -> Slot:
    """The lowest slot free on this host for transactional ids starting with `base_id`."""
    key = hashlib.sha256(base_id.encode()).hexdigest()[:32]
    for number in range(MAX_SLOTS):
        holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            holder.bind(f"\0activity-consumer/{key}/{number}")
        except OSError as exc:
            holder.close()
            if exc.errno == errno.EADDRINUSE:
                continue
            return Slot(0, None)  # no abstract namespace (not Linux): the plain default, as before
        return Slot(number, holder)
    raise NoFreeSlot(f"{MAX_SLOTS} workers of this group already run on this host")
