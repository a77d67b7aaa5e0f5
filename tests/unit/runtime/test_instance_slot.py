"""Each worker of a group on one host takes the lowest free slot of its transactional id; a
slot is freed when its holder goes, so a worker restarted in its place gets the same id."""

from __future__ import annotations

import uuid

from consumer.runtime import instance


def test_workers_beside_each_other_get_distinct_ids_and_a_replacement_gets_the_freed_one() -> None:
    base = f"group-{uuid.uuid4().hex}-host"
    first, second, third = instance.claim(base), instance.claim(base), instance.claim(base)
    ids = [s.transactional_id(base) for s in (first, second, third)]
    assert ids == [base, f"{base}-1", f"{base}-2"]
    assert second.holder is not None
    second.holder.close()  # the second worker dies
    replacement = instance.claim(base)
    assert replacement.transactional_id(base) == f"{base}-1"
    other_group = instance.claim(f"other-{uuid.uuid4().hex}-host")
    assert other_group.number == 0
    for slot in (first, third, replacement, other_group):
        assert slot.holder is not None
        slot.holder.close()
