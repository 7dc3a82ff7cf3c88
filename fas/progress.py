"""Progress of long loops: a tqdm bar in a terminal, plain timestamped lines otherwise (``ray job logs``, CI),
so that a log shows how far a job got without a screen of bar redraws."""

from __future__ import annotations

import sys
import time


def interactive() -> bool:
    return sys.stderr.isatty()


class Progress:
    """``update(n)`` as items finish; a bar on a TTY, else a line at most every ``every_s`` seconds and at the end."""

    def __init__(self, what: str, total: int, unit: str = "frames", every_s: float = 30.0):
        self.what, self.total, self.unit, self.every_s = what, total, unit, every_s
        self.done, self.start, self.last = 0, time.perf_counter(), 0.0
        self.bar = None
        if interactive():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=what, unit=unit[:-1] if unit.endswith("s") else unit)

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.perf_counter()
        if now - self.last >= self.every_s or self.done >= self.total:
            self.last = now
            print(self.line(now - self.start), flush=True)

    def line(self, elapsed: float) -> str:
        rate = self.done / elapsed if elapsed > 0 else 0.0
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        return f"[{self.what}] {self.done}/{self.total} {self.unit}{share}, {rate:.1f} {self.unit}/s, {elapsed:.0f} s"

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
