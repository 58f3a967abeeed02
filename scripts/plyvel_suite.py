"""Runs plyvel's own published test suite against plyvel and against lsm.

plyvel ships its tests in its source distribution (test/test_plyvel.py).
This script downloads that distribution with pip, for the plyvel version
installed here, once into a cache inside the virtual environment, and runs
the test module with pytest twice: as published, and with `plyvel` swapped
for `lsm` by the plugin beside this script (plyvel_as_lsm.py). The suite's
code is never copied into the repository.

Some tests check that the operating system refuses what file permissions
forbid; root bypasses those checks. Run as root, the suites run without
root's capabilities to bypass them (as any other user runs them), and plyvel
runs once more as plain root: the tests whose outcome changes there are
listed, with lsm's outcome as root, rather than being hidden in the counts.

Usage: scripts/plyvel_suite [--json] [--cache DIR]
"""
import argparse
import ctypes
import importlib.metadata
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
SUITE_MEMBER = "test/test_plyvel.py"
# Linux capabilities that let root read and write files whatever their mode.
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2
PR_CAPBSET_DROP = 24
WORSE = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}


class SuiteError(Exception):
    """The suite could not be fetched or run at all."""


def fetch_suite(version, cache):
    """Path of plyvel `version`'s test module, downloaded and unpacked once."""
    suite_dir = os.path.join(cache, f"plyvel-{version}")
    test_file = os.path.join(suite_dir, SUITE_MEMBER)
    if os.path.exists(test_file):
        return test_file
    os.makedirs(cache, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as download:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
             f"plyvel=={version}", "-d", download],
            capture_output=True, text=True)
        archives = [n for n in os.listdir(download) if n.endswith((".tar.gz", ".zip"))]
        if proc.returncode != 0 or len(archives) != 1:
            raise SuiteError(f"pip download of plyvel=={version}'s source failed "
                             f"(exit {proc.returncode}, files {os.listdir(download)}): {proc.stderr.strip()}")
        archive = os.path.join(download, archives[0])
        unpacked = tempfile.mkdtemp(dir=cache)
        with tarfile.open(archive) as tar:
            # Only the tests: plyvel's own package beside them would shadow
            # the installed (compiled) plyvel on pytest's import path.
            members = [m for m in tar.getmembers()
                       if m.isfile() and m.name.split("/", 1)[-1].startswith("test/")]
            for m in members:
                m.name = m.name.split("/", 1)[1]
            if SUITE_MEMBER not in {m.name for m in members}:
                raise SuiteError(f"{archive} has no {SUITE_MEMBER}")
            # The "data" filter refuses links and paths leaving the target
            # (on Pythons that have it: 3.12, and 3.10/3.11 security releases).
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(unpacked, members=members, **safe)
        os.rename(unpacked, suite_dir)
    return test_file


