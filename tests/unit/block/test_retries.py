"""Retries wait out their delay without holding the others back."""

from __future__ import annotations

from typing import cast

from computeinfra.block.retries import Retries
from computeinfra.block.slots import Slot


class _Slot:
    def __init__(self, name: str) -> None:
        self.name, self.released = name, False


def test_slots_come_due_in_delay_order_and_released_ones_are_dropped() -> None:
    retries = Retries()
    late, soon, gone = _Slot("late"), _Slot("soon"), _Slot("gone")
    retries.add(cast(Slot, late), 3600.0)
    retries.add(cast(Slot, soon), 0.0)
    retries.add(cast(Slot, gone), 0.0)
    gone.released = True
    assert [cast(_Slot, s).name for s in retries.due()] == ["soon"]
    wait = retries.wait()
    assert wait is not None and 3500 < wait <= 3600
    assert len(retries) == 1 and retries.clear() == [late] and retries.wait() is None
