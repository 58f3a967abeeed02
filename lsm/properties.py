"""get_property and stats(): the engine's state as LevelDB prints it, and as a dict.
Reads engine state only; no files."""
import re

from .keys import parse_internal_key
from .writer.picker import max_bytes_for_level

_LEVEL_PROPERTY = re.compile(rb"^leveldb\.num-files-at-level(\d+)$")


def _escape(data: bytes) -> str:
    return "".join(chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}" for b in data)


def _debug_key(ikey: bytes) -> str:
    try:
        ukey, seq, kind = parse_internal_key(ikey)
    except ValueError:
        return f"(bad){_escape(ikey)}"
    return f"'{_escape(ukey)}' @ {seq} : {kind}"


def get_property(engine, name: bytes):
    version = engine.versions.current
    m = _LEVEL_PROPERTY.match(name)
    if m:
        level = int(m.group(1))
        if level >= len(version.levels):
            return None
        return str(len(version.levels[level])).encode()
    if name == b"leveldb.stats":
        lines = ["                               Compactions",
                 "Level  Files Size(MB) Time(sec) Read(MB) Write(MB)",
                 "--------------------------------------------------"]
        for level, files in enumerate(version.levels):
            seconds, read, written = engine.level_stats[level]
            size = sum(f.size for f in files)
            if files or seconds or read or written:
                lines.append(f"{level:3d} {len(files):8d} {size / 1048576.0:8.0f} {seconds:9.0f} "
                             f"{read / 1048576.0:8.0f} {written / 1048576.0:9.0f}")
        compactors = engine.compactor_stats()
        if compactors:
            lines.append("Compactors")
            lines.append(" slot      pid alive   cpu%  rss(MB)  jobs restarts")
            for w in compactors:
                lines.append(f"{w['slot']:5d} {w['pid'] or 0:8d} {('yes' if w['alive'] else 'no'):>5} "
                             f"{w['cpu_percent']:6.1f} {w['rss_bytes'] / 1048576.0:8.1f} "
                             f"{w['jobs_done']:5d} {w['restarts']:8d}")
        if engine.bg_error is not None:
            lines.append(f"Background error: {engine.bg_error}")
        return ("\n".join(lines) + "\n").encode()
    if name == b"leveldb.sstables":
        out = []
        for level, files in enumerate(version.levels):
            out.append(f"--- level {level} ---")
            for f in files:
                out.append(f" {f.number}:{f.size}[{_debug_key(f.smallest)} .. {_debug_key(f.largest)}]")
        return ("\n".join(out) + "\n").encode()
    if name == b"leveldb.approximate-memory-usage":
        return str(engine.memory_usage() + engine.block_cache.usage).encode()
    return None


def stats_dict(engine) -> dict:
    version = engine.versions.current
    levels = []
    for level, files in enumerate(version.levels):
        size = sum(f.size for f in files)
        score = len(files) / 4.0 if level == 0 else size / max_bytes_for_level(level, engine.options.level_size_base)
        seconds, read, written = engine.level_stats[level]
        levels.append({"level": level, "files": len(files), "bytes": size, "score": score,
                       "compaction_seconds": seconds, "read_bytes": read, "written_bytes": written})
    s = engine.stats
    user = s["user_bytes"]
    return {
        "levels": levels,
        "flushes": s["flushes"],
        "flushes_in_writer": s["flushes_in_writer"],
        "compactions": s["compactions"],
        "compaction_bytes_read": s["bytes_read"],
        "compaction_bytes_written": s["bytes_written"],
        "compaction_seconds": s["compaction_seconds"],
        "stall_seconds": s["stall_seconds"],
        "user_bytes": user,
        "wal_mapped_bytes": engine.wal_mapped_bytes(),
        "write_amplification": (s["bytes_written"] + user) / user if user else 0.0,
        "memtable_bytes": engine.memory_usage(),
        "last_sequence": engine.versions.last_sequence,
        "background_error": None if engine.bg_error is None else str(engine.bg_error),
        "compactors": engine.compactor_stats(),
        "running_jobs": engine.running_job_count(),
        "delayed_writes": s["delayed_writes"],
    }
