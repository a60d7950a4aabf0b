"""A queue served round-robin by client, so one client's burst cannot starve another."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar


class HasClient(Protocol):
    @property
    def client(self) -> int: ...


T = TypeVar("T", bound=HasClient)


class FairQueue(Generic[T]):
    """Items in order per client; ``pop`` takes one from each client in turn."""

    def __init__(self) -> None:
        self._clients: dict[int, deque[T]] = {}
        self._turn: deque[int] = deque()  # clients still to serve in this round

    def push(self, item: T, front: bool = False) -> None:
        """Queue ``item``; ``front``: it comes next (one taken out and put back)."""
        queue = self._clients.setdefault(item.client, deque())
        if front:
            queue.appendleft(item)
            self._turn.appendleft(item.client)
        else:
            queue.append(item)

    def pop(self) -> T | None:
        for _ in range(2):  # this round, then a new one over every waiting client
            while self._turn:
                queue = self._clients.get(self._turn.popleft())
                if queue:
                    item = queue.popleft()
                    if not queue:
                        del self._clients[item.client]
                    return item
            self._turn = deque(self._clients)
        return None

    def remove(self, item: T) -> bool:
        queue = self._clients.get(item.client)
        if not queue or item not in queue:
            return False
        queue.remove(item)
        if not queue:
            del self._clients[item.client]
        return True

    def clear(self) -> list[T]:
        """Empty the queue; what it held, in no particular order."""
        items = list(self)
        self._clients.clear()
        self._turn.clear()
        return items

    def __len__(self) -> int:
        return sum(len(q) for q in self._clients.values())

    def __iter__(self) -> Iterator[T]:
        for queue in list(self._clients.values()):
            yield from list(queue)
