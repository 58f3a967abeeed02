"""What a workload costs besides time: peak RSS of this process and of its
children (lsm's compactors), their CPU seconds, and bytes written, from
psutil and /proc/<pid>/io (Linux; None where /proc does not say).

Knows processes only; no engines, no databases.
"""
import os
import resource
import threading

MB = 1048576.0


class Sampler(threading.Thread):
    """Watches this process and its child processes (lsm's compactors) while
    a workload runs: peak RSS of each, sampled every 50 ms, and I/O
    counters from /proc/<pid>/io.

    Bytes written by the run are counted from the kernel's per-process I/O
    accounting, which has one trap: when a child exits and is reaped (as a
    compactor is when lsm closes), the kernel adds every counter of its whole
    life to the parent's. Adding the parent's delta to the children's deltas
    would count each compactor twice. So the total is (this process's delta,
    reaped children included) + (the delta of each child still alive at the
    end) - (what each reaped child had already done when first seen: 0 for a
    child started during the run). That is exact whatever the sampling
    interval, and whether or not a compactor was replaced mid-run."""

    def __init__(self, interval=0.05):
        super().__init__(daemon=True, name="bench-rss-sampler")
        import psutil
        self.psutil = psutil
        self.interval = interval
        self.me = psutil.Process()
        self.peak_rss = 0
        self.peak_compactor_rss = None  # peak of the compactors' summed RSS
        self.children = {}              # pid -> _Child, every child seen
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._io0 = _proc_io(self.me.pid)
        self._io1 = None
        self._refresh_children(initial=True)
        self._sample()
        self.baseline_rss = self.peak_rss  # before the workload: what the process inherited

    def _refresh_children(self, initial=False):
        """Start watching children not seen yet. Those alive when the sampler
        starts are measured from now on; later ones from their birth (a new
        process's counters start at 0)."""
        try:
            found = self.me.children()
        except self.psutil.Error:
            return
        with self._lock:
            for proc in found:
                if proc.pid in self.children:
                    continue
                child = _Child(proc)
                if initial:
                    child.base_io = _proc_io(proc.pid)
                    try:
                        times = proc.cpu_times()
                        child.base_cpu = times.user + times.system
                    except self.psutil.Error:
                        pass
                self.children[proc.pid] = child

    def _sample(self):
        try:
            rss = self.me.memory_info().rss
        except self.psutil.Error:
            rss = 0
        with self._lock:
            self.peak_rss = max(self.peak_rss, rss)
            total = 0
            alive = 0
            for child in self.children.values():
                if child.gone:
                    continue
                if not child.is_ours(self.me.pid):
                    child.gone = True
                    continue
                io = _proc_io(child.pid)
                if io is not None:
                    child.last_io = io
                try:
                    with child.proc.oneshot():
                        child_rss = child.proc.memory_info().rss
                        times = child.proc.cpu_times()
                except self.psutil.Error:
                    continue
                if child_rss:  # 0 once it is a zombie
                    alive += 1
                    total += child_rss
                    child.peak_rss = max(child.peak_rss, child_rss)
                    child.last_cpu = times.user + times.system
            if alive:
                self.peak_compactor_rss = max(self.peak_compactor_rss or 0, total)

    def process_peak_rss(self):
        """This process's RSS high-water mark: the kernel's (getrusage, which
        also sees peaks between samples) or the sampled one if larger. In a
        process forked for one workload the kernel's mark starts at the RSS
        inherited at the fork, about baseline_rss."""
        return max(self.peak_rss, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)

    def sample_now(self):
        """Look for new children and sample at once (e.g. just before close,
        while the compactors still run)."""
        self._refresh_children()
        self._sample()

    def run(self):
        n = 0
        while not self._halt.wait(self.interval):
            n += 1
            if n % 10 == 0:
                self._refresh_children()
            self._sample()

    def stop(self):
        self._halt.set()
        if self.is_alive():
            self.join()
        self._refresh_children()
        self._sample()
        self._io1 = _proc_io(self.me.pid)

    def io_delta(self, field):
        """Bytes of one /proc/<pid>/io counter this process and its children
        added since the sampler started (see the class docstring); None where
        /proc does not say. Call after stop()."""
        end = self._io1 if self._io1 is not None else _proc_io(self.me.pid)
        if end is None or self._io0 is None:
            return None
        total = end[field] - self._io0[field]
        with self._lock:
            for child in self.children.values():
                base = child.base_io[field] if child.base_io else 0
                if child.reaped(self.me.pid):
                    total -= base   # its whole life is in this process's counters now
                elif child.last_io is not None:
                    total += child.last_io[field] - base
        return total

    def bytes_written(self):
        """Bytes handed to write() (and pwrite(), writev()...) by this process
        and its children since the sampler started: /proc's wchar."""
        return self.io_delta("wchar")

    def disk_bytes_written(self):
        """Bytes the processes caused to be sent to the block layer (page-cache
        pages dirtied, /proc's write_bytes), minus those cancelled because the
        file was deleted or truncated before writeback."""
        written = self.io_delta("write_bytes")
        cancelled = self.io_delta("cancelled_write_bytes")
        if written is None or cancelled is None:
            return None
        return written - cancelled

    def child_report(self):
        """One dict per child process seen (lsm: each compactor, replaced ones
        too): peak RSS, and CPU seconds, bytes read and bytes written during
        the run (since its start, for one started during the run: its start-up
        included), as of its last sample."""
        rows = []
        with self._lock:
            for child in self.children.values():
                base, last = child.base_io or {}, child.last_io

                def delta(field):
                    return (last[field] - base.get(field, 0)) / MB if last else None

                rows.append({
                    "pid": child.pid,
                    "peak_rss_mb": child.peak_rss / MB if child.peak_rss else None,
                    "cpu_seconds": (round(child.last_cpu - child.base_cpu, 3)
                                    if child.last_cpu is not None else None),
                    "read_mb": delta("rchar"),
                    "written_mb": delta("wchar"),
                })
        return rows


class _Child:
    """A child process the Sampler watches."""

    def __init__(self, proc):
        self.proc = proc
        self.pid = proc.pid
        # Counters when the sampler started (None, 0: born later, so all 0).
        self.base_io = None
        self.base_cpu = 0.0
        self.last_io = None   # the last /proc/<pid>/io reading (a zombie's: its final one)
        self.last_cpu = None
        self.peak_rss = 0
        self.gone = False

    def is_ours(self, my_pid):
        """Still this process's child (not a recycled pid)? True for a zombie."""
        try:
            return self.proc.is_running() and self.proc.ppid() == my_pid
        except Exception:  # noqa: BLE001 - psutil.NoSuchProcess: reaped
            return False

    def reaped(self, my_pid):
        """Gone for good: waited for by this process, so the kernel has added
        its counters to ours. A zombie is not reaped yet."""
        return not os.path.exists(f"/proc/{self.pid}") or not self.is_ours(my_pid)


def _proc_io(pid):
    """/proc/<pid>/io as a dict of ints (None where unreadable: not Linux, or
    the process is gone)."""
    try:
        with open(f"/proc/{pid}/io") as f:
            fields = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
        return {k.strip(): int(v) for k, v in fields.items()}
    except (OSError, ValueError):
        return None
