"""``irods-ingest worker`` with every thread under cProfile (plain ``-m cProfile`` sees only the main thread).

Used by ``bench/run.py --profile``: each thread writes ``<BENCH_PROFILE_OUT>.<thread name>.prof`` when it ends
(the worker threads end at the warm shutdown the harness asks for with SIGTERM).
"""

from __future__ import annotations

import cProfile
import os
import sys
import threading

OUT = os.environ["BENCH_PROFILE_OUT"]
_original_run = threading.Thread.run


def _profiled_run(self: threading.Thread) -> None:
    profile = cProfile.Profile()
    profile.enable()
    try:
        _original_run(self)
    finally:
        profile.disable()
        profile.dump_stats(f"{OUT}.{self.name.replace('/', '_')}.prof")


threading.Thread.run = _profiled_run  # type: ignore[method-assign]

if __name__ == "__main__":
    from irods_ingest.cli import main

    raise SystemExit(main(["worker", *sys.argv[1:]]))
