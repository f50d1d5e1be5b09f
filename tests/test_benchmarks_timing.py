"""The benchmark helpers of benchmarks/_timing.py and benchmarks/resonate_step.py: the FLOP formula
against a brute-force count, the --json record format, the A/B alternation order and the one-line
errors. Synthetic and fast; nothing here times anything."""

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from tfspike.errors import UserError


def _load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


timing = _load("_timing")
resonate = _load("resonate_step")


class CountingMatmul:
    """A scalar-loop matmul that counts every multiply and every add it performs."""

    def __init__(self):
        self.flops = 0

    def __call__(self, a, b):
        rows, inner = a.shape
        assert b.shape[0] == inner
        out = np.zeros((rows, b.shape[1]))
        for i in range(rows):
            for j in range(b.shape[1]):
                acc = 0.0
                for k in range(inner):
                    acc += a[i, k] * b[k, j]
                    self.flops += 2  # one multiply, one add
                out[i, j] = acc
        return out


def brute_force_step_flops(batch, steps, inputs, hidden, outputs, seed=0):
    """Run a tiny RSNN step the way the reference does (one joint matmul of [x_t, z_{t-1}] per step,
    a readout matmul per step), then its backward matmuls (both operands of every product), all with
    :class:`CountingMatmul`; return the count."""
    rng = np.random.default_rng(seed)
    mm = CountingMatmul()
    kernel = rng.standard_normal((inputs + hidden, hidden))
    readout = rng.standard_normal((hidden, outputs))
    x = rng.standard_normal((steps, batch, inputs))
    z = np.zeros((batch, hidden))
    saved = []
    for t in range(steps):
        joint = np.concatenate([x[t], z], axis=1)
        current = mm(joint, kernel)
        np.testing.assert_allclose(current, joint @ kernel, rtol=1e-12, atol=1e-12)  # it is a matmul
        z = (current > 0).astype(float)
        mm(z, readout)
        saved.append((joint, z))
    for joint, z in reversed(saved):
        d_out = rng.standard_normal((batch, outputs))
        d_z = mm(d_out, readout.T)  # gradient of the readout's input
        mm(z.T, d_out)  # gradient of the readout kernel
        d_current = d_z * rng.standard_normal(d_z.shape)  # some surrogate factor
        mm(d_current, kernel.T)  # gradient of [x_t, z_{t-1}]
        mm(joint.T, d_current)  # gradient of the joint kernel
    return mm.flops


@pytest.mark.parametrize("shape", [(2, 3, 2, 3, 2), (1, 4, 1, 2, 3), (3, 2, 4, 1, 5)])
def test_train_step_flops_matches_a_brute_force_count(shape):
    assert resonate.train_step_flops(*shape) == brute_force_step_flops(*shape)


def test_train_step_flops_of_the_smnist_network():
    # 3 x 2 x 256 x 784 x (1 x 256 + 256 x 256 + 256 x 10), worked out by hand
    assert resonate.train_step_flops(256, 784, 1, 256, 10) == 82_311_118_848


def test_record_format_and_ratios(tmp_path):
    rec = timing.make_record("smnist", [2.0, 1.0, 4.0], 0.5, reference_s=[6.0, 3.0, 9.0, 5.0], neuron="BRF")
    assert rec["tfspike_median_s"] == 2.0 and rec["tfspike_min_s"] == 1.0 and rec["tfspike_n"] == 3
    assert rec["reference_median_s"] == 5.5 and rec["reference_min_s"] == 3.0 and rec["reference_n"] == 4
    assert rec["ratio"] == pytest.approx(2.75)  # 5.5 / 2.0
    assert rec["roofline_ratio"] == pytest.approx(4.0)  # 2.0 / 0.5
    assert rec["neuron"] == "BRF"
    path = tmp_path / "r.json"
    timing.write_records(str(path), [rec, timing.make_record("ecg", [0.1], 0.05)])
    back = json.loads(path.read_text())
    assert isinstance(back, list) and len(back) == 2
    for r in back:
        assert {"workload", "tfspike_median_s", "reference_median_s", "ratio", "roofline_ratio"} <= set(r)
    assert back[0] == rec
    assert back[1]["reference_median_s"] is None and back[1]["ratio"] is None
    assert back[1]["roofline_ratio"] == pytest.approx(2.0)


