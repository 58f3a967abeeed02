"""What a workload costs besides time: peak RSS of this process and of its
children (lsm's compactors), their CPU seconds, and bytes written, from
psutil and /proc/<pid>/io (Linux; None where /proc does not say).

Knows processes only; no engines, no databases.
"""
import gc
import os
import pickle
import resource
import select
import traceback

MB = 1048576.0

# Commands from the measured process to its monitor, one byte each.
_SAMPLE_NOW, _GO, _STOP = b"n", b"g", b"s"


class Sampler:
    """Watches this process and its child processes (lsm's compactors) while
    a workload runs: peak RSS of each, sampled every 50 ms, and I/O
    counters from /proc/<pid>/io.

    The sampling runs in a monitor process forked when the Sampler is made
    (before the engine opens, so from a process with one thread), not in a
    thread of the measured process: a thread took the GIL from the workload
    twenty times a second, once for every /proc file it read, and lsm has
    compactors to read where plyvel has none. Sampled from a thread, lsm's
    50-entry scans of a 2M-key database ran 8-19% slower than unsampled
    (two sets of alternating runs), plyvel's ~1.5%.

    Bytes written by the run are counted from the kernel's per-process I/O
    accounting, which has one trap: when a child exits and is reaped (as a
    compactor is when lsm closes), the kernel adds every counter of its whole
    life to the parent's. Adding the parent's delta to the children's deltas
    would count each compactor twice. So the total is (this process's delta,
    reaped children included) + (the delta of each child still alive at the
    end) - (what each reaped child had already done when first seen: 0 for a
    child started during the run). That is exact whatever the sampling
    interval, and whether or not a compactor was replaced mid-run. The
    monitor itself is left out of the children, and this process reads its
    own counters before it reaps the monitor."""

    def __init__(self, interval=0.05):
        self._watch = _Watch(os.getpid(), interval)
        self._io0 = _proc_io(os.getpid())
        self._io1 = None
        self._watch.refresh_children(initial=True)
        self._watch.sample()
        self.baseline_rss = self._watch.peak_rss  # before the workload: what the process inherited
        self._monitor = _fork_monitor(self._watch)

    @property
    def peak_rss(self):
        return self._watch.peak_rss

    @property
    def peak_compactor_rss(self):
        """Peak of the compactors' summed RSS (None: no compactor seen)."""
        return self._watch.peak_compactor_rss

    @property
    def children(self):
        """pid -> _Child, every child seen."""
        return self._watch.children

    def start(self):
        """Sample every interval from now on, until stop()."""
        if self._monitor is not None:
            self._monitor.send(_GO)

    def sample_now(self):
        """Look for new children and sample at once (e.g. just before close,
        while the compactors still run)."""
        if self._monitor is not None:
            self._monitor.send(_SAMPLE_NOW)
            self._monitor.wait_ack()
        else:
            self._watch.look()

    def stop(self):
        """The last sample; the monitor hands over what it saw and ends."""
        if self._monitor is not None:
            monitor, self._monitor = self._monitor, None
            self._watch, self._io1 = monitor.finish()
        else:
            self._watch.look()
            self._io1 = _proc_io(os.getpid())

    def process_peak_rss(self):
        """This process's RSS high-water mark: the kernel's (getrusage, which
        also sees peaks between samples) or the sampled one if larger. In a
        process forked for one workload the kernel's mark starts at the RSS
        inherited at the fork, about baseline_rss."""
        return max(self.peak_rss, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)

    def io_delta(self, field):
        """Bytes of one /proc/<pid>/io counter this process and its children
        added since the sampler started (see the class docstring); None where
        /proc does not say. Call after stop()."""
        end = self._io1 if self._io1 is not None else _proc_io(os.getpid())
        if end is None or self._io0 is None:
            return None
        total = end[field] - self._io0[field]
        for child in self.children.values():
            base = child.base_io[field] if child.base_io else 0
            if child.reaped(os.getpid()):
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


