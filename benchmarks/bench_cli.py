"""Start-up cost of the kernel: `detcore list-components` wall time and `import detcore`.

Targets (issue 2): list-components under 0.3 s with every package installed; `import detcore`
must not import torch. Prints the medians, the interpreter's own start-up measured in the
same run, and the ratio to the target.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

TARGET_S = 0.3
REPEATS = 7


def wall(cmd: list[str]) -> float:
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    bare = wall([sys.executable, "-c", "pass"])
    listing = wall([sys.executable, "-m", "detcore.cli.main", "list-components"])
    listing_json = wall([sys.executable, "-m", "detcore.cli.main", "list-components", "--json"])
    imported = subprocess.run(
        [sys.executable, "-c", "import sys, detcore; print('torch' in sys.modules)"],
        capture_output=True, text=True, check=True).stdout.strip()
    count = subprocess.run([sys.executable, "-m", "detcore.cli.main", "list-components", "--json"],
                           capture_output=True, text=True, check=True).stdout.count('"kind"')
    print(f"python -c pass              {bare * 1000:7.1f} ms (interpreter start-up, reference)")
    print(f"detcore list-components     {listing * 1000:7.1f} ms ({count} components)"
          f"  ratio to 0.3 s target: {listing / TARGET_S:.2f}x  minus start-up: {(listing - bare) * 1000:.1f} ms")
    print(f"detcore list-components --json {listing_json * 1000:7.1f} ms")
    print(f"import detcore imports torch: {imported}  (target: False)")


if __name__ == "__main__":
    main()
