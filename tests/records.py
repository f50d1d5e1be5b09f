"""Where a run's record is: ``<logging_dir>/runs/<record>/latest/<record><suffix>`` (tfspike.cli.common)."""

import json
import os

from tfspike.cli.common import latest_run_dir


def record_file(logging_dir, record, suffix="_results.json"):
    """The newest run's ``<record><suffix>`` (asserts that the run folder exists)."""
    run_dir = latest_run_dir(str(logging_dir), record)
    assert run_dir is not None, f"no run of {record} under {logging_dir}"
    assert os.path.realpath(os.path.join(str(logging_dir), "runs", record, "latest")) == os.path.realpath(run_dir)
    return os.path.join(run_dir, f"{record}{suffix}")


def results(logging_dir, record):
    with open(record_file(logging_dir, record)) as f:
        return json.load(f)
