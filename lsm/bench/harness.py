"""A benchmark run: the engines take turns on each workload, with the same
data and the same planned operations, and the results become JSON lines,
text lines, the summary and, if asked, a chart.

How a run goes:
- the data (keys, values) is generated once, in this process;
- workloads run in the order given, and each runs on every engine before the
  next one starts; its plan (the keys and values of its operations) is made
  once, before the first engine, so every engine does the same operations;
- each timed workload runs in a child process forked for it, which opens
  the database, runs it, closes the database and exits: one engine's memory
  and background work never reach another's measurement, and the child's
  peak RSS is that engine's on top of the data it inherited;
- fill workloads start from a fresh database; the others run on the
  database the preceding workload left (an untimed fillrandom makes one
  when there is none); read-only ones first compact it (untimed) unless
  --no-compact;
- bloom filters of 10 bits per key everywhere; no sync except fillsync.

Knows the bench's modules, the file system (the databases' directories)
and tqdm; nothing of lsm's internals.
"""
import json
import os
import shutil
import sys
import tempfile
import time

from .data import Data
from .dbbench import fillsync_ops, w_fillrandom, w_load
from .engines import make_adapter, lsm_label
from .isolate import run_in_child
from .options import resolve
from .report import MB, result_line, summary
from .sampler import Sampler
from .workloads import WORKLOADS


