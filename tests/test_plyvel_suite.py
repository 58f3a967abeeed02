"""plyvel's own test suite, run by scripts/plyvel_suite, against both libraries.

plyvel must pass all of it; lsm may fail only the tests that the README
lists, with their reasons, under "In plyvel's test suite", and the README
must not list a test that passes. Tests whose outcome changes when run as
root must be named there too.
"""
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTION = "### In plyvel's test suite"


def _readme_section():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    start = text.index(SECTION) + len(SECTION)
    end = text.find("\n#", start)
    return text[start:] if end < 0 else text[start:end]


def _documented_failures(section):
    """The tests the README's list says fail under lsm: `- `test_x`: why`."""
    return set(re.findall(r"^- `(test_\w+)`: \S", section, re.MULTILINE))


def test_plyvel_suite_passes_against_lsm_but_for_the_documented_differences():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "plyvel_suite.py"), "--json"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.stdout, f"plyvel_suite printed nothing (exit {proc.returncode}): {proc.stderr}"
    report = json.loads(proc.stdout)
    plyvel, lsm = report["plyvel"], report["lsm"]
    assert plyvel["passed"], report
    assert plyvel["failed"] == [] and plyvel["error"] == [], report
    assert proc.returncode == 0, proc.stderr
    assert lsm["skipped"] == plyvel["skipped"]
    assert len(lsm["passed"]) + len(lsm["failed"]) + len(lsm["error"]) == len(plyvel["passed"])

    section = _readme_section()
    documented = _documented_failures(section)
    assert set(lsm["failed"] + lsm["error"]) == documented, (
        "failures under lsm differ from the README's list", lsm["failed"] + lsm["error"], sorted(documented))
    for test in report["root_differences"]:
        assert f"`{test}`" in section, f"{test} changes outcome as root but the README does not say so"
