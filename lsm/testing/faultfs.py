"""FaultFS: a FileSystem that really writes files but remembers what a power
cut would keep, and injects I/O errors on demand. Knows files and
lsm.fileio's FileSystem interface; nothing of the engine.

Every file and directory under ``root`` is modelled next to the real one:

* a file keeps the bytes written to it and how many of them the last
  successful ``sync`` made durable (a failed sync makes nothing durable, and
  the bytes it covered stay "lost" even if a later sync succeeds, as Linux
  marks the pages clean after an fsync error);
* a directory keeps the entries the last ``sync_dir`` made durable and the
  namespace operations (create, rename, remove, mkdir) made since, in order.

``crash_state(target)`` writes into ``target`` what the disk could hold after
a power cut at this instant: every synced byte; each unsynced block kept with
probability ``keep_unsynced`` (dropped blocks before a kept one read as
zeros, and the last kept block may be torn); the unsynced directory
operations applied as a random prefix (ext4-like ordered metadata) or as a
random subset (the weakest POSIX model, ALICE's).

Faults: ``inject(op, pattern, nth=..)`` makes the nth matching call fail with
``lsm.errors.IOError`` (ENOSPC by default), optionally after writing a prefix
of the buffer (a torn write). ``crash_at(k)`` raises ``CrashPoint`` from the
k-th mutating operation and from every operation after it (the machine is
off; ``detach()`` then lets the crashed engine close without touching the
model); ``on_op`` is called before every mutating operation, so a test can
take a crash state at every k-th operation of a single run.

Mutating operations, counted in ``op_count``: create, write (append), sync,
sync_dir, rename, remove, rmtree, mkdir.
"""
import errno as _errno
import fnmatch
import json
import os
import random
import threading

from ..errors import IOError as LsmIOError
from ..fileio import FileSystem, RandomAccessFile, WritableFile

MUTATING = frozenset({"create", "write", "sync", "sync_dir", "rename", "remove", "rmtree", "mkdir"})
OPS = MUTATING | {"open", "read"}
_ALIASES = {"append": "write", "fsync": "sync", "fsync_dir": "sync_dir", "unlink": "remove", "delete": "remove",
            "open_append": "open", "open_random": "open", "read_file": "read"}


class CrashPoint(BaseException):
    """The simulated power cut. A BaseException, so the engine's
    ``except Exception`` cannot swallow it."""


class _File:
    """An inode: its bytes and how much of them is durable."""

    __slots__ = ("data", "synced_len", "old_synced", "lost")

    def __init__(self, data=b"", synced=True):
        self.data = bytearray(data)
        self.synced_len = len(data) if synced else 0
        self.old_synced = None  # durable contents, when truncated since the last sync
        self.lost = []  # (start, end): bytes a failed sync covered; never known durable


class _Dir:
    """A directory: current entries, durable entries, and the operations since
    the last sync_dir as ("link", name, node) / ("unlink", name) /
    ("rename", src, dst, node)."""

    __slots__ = ("entries", "durable", "pending")

    def __init__(self):
        self.entries = {}
        self.durable = {}
        self.pending = []


class Fault:
    """One injection rule. Fires on the `nth` matching call (1-based) and on the
    `times - 1` matching calls after it (`times=None`: forever)."""

    def __init__(self, op, pattern="*", nth=1, errno=_errno.ENOSPC, torn=None, times=1):
        op = _ALIASES.get(op, op)
        if op not in OPS:
            raise ValueError(f"unknown operation {op!r}; one of {sorted(OPS)}")
        self.op = op
        self.pattern = pattern
        self.nth = nth
        self.errno = errno
        self.torn = torn  # bytes (int) or share (float) of the buffer written before failing
        self.times = times
        self.calls = 0
        self.fired = 0

    def matches(self, op, path, rel):
        if op != self.op:
            return False
        pat = self.pattern
        return (fnmatch.fnmatchcase(os.path.basename(path), pat) or fnmatch.fnmatchcase(path, pat)
                or (rel is not None and fnmatch.fnmatchcase(rel, pat)))

    def check(self):
        """Count one matching call; True when this one must fail."""
        self.calls += 1
        if self.calls < self.nth:
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        self.fired += 1
        return True

    def __repr__(self):
        return (f"Fault({self.op!r}, {self.pattern!r}, nth={self.nth}, errno={_errno.errorcode.get(self.errno)}, "
                f"torn={self.torn}, times={self.times}, fired={self.fired})")