class Bench:
    def __init__(self, args, out=sys.stdout, err=sys.stderr):
        self.args = resolve(args)
        self.out = out
        self.err = err
        self.workloads = args.workload_list
        self.engines = args.engine_list
        self.compactors = args.compactor_list  # one lsm column per item
        self.show_progress = not args.quiet and _isatty(out)
        self.results = []
        self.kinds = {}      # engine column ("lsm[2]") -> engine ("lsm")
        self.paths = {}      # engine -> path of the database its last write left
        self.compacted = {}  # engine -> path, while that database is unchanged since compaction
        self.serial = 0

    # ---------------------------------------------------------------- output
    def _say(self, text):
        if not self.args.quiet and not self.args.json:
            print(text, file=self.out, flush=True)

    def _progress(self, engine, workload, total):
        if not self.show_progress:
            return _NoBar()
        try:
            from tqdm import tqdm
        except ImportError:
            return _NoBar()
        return tqdm(total=total, desc=f"{workload:<16} {engine:<11}", unit="op", unit_scale=True,
                    leave=False, file=self.err, mininterval=0.5, dynamic_ncols=True)

    # ------------------------------------------------------------------- run
    def run(self):
        args = self.args
        adapters = {}
        several = len(self.compactors) > 1
        for name in self.engines:
            for compactors in (self.compactors if name == "lsm" else [None]):
                label = lsm_label(compactors, several) if name == "lsm" else name
                try:
                    adapters[label] = make_adapter(name, compactors, label)
                except ImportError as exc:
                    print(f"bench: skipping {name}: cannot import it ({exc}); "
                          f"install it with: pip install 'lsm[bench]'", file=self.err)
                    break
                self.kinds[label] = name
        if not adapters:
            raise RuntimeError("no engine could be loaded")
        root = args.dir
        made_temp = root is None
        if made_temp:
            root = tempfile.mkdtemp(prefix="lsm-bench-")
        else:
            os.makedirs(root, exist_ok=True)
        try:
            started = time.perf_counter()
            data = Data(args.num, seed=args.seed, reads=args.reads, key_dist=args.key_distribution,
                        value_dist=args.value_distribution)
            data.loader_counts = args.loader_counts
            self._say(self._header(adapters, root, data, time.perf_counter() - started))
            for workload in self.workloads:
                # Engines take turns, so a slow spell of the machine falls on each alike.
                spec = WORKLOADS[workload]
                for run in range(1, args.repeat + 1):
                    plan = spec.plan(data) if spec.plan is not None else None
                    for adapter in adapters.values():
                        self._run_one(adapter, spec, plan, data, root, run)
            self._say("")
            if not args.json or not args.quiet:
                table = summary(self.results, self.kinds, args.repeat)
                print(table, file=self.err if args.json else self.out, flush=True)
            if args.plot:
                from .plot import plot
                plot(self.results, args.plot, self._title(data))
                self._say(f"Chart: {args.plot}")
        finally:
            if made_temp:
                shutil.rmtree(root, ignore_errors=True)
        return 0

    def _title(self, data):
        return (f"{self.args.num:,} keys ({data.key_dist.describe()}); values: {data.value_dist.describe()}; "
                f"ops/s per engine, median of {self.args.repeat} run(s)")

    def _header(self, adapters, root, data, gen_seconds):
        args = self.args
        lines = [
            f"Keys:       {data.key_dist.describe()} (mean {data.key_size:g})",
            f"Values:     {data.value_dist.describe()} (mean {data.value_size:g}, about half compressible)",
            f"Entries:    {args.num:,} (fillsync: {fillsync_ops(args.num):,}; random reads, seeks, YCSB "
            f"operations and scans: {data.reads:,}); generated in {gen_seconds:.1f} s",
            f"Engines:    {'; '.join(a.version() for a in adapters.values())}",
            *([f"Columns:    {', '.join(adapters)}"] if len(adapters) > len(set(self.kinds.values())) else []),
            f"CPUs:       {os.cpu_count()}",
            f"Databases:  {root}",
            "-" * 72,
        ]
        return "\n".join(lines)

    def _fresh_path(self, root, engine, workload):
        self.serial += 1
        safe = engine.replace("[", "-").replace("]", "")
        path = os.path.join(root, f"{safe}-{self.serial:02d}-{workload}")
        shutil.rmtree(path, ignore_errors=True)
        return path

    def _drop(self, engine):
        # A new fill supersedes the engine's previous database: free the disk.
        old = self.paths.pop(engine, None)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def _untimed(self, adapter, path, what, step):
        """Open the database in a child process, ``step(adapter)``, close."""
        def run():
            adapter.open(path)
            try:
                step(adapter)
            finally:
                adapter.close()
        run_in_child(f"{adapter.name} {what}", run)

    def _prepare(self, adapter, spec, data, root):
        """The database ``spec`` runs on: a fresh path, or the one the last
        write left, made or compacted first (untimed) if the workload needs it."""
        engine = adapter.name
        if spec.needs in ("fresh", "self"):
            self._drop(engine)
            self.paths[engine] = path = self._fresh_path(root, engine, spec.name)
            return path
        path = self.paths.get(engine)
        if path is None:  # nothing to read yet: make the database db_bench would expect
            self._say(f"{'(preparing)':<16} {engine:<11}: untimed fillrandom for {spec.name}")
            self.paths[engine] = path = self._fresh_path(root, engine, "fillrandom")

            def fill(a):
                with self._progress(engine, "(fillrandom)", data.num) as bar:
                    w_fillrandom(a, data, bar.update)
            self._untimed(adapter, path, "untimed fillrandom", fill)
        if spec.read_only and not self.args.no_compact and self.compacted.get(engine) != path:
            self._say(f"{'(compacting)':<16} {engine:<11}: untimed compact_range before reads")
            self._untimed(adapter, path, "untimed compaction", lambda a: (a.compact(), a.quiesce()))
            self.compacted[engine] = path
        return path

    def _run_one(self, adapter, spec, plan, data, root, run=1):
        engine = adapter.name
        path = self._prepare(adapter, spec, data, root)
        compacted = self.compacted.get(engine) == path
        # Earlier workloads leave dirty pages the kernel writes back ~30 s
        # later, into whichever engine is timed then: written now, each engine
        # is timed on its own I/O.
        os.sync()
        result = run_in_child(f"{engine} {spec.name}", lambda: self._timed(adapter, spec, plan, data, path))
        if spec.compacts:
            self.compacted[engine] = path
        elif not spec.read_only:
            self.compacted.pop(engine, None)
        result = {"engine": engine, "workload": spec.name, **result}
        if spec.needs == "existing":
            result["compacted"] = compacted
        if self.args.repeat > 1:
            result["run"] = run
        if result.get("stats_error") is not None:
            print(f"bench: {engine} {spec.name}: db.stats() failed ({result['stats_error']}); lsm's counters "
                  f"are missing", file=self.err, flush=True)
        if adapter.kind == "lsm" and getattr(adapter, "compactors", None) is not None:
            result["compactors"] = adapter.compactors
        self.results.append(result)
        if self.args.json:
            print(json.dumps(result), file=self.out, flush=True)
        else:
            self._say(result_line(result))

    def _timed(self, adapter, spec, plan, data, path):
        """In the child process: run the workload and measure it."""
        sampler = Sampler()
        with self._progress(adapter.name, spec.name, spec.total(data)) as bar:
            if spec.needs == "self":
                sampler.start()
                try:
                    ops, seconds, nbytes, extra = w_load(adapter, data, bar.update, path, sampler)
                finally:
                    sampler.stop()
            else:
                adapter.open(path)
                try:
                    sampler.sample_now()
                    sampler.start()
                    try:
                        ops, seconds, nbytes, extra = spec.execute(adapter, data, plan, bar.update)
                    finally:
                        sampler.stop()
                finally:
                    adapter.close()
        peak = sampler.process_peak_rss()
        result = {
            "ops": ops,
            "seconds": round(seconds, 6),
            "ops_per_sec": ops / seconds if seconds > 0 else None,
            "micros_per_op": seconds * 1e6 / ops if ops else None,
            "mb_per_sec": nbytes / MB / seconds if seconds > 0 else None,
            "key_size": data.key_size,
            "value_size": data.value_size,
            "key_dist": data.key_dist.spec(),
            "value_dist": data.value_dist.spec(),
            "write_amplification": extra.pop("write_amplification", None),
            "peak_rss_mb": peak / MB,
            "baseline_rss_mb": sampler.baseline_rss / MB,
            "engine_rss_mb": (peak - sampler.baseline_rss) / MB,
        }
        if sampler.peak_compactor_rss is not None:
            result["compactor_peak_rss_mb"] = sampler.peak_compactor_rss / MB
        if adapter.stats_error is not None:
            result["stats_error"] = adapter.stats_error
        if spec.name == "load":
            result.update(_load_io(sampler, data, extra))
        result.update(extra)
        return result


