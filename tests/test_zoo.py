"""The zoo's machinery on a preset made here from a tiny run: cards, files (package and file:// URLs),
SHA-256 checks, ``--list_presets``, ``--preset`` and ``tfspike.zoo.load``.

The shipped presets are checked against their cards in ``tests/test_zoo_presets.py``.
"""

import json
import os
import re
import shutil

import numpy as np
import pytest

from datafiles import write_mnist_npz
from records import results
from tfspike.errors import UserError


def _main(*args):
    from tfspike.cli import main

    return main(list(args))


def _make_card(*args):
    from tfspike.zoo.make_card import main

    assert main(list(args)) == 0


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    """A TTFS FC2 trained for one epoch on synthetic MNIST, made into preset ``tiny_fc2`` in its own
    presets folder (the path a user's ``$TFSPIKE_PRESETS`` would hold)."""
    root = tmp_path_factory.mktemp("zoo")
    write_mnist_npz(root, n_train=300, n_test=120)
    logs, presets = str(root / "logs"), str(root / "presets")
    common = [f"--data_dir={root}", f"--logging_dir={logs}", "--batch_size=32", "--seed=3", "--plots=False",
              "--verbose=0"]
    assert _main("--model_type=SNN", "--model_name=FC2_tiny", "--data_name=MNIST", "--epochs=1", "--save=True",
                 *common) == 0
    trained = results(logs, "MNIST-FC2_tiny-SNN")
    training = os.path.join(trained["record"], "MNIST-FC2_tiny-SNN_results.json")
    _make_card("tiny_fc2", "--dir", presets, "--family", "TTFS", "--model_type", "SNN", "--task", "digits",
               "--dataset", "MNIST (synthetic)", "--flags", json.dumps({"model_name": "FC2_tiny", "data_name": "MNIST"}),
               "--input", json.dumps({"shape": [784], "dtype": "float32", "preprocessing": "x/255"}),
               "--outputs", "10 logits", "--file", f"load={os.path.join(logs, 'MNIST-FC2_tiny_snn.weights.h5')}",
               "--training", training, "--provenance", "test", "--licence", "Apache-2.0")
    return {"root": root, "presets": presets, "common": common, "trained": trained}


@pytest.fixture
def use_presets(tiny_preset, monkeypatch, tmp_path):
    monkeypatch.setenv("TFSPIKE_PRESETS", tiny_preset["presets"])
    monkeypatch.setenv("TFSPIKE_HOME", str(tmp_path / "home"))
    return tiny_preset


def test_preset_evaluates_to_the_training_runs_accuracy_and_the_card_records_it(use_presets, tmp_path, capsys):
    p = use_presets
    from tfspike import zoo

    assert "tiny_fc2" in zoo.list_presets() and "tiny_fc2" in zoo.list_presets("TTFS")
    card = zoo.card("tiny_fc2")
    assert card["training"]["commands"] == [p["trained"]["command"]] and card["training"]["seed"] == 3
    assert card["parameters"] == p["trained"]["params"] == 784 * 340 + 340 + 340 * 10 + 10
    import h5py  # the shipped copy holds the weights without the Adam state of the training run

    shipped = os.path.join(p["presets"], "tiny_fc2", card["files"]["load"]["file"])
    original = os.path.join(str(p["root"] / "logs"), "MNIST-FC2_tiny_snn.weights.h5")
    with h5py.File(shipped, "r") as a, h5py.File(original, "r") as b:
        assert "optimizer" in b and "optimizer" not in a and "layers" in a
    assert os.path.getsize(shipped) < 0.5 * os.path.getsize(original)
    logs = str(tmp_path / "eval")
    common = [a for a in p["common"] if not a.startswith("--logging_dir")] + [f"--logging_dir={logs}"]
    assert _main("--preset=tiny_fc2", *common) == 0  # --epochs defaults to 0: evaluate only
    assert re.search(r"preset tiny_fc2 loaded in \d+\.\d\d s", capsys.readouterr().out)
    evaluated = results(logs, "MNIST-FC2_tiny-SNN")
    assert evaluated["preset"] == "tiny_fc2" and evaluated["epochs"] == 0
    assert evaluated["test_accuracy"] == p["trained"]["test_accuracy"]  # the saved file is the trained model
    _make_card("tiny_fc2", "--dir", p["presets"], "--evaluation",
               os.path.join(evaluated["record"], "MNIST-FC2_tiny-SNN_results.json"))
    card = zoo.card("tiny_fc2")
    assert card["metrics"]["test_accuracy"] == evaluated["test_accuracy"]
    assert card["metrics"]["spikes_per_neuron"] == evaluated["spikes_per_neuron"]
    # the Python API: a compiled model with the same weights, evaluated independently
    model = zoo.load("tiny_fc2")
    data = np.load(os.path.join(p["root"], "mnist", "mnist.npz"))
    x = data["x_test"].reshape(len(data["x_test"]), -1).astype("float32") / 255.0
    pred = np.argmax(model.predict(x, verbose=0), axis=-1)
    assert np.mean(pred == data["y_test"]) == pytest.approx(card["metrics"]["test_accuracy"], abs=1e-9)
    assert model.compiled_loss is not None or model.loss is not None


