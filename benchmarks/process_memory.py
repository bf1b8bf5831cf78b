"""Memory of a process tree, read from /proc (Linux): what the benchmarks report."""

from __future__ import annotations

import threading
from pathlib import Path


def tree_memory_mb(pid: int) -> tuple[float, float]:
    """(PSS summed over a process and its descendants, largest single RSS), in MB.

    PSS splits shared pages (the PyTorch libraries every process maps) between the
    processes that share them, so the sum is the tree's real memory use. Descendants
    include the workers a fork server started for `pid`.
    """
    pss = rss = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            for line in Path(f"/proc/{current}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = max(rss, int(line.split()[1]))
            for task in Path(f"/proc/{current}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return pss / 1024, rss / 1024


class PeakMemory:
    """Sample `tree_memory_mb(pid)` every `interval_s` while in the `with` block;
    `pss_mb` and `rss_mb` hold the peaks."""

    def __init__(self, pid: int, interval_s: float = 0.2) -> None:
        self.pid, self.interval_s = pid, interval_s
        self.pss_mb = self.rss_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            pss, rss = tree_memory_mb(self.pid)
            self.pss_mb, self.rss_mb = max(self.pss_mb, pss), max(self.rss_mb, rss)
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
