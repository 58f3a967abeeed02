"""Real-process kills: a child process runs a
deterministic workload (puts, deletes, batches, some sync=True, a
compact_range now and then) and prints the index of every operation after it
returns. The parent SIGKILLs it at random moments -- during open and
recovery, mid-write, mid-flush, mid-compaction -- 32 times on the same
database, and after each kill reopens it and requires exactly the state
after the last acknowledged operation or after the one in flight. There is
no power loss, so sync=False writes must survive too.

Some rounds run with two compactor processes: the writer dies with jobs in
flight, the directory must reopen at once (the compactors must not hold the
LOCK) and the compactors must end by themselves.
"""
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

import plyvel

import lsm
from lsm.testing import model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_OPS = 15000
WORKLOAD = dict(seed=12, n_ops=N_OPS, n_keys=1500, value_sizes=(0, 10, 60, 200, 700), sync_share=0.1,
                compact_every=700)
OPEN = dict(create_if_missing=True, write_buffer_size=64 << 10, manifest_limit=4096)

CHILD = r'''
import os, sys
sys.path.insert(0, sys.argv[1])
import lsm
from lsm.testing import model
path, first, compactors = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ops = model.workload(**%r)
out = sys.stdout
out.write("opening\n")
out.flush()
db = lsm.DB(path, compactors=compactors, **%r)
out.write("open\n")
out.flush()
for i in range(first, len(ops)):
    model.apply(db, ops[i])
    out.write("%%d\n" %% i)
    out.flush()
db.close()
out.write("done\n")
''' % (WORKLOAD, OPEN)


def _children_of(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Killer:
    def __init__(self, tmp_path):
        self.path = str(tmp_path / "db")
        self.script = tmp_path / "child.py"
        self.script.write_text(CHILD)
        self.ops = model.workload(**WORKLOAD)
        self.state = {}
        self.next_op = 0
        self.kills = {"during-open": 0, "writing": 0, "with-compactors": 0}
        self.in_doubt_applied = 0

    def round(self, rng, compactors=0, during_open=False):
        proc = subprocess.Popen([sys.executable, str(self.script), ROOT, self.path, str(self.next_op),
                                 str(compactors)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = []
        opening = threading.Event()
        opened = threading.Event()
        target = None if during_open else rng.randint(1, 300)
        enough = threading.Event()

        def read():
            for line in proc.stdout:
                lines.append(line.strip())
                if line.startswith("opening"):
                    opening.set()
                elif line.startswith("open"):
                    opened.set()
                elif target is not None and len(lines) > target:
                    enough.set()
            enough.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        workers = []
        if target is None:
            # During open and recovery: a random moment after "opening".
            opening.wait(60)
            time.sleep(rng.uniform(0.0, 0.03))
            kind = "during-open" if not opened.is_set() else "writing"
        else:
            enough.wait(60)
            kind = "writing"
            if compactors:
                workers = _children_of(proc.pid)
        assert proc.poll() is None, f"child ended before it was killed: {proc.stderr.read()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        reader.join(30)
        err = proc.stderr.read()
        proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL, err
        self.kills[kind] += 1
        if compactors:
            self.kills["with-compactors"] += 1
        acked = [int(x) for x in lines if x.isdigit()]
        assert acked == list(range(self.next_op, self.next_op + len(acked))), "acks out of order"
        for i in acked:
            muts = model.mutations(self.ops[i])
            if muts:
                self._apply(self.state, muts)
        last = acked[-1] if acked else self.next_op - 1
        # Reopen at once: compactors of the dead writer may still be running
        # (they must not hold the LOCK).
        lsm.DB(self.path, compactors=0, **OPEN).close() if workers else None
        self.verify(last)
        if workers:
            deadline = time.monotonic() + 15
            while any(_alive(p) for p in workers) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not any(_alive(p) for p in workers), "compactor processes outlived their writer"

    @staticmethod
    def _apply(state, muts):
        for key, value in muts:
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value

    def verify(self, last):
        # On a copy: the next child must do the real recovery of what the kill
        # left (and may itself be killed in the middle of it).
        copy = self.path + "-check"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(self.path, copy)
        db = lsm.DB(copy, compactors=0, **OPEN)
        try:
            got = dict(db.iterator())
            sample = random.Random(last).sample(sorted(self.state), min(100, len(self.state)))
            for key in sample:
                assert db.get(key) == got.get(key)
        finally:
            db.close()
        for key, value in got.items():
            assert model.check_value(key, value), f"damaged value for {key!r}"
        assert not model.batches_atomic(got.items()), "a batch survived in part"
        if got == self.state:
            self.next_op = last + 1
            return
        # The operation in flight when the child died may have landed.
        muts = model.mutations(self.ops[last + 1]) or []
        self._apply(self.state, muts)
        missing = [k for k in self.state if k not in got][:5]
        wrong = [k for k in self.state if k in got and got[k] != self.state[k]][:5]
        extra = [k for k in got if k not in self.state][:5]
        assert got == self.state, (f"after op {last} (or {last + 1}): missing {missing}, wrong {wrong}, "
                                   f"extra {extra}")
        self.in_doubt_applied += 1
        self.next_op = last + 2


def test_sigkill_at_random_moments_loses_no_acknowledged_write(tmp_path):
    killer = Killer(tmp_path)
    rng = random.Random(2024)
    for i in range(32):
        killer.round(rng, compactors=2 if i % 6 == 5 else 0, during_open=i % 4 == 1)
    total = sum(v for k, v in killer.kills.items() if k != "with-compactors")
    print(f"\nSIGKILLs: {total} {killer.kills}; ops acknowledged {killer.next_op}; "
          f"in-flight op found applied {killer.in_doubt_applied} times")
    assert total >= 30 and killer.kills["during-open"] >= 3 and killer.kills["with-compactors"] >= 5
    assert killer.next_op > 1500
    # What survived 32 kills is a valid LevelDB database, too (once recovered).
    lsm.DB(killer.path, compactors=0).close()
    pdb = plyvel.DB(killer.path, paranoid_checks=True)
    try:
        assert dict(pdb.iterator(verify_checksums=True)) == killer.state
    finally:
        pdb.close()
