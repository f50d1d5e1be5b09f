"""Every shipped preset, evaluated through ``main.py --preset=NAME --epochs=0`` on the real test set,
reproduces the metrics on its card (accuracy to 0.1 point; the rest to the card's stated precision).

A preset whose file is a download is evaluated when the file is in ``$TFSPIKE_HOME`` (or can be fetched);
otherwise the test skips and says which file is missing.
"""

import glob
import json
import os
import re

import pytest

from tfspike.errors import UserError
from tfspike.zoo import card, list_presets, preset_files

# absolute tolerance per metric unless the card states one under "tolerance"
TOLERANCE = {"test_accuracy": 1e-3}
RELATIVE = 1e-3


def _newest_results(logs):
    found = sorted(glob.glob(os.path.join(logs, "runs", "*", "latest", "*_results.json")), key=os.path.getmtime)
    assert found, f"no results under {logs}"
    with open(found[-1]) as f:
        return json.load(f)


def _value(results, key):
    value = results.get(key)
    if value is None and isinstance(results.get("test"), dict):
        value = results["test"].get(key)
    return value[-1] if isinstance(value, list) else value


@pytest.mark.parametrize("name", list_presets())
def test_shipped_cards_are_complete(name):
    from tfspike.zoo.registry import CARD_KEYS, PRESET_DIR

    info = card(name)
    assert [k for k in CARD_KEYS if k not in info] == []
    assert info["name"] == name and info["metrics"] and info["parameters"] > 0
    assert info["versions"]["tensorflow"] and info["versions"]["keras"] and info["versions"]["tfspike"]
    assert info["training"].get("commands") or info["training"].get("note")
    assert not re.search(r'(^|[\s="])/(tmp|home|root|work|Users)/', json.dumps(info)), "a machine's path"
    for flag, entry in info["files"].items():
        assert len(entry["sha256"]) == 64 and entry["bytes"] > 0 and entry["bytes"] < 5e6, flag
        if "url" not in entry:
            assert os.path.getsize(os.path.join(PRESET_DIR, name, entry["file"])) == entry["bytes"], flag


@pytest.mark.data
@pytest.mark.parametrize("name", list_presets())
def test_preset_reproduces_its_card(name, data_dir, tmp_path):
    from tfspike.cli import main

    info = card(name)
    try:
        preset_files(name)
    except UserError as e:
        pytest.skip(f"preset file not available here: {e}")
    logs = str(tmp_path / "logs")
    assert main([f"--preset={name}", f"--data_dir={data_dir}", f"--logging_dir={logs}", "--plots=False",
                 "--verbose=0"]) == 0
    got = _newest_results(logs)
    assert got["preset"] == name
    tolerance = dict(TOLERANCE, **info.get("tolerance", {}))
    for key, expected in info["metrics"].items():
        if not isinstance(expected, (int, float)):
            assert _value(got, key) == expected, key
            continue
        if key in tolerance:
            assert _value(got, key) == pytest.approx(expected, abs=tolerance[key]), key
        else:
            assert _value(got, key) == pytest.approx(expected, rel=RELATIVE), key