def test_alternate_reverses_the_order_every_other_round():
    calls = []

    def side(name, seconds):
        def run():
            calls.append(name)
            return [seconds, seconds + 1]
        return run

    times = timing.alternate({"a": side("a", 1.0), "b": side("b", 10.0)}, rounds=3)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert times == {"a": [1.0, 2.0] * 3, "b": [10.0, 11.0] * 3}
    assert timing.summary([3.0, 1.0, 2.0]) == {"min": 1.0, "median": 2.0, "n": 3}


@pytest.mark.parametrize("argv, words", [
    (["--tasks", "mnist"], "unknown task"),
    (["--rounds", "0"], "--rounds"),
    (["--reference_dir", "."], "go together"),
    (["--neuron", "ALIF", "--reference_dir", ".", "--reference_python", sys.executable], "not ALIF"),
])
def test_bad_flags_raise_user_error(argv, words):
    with pytest.raises(UserError, match=words):
        resonate.parse_args(argv)


def test_reference_dir_must_be_a_checkout(tmp_path):
    with pytest.raises(UserError, match="not a brf-neurons checkout"):
        resonate.parse_args(["--reference_dir", str(tmp_path), "--reference_python", sys.executable])


def test_bad_flag_is_one_line_and_exit_2():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "resonate_step.py"), "--tasks", "nope"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("error: unknown task")


def test_reference_driver_compiles():
    compile(resonate.REFERENCE_DRIVER, "reference_driver", "exec")


def test_cpu_model_names_the_cores():
    assert "logical cores" in timing.cpu_model()


ttfs_bench = _load("ttfs_vs_relu")


@pytest.mark.parametrize("argv, words", [
    (["--epoch_rounds", "0"], "--epoch_rounds"),
    (["--epoch", "--reference_python", sys.executable], "go together"),
    (["--reference_dir", ".", "--reference_python", sys.executable], "add --epoch"),
    (["--json", "r.json"], "add --epoch"),
])
def test_ttfs_bench_bad_flags_raise_user_error(argv, words):
    with pytest.raises(UserError, match=words):
        ttfs_bench.parse_args(argv)


def test_ttfs_bench_reference_dir_must_be_a_checkout(tmp_path):
    (tmp_path / "model.py").write_text("def something_else(): pass\n")
    with pytest.raises(UserError, match="not an equivalent-training-ReLUnetwork-SNN checkout"):
        ttfs_bench.parse_args(["--epoch", "--reference_dir", str(tmp_path), "--reference_python", sys.executable])


def test_reference_process_round_trip_and_a_driver_that_stops(tmp_path):
    echo = ("import json, sys\n"
            "print('chatter the protocol ignores')\n"
            "print('@@ ' + json.dumps({'dir': sys.argv[1]}), flush=True)\n"
            "for line in sys.stdin:\n"
            "    c = json.loads(line)\n"
            "    if c['cmd'] == 'quit':\n"
            "        break\n"
            "    if c['cmd'] == 'fail':\n"
            "        raise SystemExit('the reference needs tf_keras')\n"
            "    print('@@ ' + json.dumps({'twice': 2 * c['x']}), flush=True)\n")
    ref = timing.ReferenceProcess(sys.executable, echo, str(tmp_path))
    assert ref.info == {"dir": str(tmp_path)}
    assert ref.ask(cmd="double", x=21) == {"twice": 42}
    ref.close()
    assert ref.proc.returncode == 0
    ref = timing.ReferenceProcess(sys.executable, echo, str(tmp_path))
    with pytest.raises(UserError, match="^the reference subprocess stopped: the reference needs tf_keras$"):
        ref.ask(cmd="fail")
    ref.close()
    with pytest.raises(UserError, match="does not run"):
        timing.ReferenceProcess(str(tmp_path / "no-python"), echo, str(tmp_path))
