"""A one-line progress display on stderr (only when stderr is a terminal, or when forced)."""

from __future__ import annotations

import sys
import time


class ProgressBar:
    def __init__(self, label: str, enabled: bool):
        self._label, self._enabled = label, enabled
        self._start = self._last = time.monotonic()
        self._shown = -1

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if not self._enabled or self._shown == done or (now - self._last < 0.5 and done < total):
            return
        self._last, self._shown = now, done
        rate = done / max(now - self._start, 1e-6) / 2**20
        pct = f" {100 * done / total:5.1f}%" if total else ""
        print(f"\r{self._label}: {done / 2**20:9.1f} / {total / 2**20:.1f} MiB{pct}  {rate:6.1f} MiB/s",
              end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._enabled:
            print(file=sys.stderr)
