"""An oracle for crash tests: the acknowledged operation history, the model
state after every prefix of it (as an order-independent hash), and
self-checking values. No files; it touches a database only in ``apply``,
through the DB it is given.

A recovered database is correct when its contents equal the model state
after some prefix P of the history with P >= the last acknowledged sync write
(nothing synced lost, no holes, no resurrected deletes, batches whole) and P
<= the operations started (the one in flight may or may not be there).
"""
import hashlib
import random
import struct
import zlib

_MASK = (1 << 64) - 1


def entry_hash(key: bytes, value: bytes) -> int:
    h = hashlib.blake2b(struct.pack("<I", len(key)) + key + value, digest_size=8).digest()
    return int.from_bytes(h, "little")


def state_hash(items) -> int:
    total = 0
    for k, v in items:
        total = (total + entry_hash(k, v)) & _MASK
    return total


def make_value(key: bytes, op_no: int, size: int, rng: random.Random) -> bytes:
    """key|op|payload|crc32: a read can tell a torn or misplaced value alone."""
    head = b"%s|%d|" % (key, op_no)
    payload = rng.randbytes(size // 2).hex().encode()[:size] if size else b""
    body = head + payload
    return body + b"|%08x" % zlib.crc32(body)


def check_value(key: bytes, value: bytes) -> bool:
    body, sep, crc = value.rpartition(b"|")
    if not sep or len(crc) != 8:
        return False
    try:
        ok = int(crc, 16) == zlib.crc32(body)
    except ValueError:
        return False
    return ok and body.startswith(key + b"|")


class History:
    """Mutations in acknowledgement order. Op i (1-based) is a list of
    (key, value-or-None); hashes[i] identifies the state after ops 1..i."""

    def __init__(self):
        self.ops = [None]
        self.syncs = [False]
        self.state = {}
        self.hashes = [0]
        self.last_sync = 0  # index of the last op acknowledged with sync=True

    def __len__(self):
        return len(self.ops) - 1

    def ack(self, mutations, sync=False):
        h = self.hashes[-1]
        state = self.state
        for key, value in mutations:
            old = state.get(key)
            if old is not None:
                h = (h - entry_hash(key, old)) & _MASK
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value
                h = (h + entry_hash(key, value)) & _MASK
        self.ops.append(list(mutations))
        self.syncs.append(bool(sync))
        self.hashes.append(h)
        if sync:
            self.last_sync = len(self.ops) - 1
        return len(self.ops) - 1

    def state_at(self, p):
        state = {}
        for i in range(1, p + 1):
            for key, value in self.ops[i]:
                if value is None:
                    state.pop(key, None)
                else:
                    state[key] = value
        return state

    def match(self, items, lo, hi, pending=None):
        """The prefixes P in [lo, hi] whose state equals items ((k, v) pairs).
        `pending` is an in-flight op (not acknowledged) counted as op hi+1...
        callers pass hi = len(self) and pending=mutations to allow it."""
        h = state_hash(items)
        found = [p for p in range(lo, min(hi, len(self)) + 1) if self.hashes[p] == h]
        if pending is not None and hi > len(self):
            ph = self.hashes[-1]
            for key, value in pending:
                old = self.state.get(key)
                if old is not None:
                    ph = (ph - entry_hash(key, old)) & _MASK
                if value is not None:
                    ph = (ph + entry_hash(key, value)) & _MASK
            # A batch touching one key twice: recompute exactly.
            if len({k for k, _ in pending}) != len(pending):
                s = dict(self.state)
                for key, value in pending:
                    if value is None:
                        s.pop(key, None)
                    else:
                        s[key] = value
                ph = state_hash(s.items())
            if ph == h:
                found.append(len(self) + 1)
        return found

    def explain(self, items, p):
        """Differences between items and the state after p, for a failure message."""
        want = self.state_at(p)
        got = dict(items)
        missing = sorted(k for k in want if k not in got)
        extra = sorted(k for k in got if k not in want)
        wrong = sorted(k for k in want if k in got and got[k] != want[k])
        last_op = {}
        for i in range(1, len(self.ops)):
            for key, _ in self.ops[i]:
                last_op[key] = i
        def show(keys):
            return [(k, last_op.get(k), got.get(k, b"")[:40]) for k in keys[:5]]
        return (f"vs prefix {p}: {len(missing)} missing {show(missing)}, {len(extra)} extra {show(extra)}, "
                f"{len(wrong)} wrong {show(wrong)}")


def workload(seed=1, n_ops=2000, n_keys=400, value_sizes=(0, 16, 100, 300, 800, 2000), sync_share=0.15,
             compact_every=450):
    """A deterministic list of operations:
    ("put", key, value, sync) / ("delete", key, sync) / ("batch", [(k, v|None)], sync) / ("compact", a, b).
    Batches use RocksDB's batched-ops trick: ten keys b"0"+K .. b"9"+K written together."""
    rng = random.Random(seed)
    ops = []
    for i in range(1, n_ops + 1):
        if compact_every and i % compact_every == 0:
            a = rng.randrange(n_keys)
            b = rng.randrange(a, n_keys)
            ops.append(("compact", None, None) if rng.random() < 0.5 else
                       ("compact", b"k%05d" % a, b"k%05d" % b))
            continue
        sync = rng.random() < sync_share
        r = rng.random()
        key = b"k%05d" % rng.randrange(n_keys)
        if r < 0.62:
            ops.append(("put", key, make_value(key, i, rng.choice(value_sizes), rng), sync))
        elif r < 0.80:
            ops.append(("delete", key, sync))
        elif r < 0.90:
            base = b"b%04d" % rng.randrange(n_keys // 4)
            value_del = rng.random() < 0.2
            muts = [(b"%d" % j + base, None if value_del else make_value(b"%d" % j + base, i, 40, rng))
                    for j in range(10)]
            ops.append(("batch", muts, sync))
        else:
            muts = []
            for _ in range(rng.randint(1, 30)):
                k = b"k%05d" % rng.randrange(n_keys)
                muts.append((k, None if rng.random() < 0.2 else make_value(k, i, rng.choice(value_sizes), rng)))
            ops.append(("batch", muts, sync))
    return ops


def mutations(op):
    kind = op[0]
    if kind == "put":
        return [(op[1], op[2])]
    if kind == "delete":
        return [(op[1], None)]
    if kind == "batch":
        return op[1]
    return None


def apply(db, op):
    """Run one workload op against a plyvel-style db; returns its mutations (or None)."""
    kind = op[0]
    if kind == "put":
        db.put(op[1], op[2], sync=op[3])
    elif kind == "delete":
        db.delete(op[1], sync=op[2])
    elif kind == "batch":
        with db.write_batch(sync=op[2]) as wb:
            for key, value in op[1]:
                if value is None:
                    wb.delete(key)
                else:
                    wb.put(key, value)
    elif kind == "compact":
        db.compact_range(start=op[1], stop=op[2])
    else:
        raise ValueError(kind)
    return mutations(op)


def batches_atomic(items):
    """Keys b"0"+K..b"9"+K come and go together with the same op number."""
    groups = {}
    for k, v in items:
        if k[:1].isdigit() and k[1:2] == b"b":
            groups.setdefault(k[1:], []).append(v.split(b"|")[1])
    return [base for base, tags in groups.items() if len(tags) != 10 or len(set(tags)) != 1]


__all__ = ["History", "apply", "batches_atomic", "check_value", "entry_hash", "make_value", "mutations",
           "state_hash", "workload"]
