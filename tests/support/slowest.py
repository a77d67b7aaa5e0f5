"""The end of `make test`: the slowest tests of all its pytest runs, and their totals.

    python -m tests.support.slowest REPORT.xml [REPORT.xml ...]

Each REPORT is a run's `--junitxml`; a test's time is its setup, call and teardown together.
The last line is the plain `total: N passed, N failed, N skipped` of every run together.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

SHOWN = 15


def main(paths: list[str]) -> int:
    cases: list[tuple[float, str, str]] = []
    failed = skipped = 0
    for path in paths:
        run = Path(path).stem
        for case in ET.parse(path).getroot().iter("testcase"):
            cases.append((float(case.get("time", 0.0)), f"{case.get('classname')}::{case.get('name')}", run))
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
            elif case.find("skipped") is not None:
                skipped += 1
    print(f"\n{SHOWN} slowest tests of {len(cases)} ({', '.join(Path(p).stem for p in paths)}):")
    for seconds, name, run in sorted(cases, reverse=True)[:SHOWN]:
        print(f"{seconds:8.1f}s  {run:<9} {name}")
    print(f"total: {len(cases) - failed - skipped} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
