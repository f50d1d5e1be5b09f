#!/usr/bin/env python
"""Time ``tfspike.zoo.load(name)`` for every preset whose files are on this machine (issue target: < 5 s on
the CPU, excluding a first download).

    python benchmarks/zoo_load.py [--repeats 3] [NAME ...]

TensorFlow is imported and warmed up first (a one-off cost of any TensorFlow program, not of a preset);
then each preset is loaded ``--repeats`` times in the same process. Prints min and median seconds per
preset, and the ratio of the slowest median to the 5 s target.
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TARGET_S = 5.0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="presets (default: all whose files are here)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    import keras

    from tfspike import zoo
    from tfspike.errors import UserError

    keras.ops.convert_to_tensor([1.0]) * 2  # TensorFlow start-up, outside the timings
    medians = {}
    for name in args.names or zoo.list_presets():
        try:
            zoo.preset_files(name)
        except UserError as e:
            print(f"{name:<24} skipped: {e}")
            continue
        times = []
        for _ in range(args.repeats):
            keras.backend.clear_session()
            t0 = time.perf_counter()
            zoo.load(name)
            times.append(time.perf_counter() - t0)
        medians[name] = statistics.median(times)
        print(f"{name:<24} load min {min(times):.2f} s  median {medians[name]:.2f} s  ({zoo.card(name)['family']})")
    if medians:
        worst = max(medians, key=medians.get)
        print(f"slowest: {worst} {medians[worst]:.2f} s = {medians[worst] / TARGET_S:.2f} x the {TARGET_S:.0f} s target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
