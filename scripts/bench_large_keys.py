"""Keys of very different, very large sizes: 1000 keys of 0 to 100 KB (key i
is i * 100 zero bytes, 50 MB of keys, as in plyvel's own
test_approximate_sizes) written in one batch, sized, reopened, read,
compacted and scanned, on lsm and on LevelDB (plyvel) in turn.

    .venv/bin/python scripts/bench_large_keys.py [--engines lsm,plyvel]

Prints each engine's wall time and lsm's as a multiple of plyvel's.
"""
import argparse
import importlib
import os
import tempfile
import time

VALUE = b"a" * 100
KEYS = [bytes(i) * 100 for i in range(1000)]


def run(module_name: str, directory: str) -> float:
    engine = importlib.import_module(module_name)
    path = os.path.join(directory, module_name)
    began = time.perf_counter()
    db = engine.DB(path, create_if_missing=True)
    with db.write_batch() as batch:
        for key in KEYS:
            batch.put(key, VALUE)
    db.approximate_sizes((b"1", b"2"), (b"", b"\xff"))
    db.close()
    db = engine.DB(path)
    for key in KEYS[::7]:
        if db.get(key) != VALUE:
            raise SystemExit(f"{module_name}: a {len(key)}-byte key read back wrong")
    db.compact_range()
    count = sum(1 for _ in db)
    if count != len(KEYS):
        raise SystemExit(f"{module_name}: a scan found {count} keys, not {len(KEYS)}")
    db.close()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", default="lsm,plyvel", help="comma-separated, among lsm and plyvel")
    args = parser.parse_args()
    seconds = {}
    with tempfile.TemporaryDirectory() as directory:
        for name in args.engines.split(","):
            seconds[name] = run(name, directory)
            print(f"{name:8} {seconds[name]:6.2f} s")
    if "lsm" in seconds and "plyvel" in seconds:
        print(f"lsm/plyvel time: {seconds['lsm'] / seconds['plyvel']:.2f}x")


if __name__ == "__main__":
    main()
