"""Run ``python -m wicbox_bridge ...`` under cProfile in every thread (the mailbox workers too; plain
``python -m cProfile`` sees the main thread only) and save the merged statistics.

    python -m tools.bench.thread_profile OUT.pstats -- --config FILE run --max-mails N --json
"""

from __future__ import annotations

import cProfile
import pstats
import runpy
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any


def profiled_main(out: Path, argv: list[str]) -> int:
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    def start_in_thread(frame: FrameType, event: str, arg: Any) -> None:
        profile = cProfile.Profile()
        with lock:
            profiles.append(profile)
        profile.enable()  # replaces this hook in the new thread

    main = cProfile.Profile()
    profiles.append(main)
    threading.setprofile(start_in_thread)
    sys.argv = ["wicbox_bridge", *argv]
    code: int = 0
    main.enable()
    try:
        runpy.run_module("wicbox_bridge", run_name="__main__", alter_sys=True)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        main.disable()
        threading.setprofile(None)  # type: ignore[arg-type]  # typeshed wants a callable; None resets
        for profile in profiles:
            profile.disable()
        stats = pstats.Stats(profiles[0])
        for profile in profiles[1:]:
            stats.add(profile)
        stats.dump_stats(str(out))
    return code


def main() -> int:
    if len(sys.argv) < 3 or sys.argv[2] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    return profiled_main(Path(sys.argv[1]), sys.argv[3:])


if __name__ == "__main__":
    sys.exit(main())
