"""Nothing lost: a training run SIGKILLed after its first epoch resumes when the same command runs
again — the finished epochs are not trained twice, the run continues its own record, and no truncated
or temporary file is left behind. Two families: TTFS (ReLU twin) and BRF."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from datafiles import write_mnist_npz
from records import record_file, results
from tfspike.cli.common import run_dirs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env():
    return dict(os.environ, TFSPIKE_OFFLINE="1", TF_CPP_MIN_LOG_LEVEL="3", CI="1")


def _kill_after_first_epoch(argv, backup_dir, timeout=600):
    """Start ``main.py argv``, SIGKILL it once its backup records a finished epoch; returns that epoch."""
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "main.py"), *argv], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    meta = os.path.join(backup_dir, "training_metadata.json")
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"the run ended before it could be killed:\n{proc.stdout.read()[-3000:]}")
            try:
                with open(meta) as f:
                    if json.load(f)["epoch"] >= 1:
                        break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.02)
        else:
            pytest.fail("no epoch finished in time")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    with open(meta) as f:  # the backup the rerun starts from (may be the second epoch if it was quick)
        return json.load(f)["epoch"]


def _rerun(argv):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *argv], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return proc.stdout


def _assert_nothing_truncated(logs):
    for folder, _, files in os.walk(logs):
        for name in files:
            path = os.path.join(folder, name)
            assert ".tmp" not in name, f"temporary file left behind: {path}"
            if name.endswith(".json"):
                with open(path) as f:
                    json.load(f)  # complete JSON
            if name.endswith((".h5", ".keras")):
                assert os.path.getsize(path) > 0, path


def test_ttfs_run_killed_after_an_epoch_resumes_its_record(tmp_path):
    write_mnist_npz(tmp_path, n_train=3000, n_test=100)
    logs = tmp_path / "logs"
    argv = ["--model_type=ReLU", "--model_name=FC2_k", "--data_name=MNIST", f"--data_dir={tmp_path}",
            f"--logging_dir={logs}", "--epochs=4", "--batch_size=8", "--steps_per_execution=1", "--save=True"]
    record = "MNIST-FC2_k-ReLU"
    k = _kill_after_first_epoch(argv, str(logs / "backup" / record))
    assert 1 <= k < 4
    out = _rerun(argv)
    assert f"resumed from epoch {k} of 4" in out
    res = results(logs, record)
    assert res["resumed_from"] == k and res["epochs_run"] == 4 - k
    assert len(res["history"]["loss"]) == 4 - k  # the finished epochs were not trained again
    assert res["test_accuracy_initial"] is None  # no "initial" line for a model restored mid-training
    assert [os.path.basename(d) for d in run_dirs(str(logs), record)] == ["001"]  # its own record, continued
    log = open(record_file(logs, record, "_log.txt")).read()
    assert "continuing the interrupted run record" in log and log.count("data MNIST:") == 2
    assert not os.path.exists(logs / "backup" / record)  # the backup goes once training is done
    assert os.path.exists(logs / "MNIST-FC2_k_relu.weights.h5")
    _assert_nothing_truncated(logs)


@pytest.mark.data
def test_brf_run_killed_after_an_epoch_resumes_its_record(data_dir, tmp_path):
    logs = tmp_path / "logs"
    argv = ["--model_type=BRF", "--data_name=ECG", f"--data_dir={data_dir}", f"--logging_dir={logs}",
            "--epochs=4", "--max_batches=6", "--plots=False"]
    k = _kill_after_first_epoch(argv, str(logs / "backup" / "ECG-BRF"))
    assert 1 <= k < 4
    out = _rerun(argv)
    assert f"resumed from epoch {k} of 4" in out
    res = results(logs, "ECG-BRF")
    assert res["resumed_from"] == k and res["epochs_this_run"] == 4 - k
    assert [row["epoch"] for row in res["history"]] == [0, 1, 2, 3, 4]  # each epoch once, in order
    assert [os.path.basename(d) for d in run_dirs(str(logs), "ECG-BRF")] == ["001"]
    assert not os.path.exists(logs / "backup" / "ECG-BRF")
    _assert_nothing_truncated(logs)