def _injected_error(op, path, err):
    e = LsmIOError(f"{op} {path}: {os.strerror(err)} (injected)")
    e.errno = err
    return e


class FaultWritableFile(WritableFile):
    __slots__ = ("_fs", "_node")

    def __init__(self, fs, node, path, fd, size):
        super().__init__(path, fd, size)
        self._fs = fs
        self._node = node

    def append(self, data) -> None:
        self._fs._append(self, data)

    def sync(self) -> None:
        self._fs._sync(self)


class FaultRandomAccessFile(RandomAccessFile):
    __slots__ = ("_fs",)

    def __init__(self, fs, path, fd, size):
        super().__init__(path, fd, size)
        self._fs = fs

    def read(self, offset, length):
        if not self._fs.detached:
            self._fs._before("read", self.path)
        return super().read(offset, length)


class FaultFS(FileSystem):
    """See the module docstring. ``root`` is the directory modelled (usually
    the database directory itself); it is created if missing and, with what
    it already holds, counts as durable."""

    def __init__(self, root):
        self.root = os.path.abspath(os.fspath(root))
        self._mutex = threading.RLock()
        self.faults = []
        self.log = []  # (op number or None, op, path, outcome)
        self.op_count = 0
        self.crash_at_op = None
        self.dead = False
        self.on_op = None  # callable(op_number, op, path), before each mutating op
        self.keep_log = True
        self.detached = False
        self._dirs = {}
        os.makedirs(self.root, exist_ok=True)
        self._dirs[self.root] = self._scan(self.root)

    # ----------------------------------------------------------- controls
    def inject(self, op, pattern="*", nth=1, errno=_errno.ENOSPC, torn=None, times=1) -> Fault:
        rule = Fault(op, pattern, nth, errno, torn, times)
        with self._mutex:
            self.faults.append(rule)
        return rule

    def clear_faults(self):
        with self._mutex:
            self.faults = []

    def crash_at(self, k):
        """The k-th mutating operation from now on (1-based) raises CrashPoint,
        and so does every operation after it."""
        with self._mutex:
            self.crash_at_op = self.op_count + k

    def detach(self):
        """Stop modelling: from now on every operation goes straight to the real
        directory, unrecorded, with no faults and no crash. For after a
        CrashPoint, so the crashed engine can be closed (its lock released)
        without its clean-up writes reaching the modelled disk."""
        with self._mutex:
            self.detached = True

    def revive(self):
        """Power back on (the model keeps the state at the crash)."""
        with self._mutex:
            self.dead = False
            self.crash_at_op = None

    def ops_of(self, op=None, pattern="*", outcome=None):
        """Log entries of `op` whose base name matches `pattern`."""
        op = _ALIASES.get(op, op)
        return [e for e in self.log if (op is None or e[1] == op)
                and fnmatch.fnmatchcase(os.path.basename(e[2]), pattern)
                and (outcome is None or e[3].startswith(outcome))]

    # ----------------------------------------------------------- helpers
    def _scan(self, path):
        d = _Dir()
        for name in os.listdir(path):
            p = os.path.join(path, name)
            if os.path.isdir(p):
                node = self._scan(p)
                self._dirs[p] = node
            elif os.path.isfile(p):
                with open(p, "rb") as f:
                    node = _File(f.read())
            else:
                continue
            d.entries[name] = node
            d.durable[name] = node
        return d

    def _abs(self, path):
        return os.path.abspath(os.fspath(path))

    def _rel(self, path):
        if path == self.root:
            return "."
        if path.startswith(self.root + os.sep):
            return path[len(self.root) + 1:]
        return None

    def _parent(self, path):
        """(_Dir, name) for a path inside the model, else (None, name)."""
        parent, name = os.path.split(path)
        return self._dirs.get(parent), name

    def _record(self, n, op, path, outcome):
        if self.keep_log:
            self.log.append((n, op, path, outcome))

    def _before(self, op, path):
        """Count the op, crash or fire a fault. Returns the fault rule that
        fired for a torn write (the caller tears it), else None."""
        hook = None
        with self._mutex:
            n = None
            if self.dead:
                self._record(None, op, path, "dead")
                raise CrashPoint(f"power is off ({op} {path})")
            if op in MUTATING:
                self.op_count += 1
                n = self.op_count
                if self.crash_at_op is not None and n >= self.crash_at_op:
                    self.dead = True
                    self._record(n, op, path, "crash")
                    raise CrashPoint(f"power cut at operation {n} ({op} {path})")
                hook = self.on_op
            rel = self._rel(path)
            fired = None
            for rule in self.faults:
                if rule.matches(op, path, rel) and rule.check():
                    fired = rule
                    break
        if hook is not None:
            hook(n, op, path)
        if fired is not None:
            if op == "write" and fired.torn is not None:
                return fired, n
            self._record(n, op, path, f"error:{_errno.errorcode.get(fired.errno, fired.errno)}")
            raise _injected_error(op, path, fired.errno)
        return None, n

    # --------------------------------------------------------- writable files
    def create(self, path, exclusive=True) -> WritableFile:
        if self.detached:
            return super().create(path, exclusive)
        path = self._abs(path)
        _, n = self._before("create", path)
        base = super().create(path, exclusive)
        with self._mutex:
            d, name = self._parent(path)
            node = None
            if d is not None:
                node = d.entries.get(name)
                if isinstance(node, _File):
                    # O_TRUNC of an existing file: the truncation is not durable
                    # until the next sync.
                    if node.old_synced is None:
                        node.old_synced = bytes(node.data[:node.synced_len])
                    node.data = bytearray()
                    node.synced_len = 0
                    node.lost = []
                else:
                    node = _File(synced=False)
                    d.entries[name] = node
                    d.pending.append(("link", name, node))
            self._record(n, "create", path, "ok")
        fd = base._fd
        base._fd = None
        return FaultWritableFile(self, node, path, fd, 0)

    def create_log(self, path) -> WritableFile:
        # Through create(): the log's writes must meet the injected faults
        # and the simulated page cache, which a mapping would bypass.
        if self.detached:
            return super().create_log(path)
        return self.create(path)

    def open_append(self, path) -> WritableFile:
        if self.detached:
            return super().open_append(path)
        path = self._abs(path)
        self._before("open", path)
        base = super().open_append(path)
        with self._mutex:
            d, name = self._parent(path)
            node = d.entries.get(name) if d is not None else None
            if not isinstance(node, _File):
                node = None
        fd, size = base._fd, base.size
        base._fd = None
        return FaultWritableFile(self, node, path, fd, size)

    def _append(self, f, data):
        if self.detached:
            return WritableFile.append(f, data)
        view = bytes(data)
        torn, n = self._before("write", f.path)
        if torn is not None:
            k = torn.torn if isinstance(torn.torn, int) else int(len(view) * torn.torn)
            k = max(0, min(k, len(view) - 1)) if view else 0
            WritableFile.append(f, view[:k])
            with self._mutex:
                if f._node is not None:
                    f._node.data += view[:k]
                self._record(n, "write", f.path,
                             f"torn:{k}/{len(view)}:error:{_errno.errorcode.get(torn.errno, torn.errno)}")
            raise _injected_error("write", f.path, torn.errno)
        WritableFile.append(f, view)
        with self._mutex:
            if f._node is not None:
                f._node.data += view
            self._record(n, "write", f.path, f"ok:{len(view)}")

    def _sync(self, f):
        if self.detached:
            return WritableFile.sync(f)
        try:
            _, n = self._before("sync", f.path)
        except LsmIOError:
            with self._mutex:
                node = f._node
                if node is not None and len(node.data) > node.synced_len:
                    node.lost.append((node.synced_len, len(node.data)))
            raise
        WritableFile.sync(f)
        with self._mutex:
            node = f._node
            if node is not None:
                node.synced_len = len(node.data)
                node.old_synced = None
            self._record(n, "sync", f.path, "ok")

    # ------------------------------------------------------------- reading
    def open_random(self, path) -> RandomAccessFile:
        if self.detached:
            return super().open_random(path)
        path = self._abs(path)
        self._before("open", path)
        base = super().open_random(path)
        fd, size = base._fd, base.size
        base._fd = None
        return FaultRandomAccessFile(self, path, fd, size)

    def open_mapped(self, path) -> RandomAccessFile:
        # Faults are injected at each read, which a mapping's reads bypass.
        return self.open_random(path)

    def read_file(self, path) -> bytes:
        if self.detached:
            return super().read_file(path)
        path = self._abs(path)
        self._before("read", path)
        return super().read_file(path)

    # ------------------------------------------------------------ namespace
    def mkdir(self, path, mode=0o755) -> None:
        if self.detached:
            return super().mkdir(path, mode)
        path = self._abs(path)
        _, n = self._before("mkdir", path)
        super().mkdir(path, mode)
        with self._mutex:
            missing = []
            p = path
            while p not in self._dirs and self._rel(p) is not None:
                missing.append(p)
                p = os.path.dirname(p)
            for p in reversed(missing):
                d, name = self._parent(p)
                node = _Dir()
                self._dirs[p] = node
                d.entries[name] = node
                d.pending.append(("link", name, node))
            self._record(n, "mkdir", path, "ok")

    def rename(self, src, dst) -> None:
        if self.detached:
            return super().rename(src, dst)
        src, dst = self._abs(src), self._abs(dst)
        _, n = self._before("rename", src)
        super().rename(src, dst)
        with self._mutex:
            sd, sname = self._parent(src)
            dd, dname = self._parent(dst)
            node = sd.entries.pop(sname, None) if sd is not None else None
            if node is None:
                node = _File(b"")
                try:
                    with open(dst, "rb") as fh:
                        node = _File(fh.read())
                except OSError:
                    pass
            if isinstance(node, _Dir):
                self._move_dirs(src, dst)
            if sd is not None and sd is dd:
                dd.entries[dname] = node
                dd.pending.append(("rename", sname, dname, node))
            else:
                if sd is not None:
                    sd.pending.append(("unlink", sname))
                if dd is not None:
                    dd.entries[dname] = node
                    dd.pending.append(("link", dname, node))
            self._record(n, "rename", src, f"ok:{dst}")

    def _move_dirs(self, src, dst):
        for p in [p for p in self._dirs if p == src or p.startswith(src + os.sep)]:
            self._dirs[dst + p[len(src):]] = self._dirs.pop(p)

    def remove(self, path) -> None:
        if self.detached:
            return super().remove(path)
        path = self._abs(path)
        _, n = self._before("remove", path)
        super().remove(path)
        with self._mutex:
            d, name = self._parent(path)
            if d is not None and name in d.entries:
                del d.entries[name]
                d.pending.append(("unlink", name))
            self._record(n, "remove", path, "ok")

    def rmtree(self, path) -> None:
        if self.detached:
            return super().rmtree(path)
        path = self._abs(path)
        _, n = self._before("rmtree", path)
        super().rmtree(path)
        with self._mutex:
            if path in self._dirs:
                self._forget_tree(path)
                d, name = self._parent(path)
                if d is not None:
                    d.entries.pop(name, None)
                    d.pending.append(("unlink", name))
            self._record(n, "rmtree", path, "ok")

    def _forget_tree(self, path):
        d = self._dirs.pop(path)
        for name, node in list(d.entries.items()):
            if isinstance(node, _Dir):
                self._forget_tree(os.path.join(path, name))
            del d.entries[name]
            d.pending.append(("unlink", name))

    def sync_dir(self, path) -> None:
        if self.detached:
            return super().sync_dir(path)
        path = self._abs(path)
        _, n = self._before("sync_dir", path)
        super().sync_dir(path)
        with self._mutex:
            d = self._dirs.get(path)
            if d is not None:
                d.durable = dict(d.entries)
                d.pending = []
            self._record(n, "sync_dir", path, "ok")

    # ------------------------------------------------------------ crash state
    def crash_state(self, target_dir, *, keep_unsynced=0.0, rng=None, dir_ops="prefix", block=4096,
                    torn_tail=True, holes=True):
        """Write into target_dir (created; must not hold files) what `root`
        could hold after a power cut now. Returns a summary dict.

        keep_unsynced: the probability that each unsynced `block` of a file
        survives (0: exactly the synced bytes; 1: everything written).
        holes: a dropped block before a kept one reads as zeros; with
        holes=False the unsynced bytes kept are always a prefix of those
        written (blocks are kept until the first dropped one).
        torn_tail: the last kept block may be cut at any byte.
        dir_ops: "prefix" | "subset" | "none" | "all" -- which of the
        namespace operations since each directory's last sync_dir survive."""
        if dir_ops not in ("prefix", "subset", "none", "all"):
            raise ValueError(f"dir_ops must be prefix, subset, none or all, not {dir_ops!r}")
        rng = rng if rng is not None else random.Random(0)
        target_dir = os.path.abspath(os.fspath(target_dir))
        summary = {"files": 0, "bytes": 0, "unsynced_bytes_dropped": 0, "dir_ops_dropped": 0, "holes": 0}
        with self._mutex:
            self._materialise(self._dirs.get(self.root) or _Dir(), target_dir, keep_unsynced, rng, dir_ops,
                              block, torn_tail, holes, summary)
        return summary

    def _materialise(self, d, target, p, rng, dir_ops, block, torn_tail, holes, summary):
        os.makedirs(target, exist_ok=True)
        entries = dict(d.durable)
        ops = d.pending
        if dir_ops == "all":
            chosen = ops
        elif dir_ops == "none":
            chosen = []
        elif dir_ops == "prefix":
            chosen = ops[:rng.randint(0, len(ops))]
        else:
            chosen = [op for op in ops if rng.random() < 0.5]
        summary["dir_ops_dropped"] += len(ops) - len(chosen)
        for op in chosen:
            if op[0] == "link":
                entries[op[1]] = op[2]
            elif op[0] == "unlink":
                entries.pop(op[1], None)
            else:
                entries.pop(op[1], None)
                entries[op[2]] = op[3]
        for name, node in entries.items():
            path = os.path.join(target, name)
            if isinstance(node, _Dir):
                self._materialise(node, path, p, rng, dir_ops, block, torn_tail, holes, summary)
                continue
            data = self._crash_contents(node, p, rng, block, torn_tail, holes, summary)
            with open(path, "wb") as fh:
                fh.write(data)
            summary["files"] += 1
            summary["bytes"] += len(data)

    @staticmethod
    def _crash_contents(node, p, rng, block, torn_tail, holes, summary):
        data = bytes(node.data)
        if node.old_synced is not None:
            # Truncated and rewritten since the last sync: either the old
            # durable contents, or some of the new ones.
            if rng.random() >= p:
                summary["unsynced_bytes_dropped"] += len(data)
                return node.old_synced
            synced = b""
        else:
            synced = data[:node.synced_len]
        out = bytearray(synced)
        # Bytes a failed fsync covered are not known to be on disk.
        for start, end in node.lost:
            end = min(end, len(out))
            if start < end and rng.random() >= p:
                out[start:end] = bytes(end - start)
                summary["holes"] += 1
        tail_start = len(synced)
        if len(data) > tail_start and p > 0:
            keep_end = tail_start
            kept = []
            pos = tail_start
            while pos < len(data):
                end = min(len(data), (pos // block + 1) * block)
                if p >= 1 or rng.random() < p:
                    kept.append((pos, end))
                    keep_end = end
                elif not holes:
                    break
                pos = end
            if kept and torn_tail and p < 1 and rng.random() < 0.5:
                last_start, last_end = kept[-1]
                keep_end = rng.randint(last_start, last_end)
            out.extend(bytes(keep_end - tail_start))
            for start, end in kept:
                end = min(end, keep_end)
                if start < end:
                    out[start:end] = data[start:end]
            holes = sum(1 for i in range(1, len(kept)) if kept[i][0] != kept[i - 1][1])
            if kept and kept[0][0] != tail_start:
                holes += 1
            summary["holes"] += holes
            summary["unsynced_bytes_dropped"] += len(data) - keep_end
        else:
            summary["unsynced_bytes_dropped"] += len(data) - tail_start
        return bytes(out)


__all__ = ["CrashPoint", "Fault", "FaultFS"]


# ------------------------------------------------- across a process boundary
# A compactor process builds its own FaultFS from a spec in its environment
# (lsm.compactor.runner's LSM_TEST_FAULTS, passed with compactor_env=), so
# faults reach jobs that run in another process. The spec is JSON: a list of
# FaultFS.inject keyword arguments.


def fault_spec(*rules: dict) -> str:
    """The spec of `rules`, each a dict of FaultFS.inject's keyword arguments."""
    for rule in rules:
        Fault(**rule)  # refuse a bad rule here, not in every compactor
    return json.dumps(list(rules))


def fault_fs_from_spec(root, spec: str) -> FaultFS:
    """A FaultFS over `root` with the faults of `spec` (fault_spec's)."""
    try:
        rules = json.loads(spec)
        fs = FaultFS(root)
        for rule in rules:
            fs.inject(**rule)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"bad fault spec {spec!r}: {exc}") from exc
    return fs
