"""What a run prints: one line per result, the summary table with the
speed ratios, the load table and the memory table.

Pure: formats result dicts (as the harness makes them) into text.
"""
import statistics

MB = 1048576.0
# Workloads timed as one operation: their cell shows seconds, not ops/s.
TIMED_ONCE = ("compact_range",)


def summary_rows(results):
    """The results with ``workload`` as the summary names it: a workload run
    both on a compacted database and on one as written shows as two rows,
    the second named "NAME (compacted)"."""
    states = {}
    for r in results:
        states.setdefault(r["workload"], set()).add(bool(r.get("compacted")))
    return [dict(r, workload=f"{r['workload']} (compacted)") if r.get("compacted") and len(states[r["workload"]]) > 1
            else r for r in results]


def summary(results, kinds, repeat=1):
    """The summary table of a run: ops/s and MB/s of every workload on every
    engine column, then the ratios of each lsm column to the other engines;
    then the load and memory tables."""
    results = summary_rows(results)
    engines = list(dict.fromkeys(r["engine"] for r in results))
    by = medians(results)
    workloads = list(dict.fromkeys(r["workload"] for r in results))
    kind = {e: kinds.get(e, e) for e in engines}
    lsm_cols = [e for e in engines if kind[e] == "lsm"]
    ratio_cols = [(l, e) for l in lsm_cols for e in engines if kind[e] in ("plyvel", "rocksdict")]
    width = max([16] + [len(e) + 6 for e in engines])
    name_w = max([16] + [len(w) for w in workloads])
    head = [f"{'workload':<{name_w}}"]
    for e in engines:
        head.append(f"{e + ' ops/s':>{width}} {'MB/s':>7}")
    ratio_names = [f"{l}/{e}" for l, e in ratio_cols]
    for name in ratio_names:
        head.append(f"{name:>{max(14, len(name))}}")
    runs = f", the median of {repeat} runs" if repeat > 1 else ""
    lines = [f"Summary (ops/s and MB/s{runs}; ratio = lsm ops/s / other ops/s, above 1 means lsm is faster; "
             f"{', '.join(TIMED_ONCE)}: seconds, ratio = other s / lsm s)",
             " ".join(head), "-" * len(" ".join(head))]
    for w in workloads:
        row = [f"{w:<{name_w}}"]
        for e in engines:
            r = by.get((w, e))
            if r is None:
                row.append(f"{'-':>{width}} {'-':>7}")
            elif w.split()[0] in TIMED_ONCE and r["ops_per_sec"]:
                row.append(f"{1 / r['ops_per_sec']:>{width - 2}.2f} s {_mb(r['mb_per_sec']):>7}")
            else:
                row.append(f"{_num(r['ops_per_sec']):>{width}} {_mb(r['mb_per_sec']):>7}")
        for (l, e), name in zip(ratio_cols, ratio_names):
            mine, other = by.get((w, l)), by.get((w, e))
            cell = max(14, len(name))
            if mine and other and mine["ops_per_sec"] and other["ops_per_sec"]:
                row.append(f"{mine['ops_per_sec'] / other['ops_per_sec']:>{cell - 1}.2f}x")
            else:
                row.append(f"{'-':>{cell}}")
        lines.append(" ".join(row))
    loads = [r for r in results if r["workload"] == "load"]
    if loads:
        lines += ["", *_load_table(loads)]
    lines += ["", *memory_table(results)]
    return "\n".join(lines)


def memory_table(results):
    """Peak RSS of each engine column: the highest over its workloads, each
    workload run in a process of its own forked from the bench."""
    rows = {}
    for r in results:
        if r.get("peak_rss_mb") is None:
            continue
        best = rows.get(r["engine"])
        if best is None or r["peak_rss_mb"] > best["peak_rss_mb"]:
            rows[r["engine"]] = r
    if not rows:
        return []
    name_w = max([11] + [len(e) for e in rows])
    lines = ["Memory (peak RSS in MB of the process that ran each workload; the highest of each engine column)",
             f"{'engine':<{name_w}} {'peak RSS':>9} {'data':>7} {'engine':>7} {'compactors':>10}  workload"]
    for engine, r in rows.items():
        compactors = max((x.get("compactor_peak_rss_mb") or 0 for x in results if x["engine"] == engine),
                         default=0)
        lines.append(f"{engine:<{name_w}} {r['peak_rss_mb']:>9.0f} {_opt(r.get('baseline_rss_mb'), '{:.0f}'):>7} "
                     f"{_opt(r.get('engine_rss_mb'), '{:.0f}'):>7} {_opt(compactors or None, '{:.0f}'):>10}  "
                     f"{r['workload']}")
    lines += ["data: the process's RSS before it opened the engine (the generated keys, values and plans, "
              "shared by every engine);",
              "engine: peak RSS - data, the engine's own high-water mark; compactors: lsm's compactor processes "
              "(their summed RSS)."]
    return lines



def medians(results):
    """(workload, engine) -> its median run's ops/s and MB/s (the mean of
    the middle two for an even count of runs)."""
    runs = {}
    for r in results:
        runs.setdefault((r["workload"], r["engine"]), []).append(r)
    by = {}
    for key, rows in runs.items():
        by[key] = {field: _median([r[field] for r in rows]) for field in ("ops_per_sec", "mb_per_sec")}
    return by


def _median(values):
    if any(v is None for v in values):
        return None
    return statistics.median(values)