def _load_io(sampler, data, extra):
    """The load result's fields from /proc: write amplification from
    write() bytes (and lsm's WAL bytes copied into a mapping instead)
    and from block-layer bytes, and one row per compactor."""
    user = data.num * data.entry_bytes
    written = sampler.bytes_written()
    wal = extra.pop("_wal_mapped_bytes", 0)
    if written is not None:
        written += wal
    disk = sampler.disk_bytes_written()
    jobs = extra.pop("_jobs_done", {})
    named = set(extra.pop("_compactor_pids", ())) | set(jobs)
    procs = []
    for row in sampler.child_report():
        if row["peak_rss_mb"] is None:
            continue  # never seen running (e.g. a previous engine's, exiting)
        row["compactor"] = row["pid"] in named  # lsm's stats() named it (replaced ones are not)
        row["jobs_done"] = jobs.get(row["pid"])
        cpu, read = row["cpu_seconds"], row["read_mb"]
        row["input_mb_per_cpu_sec"] = read / cpu if cpu and read is not None else None
        procs.append(row)
    return {
        "user_bytes": user,
        "io_bytes_written": written,
        "io_write_amplification": written / user if written is not None else None,
        "io_disk_bytes_written": disk,
        "io_disk_write_amplification": disk / user if disk is not None else None,
        "compactor_processes": procs,
    }


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n=1):
        pass