class _Watch:
    """What the samples saw: peak RSS of the watched process and of its
    children's sum, and each child's counters. Picklable: the monitor
    hands it back to the measured process."""

    def __init__(self, pid, interval):
        self.pid = pid
        self.interval = interval
        self.peak_rss = 0
        self.peak_compactor_rss = None
        self.children = {}  # pid -> _Child, every child seen
        self.exclude = set()  # pids that are not the engine's (the monitor)

    def look(self):
        """Look for new children, then sample: what a sample asked for
        at a given moment takes."""
        self.refresh_children()
        self.sample()

    def refresh_children(self, initial=False):
        """Start watching children not seen yet. Those alive when the sampler
        starts are measured from now on; later ones from their birth (a new
        process's counters start at 0)."""
        import psutil
        try:
            found = _process(self.pid).children()
        except psutil.Error:
            return
        for proc in found:
            if proc.pid in self.children or proc.pid in self.exclude:
                continue
            child = _Child(proc.pid)
            if initial:
                child.base_io = _proc_io(proc.pid)
                try:
                    times = proc.cpu_times()
                    child.base_cpu = times.user + times.system
                except psutil.Error:
                    pass
            self.children[proc.pid] = child

    def sample(self):
        import psutil
        try:
            rss = _process(self.pid).memory_info().rss
        except psutil.Error:
            rss = 0
        self.peak_rss = max(self.peak_rss, rss)
        total = 0
        alive = 0
        for child in self.children.values():
            if child.gone:
                continue
            if not child.is_ours(self.pid):
                child.gone = True
                continue
            io = _proc_io(child.pid)
            if io is not None:
                child.last_io = io
            try:
                proc = _process(child.pid)
                with proc.oneshot():
                    child_rss = proc.memory_info().rss
                    times = proc.cpu_times()
            except psutil.Error:
                continue
            if child_rss:  # 0 once it is a zombie
                alive += 1
                total += child_rss
                child.peak_rss = max(child.peak_rss, child_rss)
                child.last_cpu = times.user + times.system
        if alive:
            self.peak_compactor_rss = max(self.peak_compactor_rss or 0, total)


class _Monitor:
    """The measured process's end of the monitor: its pid and pipes."""

    def __init__(self, pid, commands, replies):
        self.pid = pid
        self._commands = commands
        self._replies = replies

    def send(self, command):
        os.write(self._commands, command)

    def wait_ack(self):
        os.read(self._replies, 1)

    def finish(self):
        """Stop the monitor: (its _Watch, this process's I/O counters), the
        counters read before the monitor is reaped, which adds its own to them."""
        try:
            self.send(_STOP)
        except BrokenPipeError:
            pass  # the monitor is gone: said below, once it is reaped
        chunks = []
        while True:
            chunk = os.read(self._replies, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(self._commands)
        os.close(self._replies)
        io = _proc_io(os.getpid())
        _, status = os.waitpid(self.pid, 0)
        if not chunks:
            raise RuntimeError(f"the bench's sampling process (pid {self.pid}) ended without its samples "
                               f"(wait status {status}; its traceback, if any, is on stderr)")
        return pickle.loads(b"".join(chunks)), io


def _fork_monitor(watch):
    """Fork the monitor process that samples for `watch`; None where fork
    is not available (the measured process then samples only when asked)."""
    if not hasattr(os, "fork"):
        return None
    commands_r, commands_w = os.pipe()
    replies_r, replies_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the monitor: never returns
        code = 0
        try:
            os.close(commands_w)
            os.close(replies_r)
            _monitor(watch, commands_r, replies_w)
        except BaseException:  # noqa: BLE001 - the measured process sees the pipe close
            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    os.close(commands_r)
    os.close(replies_w)
    watch.exclude.add(pid)
    return _Monitor(pid, commands_w, replies_r)


def _monitor(watch, commands, replies):
    """The monitor's loop: sample when told, and every interval once told
    to go, until told to stop (or the measured process is gone); then send
    the _Watch back."""
    # The monitor shares the measured process's heap until it writes to it:
    # a collection would touch every object and copy every page.
    gc.disable()
    watch.exclude.add(os.getpid())
    going = False
    ticks = 0
    while True:
        # A timeout even before going: the parent may die without a word.
        ready, _, _ = select.select([commands], [], [], watch.interval)
        if os.getppid() != watch.pid:
            return
        if not ready:
            if not going:
                continue
            ticks += 1
            if ticks % 10 == 0:
                watch.refresh_children()
            watch.sample()
            continue
        command = os.read(commands, 1)
        if command == _GO:
            going = True
        elif command == _SAMPLE_NOW:
            watch.look()
            os.write(replies, b"k")
        else:  # _STOP, or the pipe closed
            watch.look()
            data = pickle.dumps(watch)
            while data:
                data = data[os.write(replies, data):]
            return


_processes = {}


def _process(pid):
    """psutil's Process for pid, made once per process that asks (a Process
    is not picklable, so a _Watch keeps pids)."""
    import psutil
    proc = _processes.get(pid)
    if proc is None:
        proc = _processes[pid] = psutil.Process(pid)
    return proc


class _Child:
    """A child process the Sampler watches."""

    def __init__(self, pid):
        self.pid = pid
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
            proc = _process(self.pid)
            return proc.is_running() and proc.ppid() == my_pid
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