def _load_table(loads):
    """The load workload's own table: one row per engine column, then one
    row per compactor process."""
    name_w = max([11] + [len(_run_label(r)) for r in loads])
    lines = ["load (sustained ingest in batches of 1000; timed until compactions finish and the DB is closed)",
             f"{'engine':<{name_w}} {'writes s':>8} {'total s':>8} {'ops/s':>9} {'stall s':>8} "
             f"{'amp stats':>9} {'amp write()':>11} {'amp disk':>8} {'writer RSS':>10} "
             f"{'compactor RSS MB':>17} {'compact MB/s':>12}"]
    for r in loads:
        procs = r.get("compactor_processes") or []
        each = "+".join(f"{p['peak_rss_mb']:.0f}" for p in procs) or "-"
        lines.append(
            f"{_run_label(r):<{name_w}} {_opt(r.get('write_seconds'), '{:.1f}'):>8} {r['seconds']:>8.1f} "
            f"{_num(r['ops_per_sec']):>9} {_opt(r.get('stall_seconds'), '{:.1f}'):>8} "
            f"{_opt(r.get('write_amplification'), '{:.2f}'):>9} "
            f"{_opt(r.get('io_write_amplification'), '{:.2f}'):>11} "
            f"{_opt(r.get('io_disk_write_amplification'), '{:.2f}'):>8} "
            f"{_opt(r.get('peak_rss_mb'), '{:.0f}'):>10} {each:>17} "
            f"{_opt(r.get('compaction_mb_per_sec'), '{:.1f}'):>12}")
    procs = [(_run_label(r), p) for r in loads for p in r.get("compactor_processes") or []]
    if procs:
        lines += ["", "compactor processes (during the run, start-up included)",
                  f"{'engine':<{name_w}} {'pid':>8} {'jobs':>5} {'peak RSS MB':>11} {'CPU s':>7} "
                  f"{'read MB':>8} {'written MB':>10} {'input MB/CPU-s':>14}"]
        for engine, p in procs:
            lines.append(
                f"{engine:<{name_w}} {p['pid']:>8} {_opt(p.get('jobs_done'), '{}'):>5} "
                f"{_opt(p.get('peak_rss_mb'), '{:.0f}'):>11} {_opt(p.get('cpu_seconds'), '{:.1f}'):>7} "
                f"{_opt(p.get('read_mb'), '{:.0f}'):>8} {_opt(p.get('written_mb'), '{:.0f}'):>10} "
                f"{_opt(p.get('input_mb_per_cpu_sec'), '{:.1f}'):>14}")
    lines += [
        "",
        "writes s: until the last batch returned; total s: until compactions finished and the DB closed.",
        "stall s: time writers waited for room, from lsm's stats(), including flushes a stalled writer ran",
        "  itself (inline compaction runs inside the writes and is not a stall). compact MB/s: compaction",
        "  input bytes / compaction seconds (each compaction's running time in its compactor; the longest",
        "  piece of a split one), stats().",
        "amp stats: (table bytes written + user bytes) / user bytes, from lsm's stats(); its user bytes",
        "  are WriteBatch records (key + value + 3 bytes), which also stand in for the WAL.",
        "amp write(): bytes passed to write() by this process and its compactors / (key + value bytes),",
        "  from /proc/<pid>/io wchar, plus lsm's small WAL appends (copied into a mapping, not",
        "  written with write()); amp disk: the same from write_bytes - cancelled_write_bytes (bytes",
        "  bound for the disk: pages of a file deleted before writeback, e.g. an unsynced WAL, are not).",
        "input MB/CPU-s: bytes a compactor read (WALs for flushes, tables for compactions) per CPU second.",
    ]
    return lines


def _run_label(r):
    """The engine column, and which run of it when the bench repeats."""
    return f"{r['engine']} #{r['run']}" if "run" in r else r["engine"]


def result_line(r):
    if r["workload"] in TIMED_ONCE:
        text = f"{r['workload']:<16} {_run_label(r):<11}: {r['seconds']:10.3f} s; {_mb(r['mb_per_sec']):>7} MB/s"
    else:
        text = (f"{r['workload']:<16} {_run_label(r):<11}: {_opt(r['micros_per_op'], '{:10.3f}')} micros/op; "
                f"{_num(r['ops_per_sec']):>10} ops/s; {_mb(r['mb_per_sec']):>7} MB/s")
    notes = []
    if "found" in r:
        mixed = "reads" in r or "read_modify_writes" in r  # a YCSB mix: only its gets can find
        gets = r.get("reads", 0) + r.get("read_modify_writes", 0) if mixed else r["ops"]
        notes.append(f"{r['found']:,} of {gets:,} found")
    for field in ("updates", "inserts", "deletes", "scanned"):
        if r.get(field):
            notes.append(f"{r[field]:,} {field}")
    if "writes" in r:
        notes.append(f"{r['writes']:,} writes meanwhile")
    if r.get("stall_seconds") is not None:
        notes.append(f"stalled {r['stall_seconds']:.1f} s")
    if r.get("write_amplification") is not None:
        notes.append(f"write amp {r['write_amplification']:.2f}")
    if r.get("io_write_amplification") is not None:
        notes.append(f"write() amp {r['io_write_amplification']:.2f}")
    if r["workload"] == "load" and r.get("peak_rss_mb") is not None:
        notes.append(f"peak RSS {r['peak_rss_mb']:.0f} MB")
    if r["workload"] == "load" and r.get("compactor_processes"):
        notes.append("compactors RSS " + "+".join(f"{p['peak_rss_mb']:.0f}" for p in r["compactor_processes"])
                     + " MB")
    notes.extend(r.get("notes", ()))
    return text + (f" ({'; '.join(notes)})" if notes else "")


def _num(x):
    return "-" if x is None else f"{x:,.0f}"


def _mb(x):
    return "-" if x is None else f"{x:.1f}"


def _opt(x, fmt):
    return "-" if x is None else fmt.format(x)