def test_preset_fine_tunes_with_epochs(use_presets, tmp_path):
    p = use_presets
    logs = str(tmp_path / "tune")
    common = [a for a in p["common"] if not a.startswith("--logging_dir")] + [f"--logging_dir={logs}"]
    assert _main("--preset=tiny_fc2", "--epochs=1", "--lr=1e-3", *common) == 0
    tuned = results(logs, "MNIST-FC2_tiny-SNN")
    assert tuned["preset"] == "tiny_fc2" and tuned["epochs"] == 1 and len(tuned["history"]["loss"]) == 1
    assert tuned["test_accuracy_initial"] == p["trained"]["test_accuracy"]  # started from the preset's weights


def test_list_presets_prints_the_table(use_presets, capsys):
    assert _main("--list_presets") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["preset", "family", "task"]
    row = next(l for l in out.splitlines() if l.startswith("tiny_fc2"))
    assert "TTFS" in row and "package" in row


def test_a_changed_weight_file_is_refused(use_presets, tmp_path, monkeypatch):
    folder = tmp_path / "presets"
    shutil.copytree(use_presets["presets"], folder)
    monkeypatch.setenv("TFSPIKE_PRESETS", str(folder))
    weights = folder / "tiny_fc2" / "MNIST-FC2_tiny_snn.weights.h5"
    blob = bytearray(weights.read_bytes())
    blob[-1] ^= 1
    weights.write_bytes(bytes(blob))
    from tfspike.zoo import preset_files

    with pytest.raises(UserError, match="SHA-256 .* does not match preset tiny_fc2's load file"):
        preset_files("tiny_fc2")


def test_url_files_are_fetched_into_tfspike_home_and_checked(use_presets, tmp_path, monkeypatch):
    folder = tmp_path / "presets"
    shutil.copytree(use_presets["presets"], folder)
    monkeypatch.setenv("TFSPIKE_PRESETS", str(folder))
    card_path = folder / "tiny_fc2" / "card.json"
    card = json.loads(card_path.read_text())
    served = tmp_path / "server" / "w_snn.weights.h5"
    served.parent.mkdir()
    shutil.move(str(folder / "tiny_fc2" / card["files"]["load"]["file"]), served)
    card["files"]["load"].update(url=served.as_uri(), file="w_snn.weights.h5")
    card_path.write_text(json.dumps(card))
    from tfspike.zoo import preset_files
    from tfspike.zoo.registry import tfspike_home

    monkeypatch.setenv("TFSPIKE_OFFLINE", "1")
    target = os.path.join(tfspike_home(), "presets", "tiny_fc2", "w_snn.weights.h5")
    with pytest.raises(UserError, match=f"downloads are off.*download {served.as_uri()} and save it as {target}"):
        preset_files("tiny_fc2")
    monkeypatch.delenv("TFSPIKE_OFFLINE")
    assert preset_files("tiny_fc2")["load"] == target and os.path.isfile(target)
    assert preset_files("tiny_fc2")["load"] == target  # cached: no second fetch
    os.remove(served)
    os.remove(target)
    with pytest.raises(UserError, match="could not fetch load file.*download file://"):
        preset_files("tiny_fc2")


@pytest.mark.parametrize("args,needle", [
    (["--preset=no_such_preset"], "unknown preset 'no_such_preset'"),
    (["--preset=tiny_fc2", "--model_type=BRF"], "tiny_fc2 is a --model_type=SNN preset, not BRF"),
])
def test_bad_preset_flags_are_one_line(use_presets, args, needle, capsys):
    with pytest.raises(SystemExit) as e:
        _main(*args)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len([l for l in err if l.startswith("error:")]) == 1, err
    assert needle in err[-1]


def test_presets_table_markdown_matches_the_readme():
    """README's zoo table is generated from the shipped cards (python -m tfspike.zoo --markdown)."""
    from tfspike.zoo.registry import presets_table

    readme = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")).read()
    begin, end = "<!-- zoo-table -->\n", "<!-- /zoo-table -->"
    assert begin in readme and end in readme
    assert readme.split(begin, 1)[1].split(end, 1)[0].strip() == presets_table(markdown=True).strip()


def test_card_commands_are_written_without_machine_paths():
    from tfspike.zoo.make_card import REPO, portable

    parent = os.path.dirname(REPO)
    cmd = (f"python main.py --data_dir {parent}/shared/data --logging_dir /scratch/zoo/run1 "
           f"--load=/scratch/zoo/run1/x.keras --export {REPO}/logs/saved")
    assert portable(cmd, ["/scratch/zoo=logs/zoo"]) == ("python main.py --data_dir ../shared/data --logging_dir "
                                                        "logs/zoo/run1 --load=logs/zoo/run1/x.keras --export logs/saved")


def test_the_package_with_its_preset_files_stays_under_15_mb():
    import tfspike

    root = os.path.dirname(tfspike.__file__)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(root) for f in files
                if "__pycache__" not in d)
    assert total < 15e6, f"tfspike/ holds {total / 1e6:.1f} MB"
