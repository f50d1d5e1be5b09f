"""The shared CLI layer: every family lists the same common flags with the same meaning, parsing never
loads TensorFlow, old spellings still parse, and every family's run writes its record through one
run context."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from records import record_file, results
from tfspike.cli import build_parser, families, main, parse_args
from tfspike.cli.common import COMMON_FLAGS, RunContext

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAMILY_TYPES = ("SNN", "ReLU", "FS", "BRF", "RF", "ALIF", "DDIM")


def _common_actions(model_type):
    parser, _ = build_parser([f"--model_type={model_type}"])
    group = next(g for g in parser._action_groups if g.title.startswith("common flags"))
    return {a.dest: a for a in group._group_actions}


def test_families_come_from_the_modules_model_types():
    import importlib

    table = families()
    assert set(table) == set(FAMILY_TYPES)
    for model_type, module in table.items():
        assert model_type in importlib.import_module(module).MODEL_TYPES


def test_every_family_lists_the_same_common_flags_with_one_meaning():
    expected = {kw.get("dest", flags[0].lstrip("-")): (flags, kw["help"]) for flags, kw in COMMON_FLAGS}
    assert {"learning_rate", "epochs", "batch_size", "seed", "data_dir", "logging_dir", "verbose", "jit_compile",
            "plots", "load", "save", "resume", "energy", "preset", "list_presets", "export", "distribute",
            "cpu_devices"} == set(expected)
    reference = None
    for model_type in FAMILY_TYPES:
        actions = _common_actions(model_type)
        seen = {dest: (tuple(a.option_strings), a.help, a.type) for dest, a in actions.items() if dest != "model_type"}
        assert {d: (f, h) for d, (f, h, _) in seen.items()} == {d: (tuple(f), h) for d, (f, h) in expected.items()}
        reference = reference or seen
        assert seen == reference, model_type  # same flags, same help, same parser in every family
        # no family redefines a common flag in its own group (that would be a second meaning)
        parser, _ = build_parser([f"--model_type={model_type}"])
        owners = [a for a in parser._actions if "--epochs" in a.option_strings or "--lr" in a.option_strings]
        assert len(owners) == 2, model_type


def test_parsing_and_help_do_not_load_tensorflow():
    code = ("import sys, contextlib, io\n"
            "from tfspike.cli import build_parser, parse_args\n"
            f"for t in {FAMILY_TYPES!r}:\n"
            "    parser, _ = build_parser(['--model_type=' + t])\n"
            "    with contextlib.redirect_stdout(io.StringIO()):\n"
            "        parser.format_help()\n"
            "    parse_args(['--model_type=' + t, '--epochs=0'])\n"
            "loaded = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]\n"
            "assert not loaded, loaded[:5]\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize("model_type", FAMILY_TYPES)
def test_lr_and_learning_rate_are_synonyms_in_every_family(model_type):
    for flag in ("--lr", "--learning_rate"):
        args, _ = parse_args([f"--model_type={model_type}", f"{flag}=0.25"])
        assert args.learning_rate == 0.25


@pytest.mark.parametrize("model_type", FAMILY_TYPES)
@pytest.mark.parametrize("flag", ["--verbose=3", "--epochs=-1", "--lr=0", "--batch_size=0", "--plots=maybe",
                                  "--jit_compile=perhaps", "--seed=-2", "--bogus=1"])
def test_bad_common_flags_exit_2_with_one_line_in_every_family(model_type, flag, capsys):
    with pytest.raises(SystemExit) as e:
        parse_args([f"--model_type={model_type}", flag])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and flag.split("=")[0] in err[0], err


@pytest.mark.parametrize("argv,expected", [
    (["--model_type=FS", "--verbose=True"], {"verbose": 1}),          # FS's old boolean spelling
    (["--model_type=FS", "--verbose=False"], {"verbose": 0}),
    (["--model_type=FS", "--steps=7"], {"epochs": 7}),                 # FS: one full-batch step = one epoch
    (["--model_type=FS"], {"epochs": 20000, "learning_rate": 1e-3, "save": True, "batch_size": None}),
    (["--model_type=SNN"], {"epochs": 10, "learning_rate": 5e-4, "batch_size": 8, "save": False, "load": None}),
    (["--model_type=SNN", "--load=False"], {"load": None}),            # the reference's spellings
    (["--model_type=SNN", "--load=True"], {"load": True}),
    (["--model_type=SNN", "--load=x_relu.weights.h5"], {"load": "x_relu.weights.h5"}),
    (["--model_type=BRF"], {"epochs": None, "learning_rate": None, "batch_size": None, "save": True}),
    (["--model_type=ALIF", "--verbose=2", "--jit_compile=false"], {"verbose": 2, "jit_compile": False}),
    (["--model_type=DDIM", "--epochs=0"], {"epochs": 0}),              # evaluate only, in every family
    (["--model_type=DDIM"], {"epochs": 1, "batch_size": 64, "learning_rate": 1e-3, "plots": True}),
])
def test_defaults_and_old_spellings(argv, expected, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    args, _ = parse_args(argv)
    assert {k: getattr(args, k) for k in expected} == expected
    assert args.command.startswith("python main.py")


def test_verbose_defaults_to_one_line_per_epoch_on_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert parse_args(["--model_type=BRF"])[0].verbose == 2
    monkeypatch.delenv("CI")
    assert parse_args(["--model_type=BRF"])[0].verbose == 1


def test_run_context_writes_one_record(tmp_path):
    args, _ = parse_args(["--model_type=FS", "--seed=3", "--logging_dir", str(tmp_path / "run")])
    context = RunContext(args, "FS-swish-K4")
    context.log.info("hello")
    context.results["answer"] = 42
    assert context.finish() == 0
    run_dir = tmp_path / "run" / "runs" / "FS-swish-K4" / "001"
    with open(run_dir / "FS-swish-K4_results.json") as f:
        record = json.load(f)
    assert record["answer"] == 42 and record["model_type"] == "FS" and record["seed"] == 3
    assert record["command"] == f"python main.py --model_type=FS --seed=3 --logging_dir {tmp_path / 'run'}"
    import keras
    import tensorflow as tf

    assert record["versions"]["tensorflow"] == tf.__version__ and record["versions"]["keras"] == keras.__version__
    assert record["total_seconds"] >= 0
    assert (run_dir / "FS-swish-K4_log.txt").read_text().splitlines()[0] == "hello"
    assert record["record"] == str(run_dir)
    assert not [p for p in os.listdir(run_dir) if p.startswith(".")]  # no temporary files left


@pytest.mark.parametrize("model_type", ["SNN", "FS", "BRF", "DDIM"])
def test_logging_dir_that_cannot_be_created_is_one_line(model_type, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    rc = main([f"--model_type={model_type}", "--epochs=0", "--logging_dir", str(blocker / "sub")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and str(blocker / "sub") in err[0] and "cannot be created" in err[0], err


def test_fs_epochs_0_evaluates_the_published_trend_exactly(tmp_path):
    """``--epochs=0`` in the FS family: the grid MSE of the published TBPI trend lines, against the
    NumPy oracle (spec fs.md §1 forward, §3.3 trend lines written out here)."""
    from tfspike.reference.fs_numpy import forward_post, swish

    assert main(["--model_type=FS", "--K=4", "--init=published", "--epochs=0", "--plots=False",
                 "--logging_dir", str(tmp_path)]) == 0
    record = results(tmp_path, "FS-swish-K4")
    fp = record["final_params"]
    x = np.linspace(-8.0, 12.0, 100000).astype(np.float32)
    out, _ = forward_post(x, fp["h"], fp["d"], fp["T"])
    oracle = float(np.mean((out.astype(np.float64) - swish(x.astype(np.float64))) ** 2))
    assert record["final_mse"] == pytest.approx(oracle, rel=1e-6)
    assert record["init_mse"] == record["final_mse"] and record["config"]["steps"] == 0
    assert (tmp_path / "FS-swish-K4_published_params.json").exists()  # --save defaults to True in FS


def test_fs_rejects_flags_that_do_not_apply(tmp_path, capsys):
    rc = main(["--model_type=FS", "--batch_size=32", "--logging_dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--batch_size" in err[0] and "full-batch" in err[0]


def _fs_eval(logs, *extra):
    return main(["--model_type=FS", "--K=4", "--init=published", "--epochs=0", "--plots=False",
                 "--logging_dir", str(logs), *extra])


def test_run_records_never_overwrite_each_other(tmp_path):
    """Each run has its own numbered record folder with the model type in its name; a rerun of the same
    command keeps the earlier record, ``latest`` points to the newest, an interrupted run (its record
    not finished) is continued by the same command, and --resume=False starts a new record."""
    from tfspike.cli.common import latest_run_dir, run_dirs

    logs = tmp_path / "logs"
    assert _fs_eval(logs) == 0 and _fs_eval(logs, "--seed=1") == 0 and _fs_eval(logs) == 0
    dirs = run_dirs(str(logs), "FS-swish-K4")
    assert [os.path.basename(d) for d in dirs] == ["001", "002", "003"]
    seeds = [json.load(open(os.path.join(d, "FS-swish-K4_results.json")))["seed"] for d in dirs]
    assert seeds == [0, 1, 0]
    assert os.path.realpath(logs / "runs" / "FS-swish-K4" / "latest") == os.path.realpath(dirs[-1])
    # an interrupted run: its state says running; the same command continues it (log appended)
    state_path = os.path.join(dirs[-1], "run.json")
    state = json.load(open(state_path))
    assert state["status"] == "finished"
    state["status"] = "running"
    json.dump(state, open(state_path, "w"))
    assert _fs_eval(logs) == 0
    assert latest_run_dir(str(logs), "FS-swish-K4") == dirs[-1]
    log = open(os.path.join(dirs[-1], "FS-swish-K4_log.txt")).read()
    assert log.count("### Total elapsed time") == 2 and "continuing the interrupted run record" in log
    json.dump(state, open(state_path, "w"))
    assert _fs_eval(logs, "--resume=False") == 0  # start over: a new record
    assert len(run_dirs(str(logs), "FS-swish-K4")) == 4
    # another command (here another seed) never continues a record it did not start
    json.dump(state, open(state_path, "w"))
    assert _fs_eval(logs, "--seed=2") == 0 and len(run_dirs(str(logs), "FS-swish-K4")) == 5


def test_record_names_carry_the_model_type():
    from tfspike.cli.common import record_name

    assert record_name("MNIST-FC2_example", "SNN") == "MNIST-FC2_example-SNN"
    assert record_name("MNIST-FC2_example", "ReLU") == "MNIST-FC2_example-ReLU"
    assert record_name("ECG-BRF", "BRF") == "ECG-BRF"
    assert record_name("FS-swish-K8", "FS") == "FS-swish-K8"
    assert record_name("DDIM-fs_swish-tbpi-FMNIST", "DDIM") == "DDIM-fs_swish-tbpi-FMNIST"


def test_tensorflow_start_up_notices_are_kept_out_of_the_default_output(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    argv = [sys.executable, os.path.join(ROOT, "main.py"), "--model_type=FS", "--K=4", "--init=published",
            "--epochs=0", "--plots=False", "--logging_dir", str(tmp_path)]
    quiet = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr[-2000:]
    assert "results:" in quiet.stdout
    # what TensorFlow prints on this machine when imported plainly must show again with --verbose 2
    plain = subprocess.run([sys.executable, "-c", "import tensorflow as tf; tf.config.list_physical_devices()"],
                           capture_output=True, text=True, env=env, timeout=300)
    loud = subprocess.run(argv + ["--verbose=2"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert loud.returncode == 0
    first = [line for line in plain.stderr.splitlines() if line.strip()][:1]
    if first:
        assert first[0].split("]")[-1] in loud.stderr


@pytest.mark.parametrize("model_type", FAMILY_TYPES)
def test_energy_flag_is_common(model_type, capsys):
    assert parse_args([f"--model_type={model_type}", "--energy"])[0].energy == "45nm_fp32"
    assert parse_args([f"--model_type={model_type}", "--energy=loihi"])[0].energy == "loihi"
    assert parse_args([f"--model_type={model_type}"])[0].energy is None
    with pytest.raises(SystemExit) as e:
        parse_args([f"--model_type={model_type}", "--energy=abacus"])
    assert e.value.code == 2 and "unknown energy profile" in capsys.readouterr().err


def test_fs_energy_per_neuron_against_the_oracle(tmp_path):
    """``--model_type=FS --energy``: one FS neuron on the grid — K updates, one AC per spike (mean spikes
    from the NumPy oracle), ANN twin one MAC; the block, the joules under every profile and the PNG."""
    from tfspike.energy.profiles import get_profile
    from tfspike.reference.fs_numpy import forward_post

    assert main(["--model_type=FS", "--K=4", "--init=published", "--epochs=0", "--energy=loihi",
                 "--logging_dir", str(tmp_path)]) == 0
    record = results(tmp_path, "FS-swish-K4")
    fp, energy = record["final_params"], record["energy"]
    x = np.linspace(-8.0, 12.0, 100000).astype(np.float32)
    mean_spikes = float(np.mean(forward_post(x, fp["h"], fp["d"], fp["T"])[1], dtype=np.float64))
    assert energy["profile"] == "loihi" and energy["layers"][0]["spikes"] == pytest.approx(mean_spikes, rel=1e-9)
    assert energy["per_sample"]["synops"] == pytest.approx(mean_spikes, rel=1e-9)
    assert energy["per_sample"]["neuron_updates"] == 4 and energy["ann_twin"]["macs"] == 1
    loihi = get_profile("loihi")
    assert energy["per_sample"]["joules"] == pytest.approx(mean_spikes * loihi.synop_j + 4 * loihi.neuron_update_j)
    assert energy["joules_by_profile"]["45nm_fp32"]["ann_twin"] == pytest.approx(4.6e-12)
    assert os.path.exists(os.path.join(os.path.dirname(record_file(tmp_path, "FS-swish-K4")), "FS-swish-K4_energy.png"))


def test_fs_jit_compile_false_runs_the_same_fit_without_xla(tmp_path):
    """``--jit_compile`` means the same in FS: False runs the same Adam fit as plain graphs."""
    common = ["--model_type=FS", "--K=4", "--init=random", "--steps=40", "--grid=-8,12,2000", "--plots=False",
              "--save=False"]
    assert main([*common, "--logging_dir", str(tmp_path / "xla")]) == 0
    assert main([*common, "--jit_compile=False", "--logging_dir", str(tmp_path / "graph")]) == 0
    xla, graph = results(tmp_path / "xla", "FS-swish-K4"), results(tmp_path / "graph", "FS-swish-K4")
    assert graph["init_mse"] == pytest.approx(xla["init_mse"], rel=1e-6)  # same seeded start (sum order differs)
    assert graph["final_mse"] == pytest.approx(xla["final_mse"], rel=1e-4) and graph["final_mse"] < graph["init_mse"]