def _drop_permission_bypass():
    """In the child, before exec: root keeps its uid but loses the
    capabilities that skip file permission checks, for good."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"prctl(PR_CAPBSET_DROP, {cap}): {os.strerror(err)}")


def can_drop_permission_bypass():
    """None if root's bypass can be dropped here, else why not."""
    try:
        subprocess.run([sys.executable, "-c", ""], preexec_fn=_drop_permission_bypass, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    return None


def run_suite(test_file, *, swap, drop_bypass, tests=None):
    """Each test's (outcome, seconds) and the run's wall seconds."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [HERE, env.get("PYTHONPATH")]))
    suite_dir = os.path.dirname(os.path.dirname(test_file))
    targets = [f"{test_file}::{t}" for t in tests] if tests else [test_file]
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "junit.xml")
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
               "--rootdir", suite_dir, f"--junitxml={report}", *targets]
        if swap:
            cmd[3:3] = ["-p", "plyvel_as_lsm"]
        start = time.monotonic()
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True,
                              preexec_fn=_drop_permission_bypass if drop_bypass else None)
        seconds = time.monotonic() - start
        if not os.path.exists(report):
            raise SuiteError(f"pytest wrote no report (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
        results = _read_junit(report)
    if not results:
        raise SuiteError(f"pytest ran no test (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return results, seconds


def _read_junit(path):
    results = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome = "passed"
        for child in case:
            tag = {"failure": "failed", "error": "error", "skipped": "skipped"}.get(child.tag)
            if tag and WORSE[tag] > WORSE[outcome]:
                outcome = tag
        name = case.get("name")
        seconds = float(case.get("time") or 0)
        if name in results:  # a teardown error is reported as a second case
            previous, earlier = results[name]
            outcome = max(previous, outcome, key=WORSE.get)
            seconds += earlier
        results[name] = (outcome, seconds)
    return results


def summary(label, version, results, seconds):
    by_outcome = {o: sorted(t for t, (got, _) in results.items() if got == o) for o in WORSE}
    return {"library": label, "version": version, "seconds": round(seconds, 1), **by_outcome,
            "durations": {t: round(s, 2) for t, (_, s) in results.items()}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a report")
    parser.add_argument("--cache", default=os.path.join(sys.prefix, "plyvel-suite"),
                        help="where plyvel's source distribution is kept (default: in the virtual environment)")
    args = parser.parse_args(argv)

    import lsm
    plyvel_version = importlib.metadata.version("plyvel")
    test_file = fetch_suite(plyvel_version, args.cache)
    is_root = os.geteuid() == 0
    why_not = can_drop_permission_bypass() if is_root else None
    drop = is_root and why_not is None
    if not is_root:
        checks = f"enforced (running as uid {os.geteuid()})"
    elif drop:
        checks = "enforced (root, without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH)"
    else:
        checks = f"skipped: running as root, whose bypass could not be dropped ({why_not})"

    plyvel_results, plyvel_seconds = run_suite(test_file, swap=False, drop_bypass=drop)
    lsm_results, lsm_seconds = run_suite(test_file, swap=True, drop_bypass=drop)
    root_differences = {}
    if drop:
        plyvel_as_root, _ = run_suite(test_file, swap=False, drop_bypass=False)
        changed = sorted(t for t in plyvel_results if plyvel_as_root.get(t, ("missing",))[0] != plyvel_results[t][0])
        lsm_as_root = run_suite(test_file, swap=True, drop_bypass=False, tests=changed)[0] if changed else {}
        for t in changed:
            root_differences[t] = {
                "plyvel": {"as_root": plyvel_as_root.get(t, ("missing",))[0], "enforced": plyvel_results[t][0]},
                "lsm": {"as_root": lsm_as_root.get(t, ("missing",))[0], "enforced": lsm_results[t][0]},
            }

    report = {
        "suite": f"plyvel {plyvel_version} source distribution, {SUITE_MEMBER}",
        "permission_checks": checks,
        "plyvel": summary("plyvel", plyvel_version, plyvel_results, plyvel_seconds),
        "lsm": summary("lsm", lsm.__version__, lsm_results, lsm_seconds),
        "root_differences": root_differences,
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(format_report(report))
    failed = report["plyvel"]["failed"] + report["plyvel"]["error"]
    return 1 if failed else 0


def format_report(report):
    lines = [f"{report['suite']}", f"permission checks: {report['permission_checks']}"]
    for side in (report["plyvel"], report["lsm"]):
        counts = ", ".join(f"{len(side[o])} {o}" for o in ("passed", "failed", "skipped", "error")
                           if side[o] or o != "error")
        lines.append(f"  {side['library'] + ' ' + side['version']:<16} {counts:<40} {side['seconds']:6.1f} s")
        for outcome in ("failed", "error", "skipped"):
            if side[outcome]:
                lines.append(f"      {outcome}: {', '.join(side[outcome])}")
    slow = sorted(report["lsm"]["durations"].items(), key=lambda kv: -kv[1])[:3]
    lines.append("  slowest under lsm: " + ", ".join(f"{t} {s:.1f} s" for t, s in slow))
    if report["root_differences"]:
        lines.append("run as root, which skips permission checks, these tests change outcome:")
        for test, sides in report["root_differences"].items():
            lines.append(f"  {test}: " + "; ".join(
                f"{lib} {o['as_root']} as root ({o['enforced']} with permission checks)" for lib, o in sides.items()))
    elif report["permission_checks"].startswith("enforced (root"):
        lines.append("run as root, which skips permission checks, no test changes outcome")
    return "\n".join(lines)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SuiteError as exc:
        print(f"plyvel_suite: {exc}", file=sys.stderr)
        sys.exit(2)
