"""Run Python code as if some installed packages were not installed: an import finder placed first on
``sys.meta_path`` refuses every module whose top-level name is blocked, as a missing package would
(``ModuleNotFoundError``), so that code which only tries an optional import goes on without it.

    python import_blocker.py --block zmq,numba --report out.json -c "CODE" [ARG...]
    python import_blocker.py --block google,ccxt --report out.json -m market_data_tick_handler.main [ARG...]

``--report``: a JSON file written at exit: ``refused`` (the blocked top-level names something tried to
import) and ``loaded`` (blocked top-level names found in ``sys.modules`` at exit: always empty unless a
module was imported before the finder was in place, which is refused at start with exit code 3).
"""

from __future__ import annotations

import argparse
import atexit
import importlib.abc
import json
import runpy
import sys
from pathlib import Path


class RefuseBlocked(importlib.abc.MetaPathFinder):
    def __init__(self, blocked: frozenset[str]) -> None:
        self.blocked = blocked
        self.refused: set[str] = set()

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.partition(".")[0]
        if top in self.blocked:
            self.refused.add(top)
            raise ModuleNotFoundError(
                f"No module named {fullname!r} (blocked: not in this install)", name=fullname
            )
        return None


def loaded(blocked: frozenset[str]) -> list[str]:
    return sorted({name.partition(".")[0] for name in list(sys.modules)} & blocked)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--block", required=True, help="top-level module names, comma-separated")
    parser.add_argument("--report", required=True, type=Path)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("-c", dest="code")
    what.add_argument("-m", dest="module")
    args, rest = parser.parse_known_args()
    blocked = frozenset(filter(None, args.block.split(",")))
    already = loaded(blocked)
    if already:
        print(f"import_blocker: already imported before the finder: {already}", file=sys.stderr)
        sys.exit(3)
    finder = RefuseBlocked(blocked)
    sys.meta_path.insert(0, finder)

    def report() -> None:
        args.report.write_text(json.dumps({"refused": sorted(finder.refused), "loaded": loaded(blocked)}))

    atexit.register(report)
    if args.code is not None:
        sys.argv = ["-c", *rest]
        exec(compile(args.code, "<import_blocker -c>", "exec"), {"__name__": "__main__"})
    else:
        sys.argv = [args.module, *rest]
        runpy.run_module(args.module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
