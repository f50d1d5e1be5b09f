"""Shared helpers of the benchmarks: alternating A/B rounds, min/median summaries, the CPU model,
``--json`` records, the machine's measured fp32 matmul rate (for a roofline) and the subprocess that
runs a reference implementation under its own Python (:class:`ReferenceProcess`).

Only :func:`matmul_rate` imports TensorFlow (when called), so the rest stays usable in tests and in
``--help``.
"""

import json
import os
import platform
import statistics
import subprocess
import tempfile
import time

from tfspike.errors import UserError


def cpu_model():
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere) and its core count."""
    name = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name or platform.processor() or 'unknown CPU'} ({os.cpu_count()} logical cores)"


def load_average():
    """The 1-minute load average, or None where the OS has none."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def alternate(runs, rounds):
    """Run the callables of ``runs`` (name -> callable returning a list of seconds) in alternating rounds.

    Round r runs them in the given order for even r and in reverse for odd r (A B, B A, A B, ...), so a
    slow drift of the machine's load hits both sides alike. Returns name -> all seconds, in run order.
    """
    names = list(runs)
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            times[name].extend(float(t) for t in runs[name]())
    return times


def summary(seconds):
    """``{"min": ..., "median": ..., "n": ...}`` of a non-empty list of seconds."""
    return {"min": min(seconds), "median": statistics.median(seconds), "n": len(seconds)}


def make_record(workload, tfspike_s, ideal_s, reference_s=None, **extra):
    """One ``--json`` record: medians, mins, ``ratio`` (reference / tfspike, medians; None without a
    reference) and ``roofline_ratio`` (tfspike median / ideal time; None without an ideal time), plus
    ``extra`` keys."""
    ts = summary(tfspike_s)
    record = {"workload": workload, "tfspike_median_s": ts["median"], "tfspike_min_s": ts["min"],
              "tfspike_n": ts["n"], "reference_median_s": None, "reference_min_s": None, "reference_n": 0,
              "ratio": None, "ideal_s": ideal_s,
              "roofline_ratio": None if ideal_s is None else ts["median"] / ideal_s}
    if reference_s:
        rs = summary(reference_s)
        record.update(reference_median_s=rs["median"], reference_min_s=rs["min"], reference_n=rs["n"],
                      ratio=rs["median"] / ts["median"])
    record.update(extra)
    return record


def write_records(path, records):
    """Write ``records`` (a list of dicts) to ``path`` as a JSON list."""
    with open(path, "w") as f:
        json.dump(list(records), f, indent=1)
        f.write("\n")


def matmul_rate(rows=256, n=256, chain=64, repeats=5):
    """The best fp32 rate (FLOP/s) of ``chain`` chained ``(rows, n) @ (n, n)`` matmuls under XLA.

    Each product feeds the next (so none can be skipped or overlapped), the matrix is orthogonal (so
    values neither vanish nor overflow), and a product counts ``2 * rows * n * n`` FLOPs. Compiled
    once; the best of ``repeats`` calls is the rate a matmul of this shape can reach here and now.
    """
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    w = tf.constant(np.linalg.qr(rng.standard_normal((n, n)))[0].astype("float32"))
    x0 = tf.constant(rng.standard_normal((rows, n)).astype("float32"))

    @tf.function(jit_compile=True)
    def chained(x):
        return tf.while_loop(lambda i, _: i < chain, lambda i, y: (i + 1, tf.matmul(y, w)),
                             (tf.constant(0), x), maximum_iterations=chain)[1]

    chained(x0).numpy()  # compile
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        chained(x0).numpy()
        best = min(best, time.perf_counter() - t0)
    return chain * 2.0 * rows * n * n / best


class ReferenceProcess:
    """A reference implementation driven in a subprocess of ``python`` (``--reference_python``).

    ``driver`` is the source of a script run as ``python -c driver reference_dir``. Protocol: one JSON
    command per stdin line; each reply is one stdout line starting with ``"@@ "`` (anything else the
    reference prints is ignored); the first reply, sent unasked, is ``info``. A driver that stops
    raises a one-line error quoting the last line of its stderr.
    """

    def __init__(self, python, driver, reference_dir):
        self.log = tempfile.TemporaryFile(mode="w+")
        try:
            self.proc = subprocess.Popen([python, "-c", driver, reference_dir], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=self.log, text=True, bufsize=1)
        except OSError as e:
            raise UserError(f"--reference_python {python!r} does not run: {e.strerror}")
        self.info = self._reply()

    def _reply(self):
        for line in self.proc.stdout:
            if line.startswith("@@ "):
                return json.loads(line[3:])
        self.log.seek(0)
        tail = [s for s in self.log.read().strip().splitlines() if s.strip()][-1:] or ["no output"]
        raise UserError(f"the reference subprocess stopped: {tail[0].strip()}")

    def ask(self, **command):
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        self.log.close()
