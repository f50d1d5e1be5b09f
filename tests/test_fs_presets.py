"""User preset folders: save_preset never writes into the package; get_params finds presets in the
folders passed, then $TFSPIKE_FS_PRESETS, then the package's presets/."""

import json
import os

import numpy as np
import pytest

from tfspike.errors import UserError
from tfspike.fs import params as P
from tfspike.fs.param_set import FSParams


def toy(name="my_set", scale=1.0):
    return FSParams(np.float32([0.5, 0.25, 0.0]) * scale, [1.0, 0.5, 0.25], [0.0, 0.1, 0.2], name=name,
                    meta={"target": "relu", "seed": 3})


@pytest.fixture(autouse=True)
def no_env(monkeypatch):
    monkeypatch.delenv(P.PRESETS_ENV, raising=False)


def test_save_preset_writes_the_file_and_get_params_reads_it_back(tmp_path):
    folder = tmp_path / "presets"
    path = P.save_preset(toy(), folder)
    assert path == os.path.join(str(folder), "my_set.json")
    saved = json.load(open(path))
    assert saved["ordering"] == "post" and saved["seed"] == 3 and saved["h"] == [0.5, 0.25, 0.0]
    with pytest.raises(UserError, match="unknown FS parameter set 'my_set'"):
        P.get_params("my_set")  # not on the search path
    p = P.get_params("my_set", preset_dirs=(folder,))
    assert p.name == "my_set" and p.meta["target"] == "relu"
    for a, b in zip(p.as_tuple(), toy().as_tuple()):
        np.testing.assert_array_equal(a, b)
    assert P.get_params("my_set", preset_dirs=str(folder)).name == "my_set"  # one folder as a string
    assert "my_set" in P.preset_names((folder,))
    # another name
    assert P.save_preset(toy(), folder, name="other").endswith("other.json")
    assert P.get_params("other", preset_dirs=(folder,)).name == "other"


def test_search_order_dirs_then_environment_then_package(tmp_path, monkeypatch):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    P.save_preset(toy(scale=1.0), a)
    P.save_preset(toy(scale=2.0), b)
    P.save_preset(toy(scale=4.0), c)
    monkeypatch.setenv(P.PRESETS_ENV, os.pathsep.join([str(b), str(c)]))
    assert P.preset_search_path((a,)) == [str(a), str(b), str(c), P.BUILTIN_PRESET_DIR]
    assert P.get_params("my_set", preset_dirs=(a,)).h[0] == np.float32(0.5)
    assert P.get_params("my_set").h[0] == np.float32(1.0)  # first folder of the environment variable
    # a user preset named like a shipped one wins over the package's file
    P.save_preset(toy("stoeckl_swish_k16"), a)
    assert P.get_params("stoeckl_swish_k16", preset_dirs=(a,)).K == 3
    assert P.get_params("stoeckl_swish_k16").K == 16
    # the FewSpike layer's lookup (no preset_dirs) sees the environment variable
    from tfspike.fs import FewSpike

    assert FewSpike("my_set").K == 3


def test_save_preset_refuses_the_package_folder_and_bad_names(tmp_path):
    before = sorted(os.listdir(P.BUILTIN_PRESET_DIR))
    with pytest.raises(UserError, match="installed package's preset folder"):
        P.save_preset(toy(), P.BUILTIN_PRESET_DIR)
    assert sorted(os.listdir(P.BUILTIN_PRESET_DIR)) == before
    for bad in ("", "a/b", ".hidden"):
        with pytest.raises(UserError, match="plain file name"):
            P.save_preset(toy(), tmp_path, name=bad)
    for reserved in ("relu_k10", "tbpi_trend_k8", "relu"):
        with pytest.raises(UserError, match="reserved"):
            P.save_preset(toy(), tmp_path, name=reserved)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        P.save_preset(toy(), tmp_path / "file")


def test_missing_fitted_preset_hints_at_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "BUILTIN_PRESET_DIR", str(tmp_path))
    with pytest.raises(UserError, match=r"has not been generated yet.*TFSPIKE_FS_PRESETS"):
        P.get_params("swish_k16_best")
