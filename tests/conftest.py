import os
import sys
import pathlib

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TFSPIKE_OFFLINE", "1")  # tests never touch the network

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def _data_dir():
    d = os.environ.get("TFSPIKE_DATA") or str(SHARED / "data")
    return d if os.path.isdir(d) else None


@pytest.fixture(scope="session")
def data_dir():
    d = _data_dir()
    if d is None:
        pytest.skip("needs ../shared/data or TFSPIKE_DATA")
    return d


@pytest.fixture(scope="session")
def golden_dir():
    d = SHARED / "golden"
    if not d.is_dir():
        pytest.skip("needs ../shared/golden")
    return d


@pytest.fixture(autouse=True)
def _fresh_keras_session():
    import keras

    keras.backend.clear_session()
    keras.config.set_floatx("float32")
    yield


def _repo_outputs():
    logs = ROOT / "logs"
    return {str(p.relative_to(ROOT)) for p in logs.rglob("*")} if logs.is_dir() else set()


def pytest_sessionstart(session):
    session.config._tfspike_repo_outputs = _repo_outputs()


def pytest_sessionfinish(session, exitstatus):
    """The suite writes only to temporary folders: anything new under the repository's logs/ fails it."""
    new = sorted(_repo_outputs() - getattr(session.config, "_tfspike_repo_outputs", set()))
    if new:
        print(f"\nerror: the tests wrote into the repository: {', '.join(new[:10])}", file=sys.stderr)
        session.exitstatus = 1
