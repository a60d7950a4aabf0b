"""Stop strings over a token stream: never emit text that might turn into a stop string."""

from __future__ import annotations


class StopScanner:
    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        self.pending = ""  # held back: could be the start of a stop string
        self.hit = False

    def feed(self, piece: str) -> tuple[str, bool]:
        """Add generated text; return (text safe to emit now, whether a stop string hit)."""
        buf = self.pending + piece
        for stop in self.stops:
            at = buf.find(stop)
            if at >= 0:
                self.hit = True
                self.pending = ""
                return buf[:at], True
        keep = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(buf)), 0, -1):
                if buf.endswith(stop[:n]):
                    keep = max(keep, n)
                    break
        release = buf[: len(buf) - keep]
        self.pending = buf[len(buf) - keep :]
        return release, False

    def flush(self) -> str:
        """Generation ended without a stop string: release what was held back."""
        rest, self.pending = self.pending, ""
        return rest
