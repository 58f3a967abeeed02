"""Commit of writes: the queue of writers, group commit (the head writer
writes its followers' batches as one WAL record), and the single put or
delete that, with nobody queued, skips the queue.

Every write passes the write control's admission check first. Knows the
shared state, the memtables (WAL and memtable the write goes to), the write
control and the WriteBatch codec; frames through lsm.record.
"""
import itertools
from collections import deque

from .. import batch as batch_codec

MAX_GROUP_BYTES = 1 << 20

_LENGTHS = batch_codec.LENGTHS
_PUT_HEADERS = batch_codec.PUT_HEADERS


class _Writer:
    __slots__ = ("records", "count", "sync", "done", "error")

    def __init__(self, records, count, sync):
        self.records = records
        self.count = count
        self.sync = sync
        self.done = False
        self.error = None


class Committer:
    def __init__(self, state, memtables, control):
        self._state = state
        self._memtables = memtables
        self._control = control
        self._writers = deque()
        # Looked up once: write_one is the hottest call of the writer.
        self._lock = state.lock

    def write_one(self, kind, key, value, sync=False):
        """One put or delete. When no other writer is queued and the write
        control admits it at once, it is framed and written right here;
        otherwise it joins the queue like any batch."""
        lock = self._lock
        if not lock.acquire(False):
            return self._write_one_queued(kind, key, value, sync)
        try:
            state = self._state
            memtables = self._memtables
            mem = memtables.mem
            # The write control's admission, as it publishes it for this path.
            if (self._writers or state.bg_error is not None or state.closed or state.snapshots
                    or mem.approximate_bytes >= self._control.unqueued_bytes_limit):
                fast = False
            else:
                fast = True
                vs = state.versions
                sequence = vs.last_sequence + 1
                klen = len(key)
                if kind:
                    vlen = len(value)
                    if klen < 128 and vlen < 128:
                        record = _PUT_HEADERS[klen] + key + _LENGTHS[vlen] + value
                    else:
                        record = batch_codec.encode_put(key, value)
                else:
                    record = batch_codec.encode_delete(key)
                framed = memtables.log_writer.encode(batch_codec.encode_header(sequence, 1) + record)
                try:
                    memtables.wal.append(framed)
                    if sync:
                        memtables.wal.sync()
                except BaseException as exc:
                    state.bg_error = exc
                    raise
                mem.add_one((sequence << 8) | kind, key, value)
                vs.last_sequence = sequence
                state.stats["user_bytes"] += len(record)
        finally:
            lock.release()
        if not fast:
            self._write_one_queued(kind, key, value, sync)

    def _write_one_queued(self, kind, key, value, sync):
        record = batch_codec.encode_put(key, value) if kind else batch_codec.encode_delete(key)
        self.write(record, 1, sync)

    def write(self, records: bytes, count: int, sync=False):
        """Apply `count` operations atomically, given as their encoded
        WriteBatch records (without the header). Returns once the WAL record
        is in the OS (and on disk when sync)."""
        state = self._state
        w = _Writer(records, count, sync)
        cv = state.cv
        with cv:
            state.check_open()
            self._writers.append(w)
            while not w.done and w is not self._writers[0]:
                cv.wait()
            if w.done:
                if w.error is not None:
                    raise w.error
                return
            try:
                self._control.make_room()
            except BaseException as exc:
                self._writers.popleft()
                cv.notify_all()
                raise exc
            group = self._build_group(w)
            sequence = state.versions.last_sequence + 1
            if len(group) == 1:
                body = records
            else:
                count = sum(g.count for g in group)
                body = b"".join([g.records for g in group])
            head = batch_codec.encode_header(sequence, count)
            memtables = self._memtables
            # The record as buffers: a batch's bytes go to the WAL as they are.
            framed = memtables.log_writer.frame(head, body)
            framed_len = sum(map(len, framed))
            do_sync = any(g.sync for g in group)
            wal = memtables.wal
            at = wal.size
            # Let other writers queue behind us while the OS does the I/O:
            # they will form the next group (group commit).
            cv.release()
            error = None
            try:
                wal.append_parts(framed)
                if do_sync:
                    wal.sync()
            except BaseException as exc:  # noqa: BLE001 - recorded as the sticky error
                error = exc
            cv.acquire()
            if error is not None:
                # The WAL may now end in a torn record: nothing more may be
                # appended to it, so the error is sticky until reopen.
                state.bg_error = error
            else:
                # Memtable insert and sequence bump under the lock, together:
                # a snapshot taken in between would see neither the batch nor
                # the versions it replaces.
                if state.snapshots:
                    memtables.mem.add_payload(head + body, list(state.snapshots))
                else:
                    # Read back from the WAL when needed: the bytes go now.
                    memtables.mem.add_logged((at, framed_len), count, len(head) + len(body))
                state.versions.last_sequence = sequence + count - 1
                state.stats["user_bytes"] += len(body)
            for g in group:
                self._writers.popleft()
                if g is not w:
                    g.done = True
                    g.error = error
            cv.notify_all()
            if error is not None:
                raise error

    def _build_group(self, head):
        group = [head]
        if len(self._writers) == 1:
            return group
        size = len(head.records)
        limit = MAX_GROUP_BYTES if size > (128 << 10) else size + (128 << 10)
        for w in itertools.islice(self._writers, 1, None):
            if w.sync and not head.sync:
                break  # a sync write must not ride in a non-sync group
            size += len(w.records)
            if size > limit:
                break
            group.append(w)
        return group

    def wait_for_writers(self):
        """Lock held: wait until no writer is queued or has WAL I/O in flight,
        so the WAL may be switched under nobody's feet."""
        while self._writers:
            self._state.cv.wait(0.05)
