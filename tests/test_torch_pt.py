"""PyTorch ``.pt`` checkpoints read without PyTorch (``tfspike.io.torch_pt``): the reference's published
ECG checkpoints decode to exactly the golden ``.npz`` arrays and reproduce the golden metrics through
``main.py --load FILE.pt``; hostile pickles are refused before anything runs; bad files are one line.

Synthetic checkpoints are written by :func:`write_pt`: a zip ``<archive>/data.pkl`` +
``<archive>/data/<key>`` whose pickle is assembled opcode by opcode (no torch here), the same layout
as ``torch.save``. Their oracle is the NumPy array each tensor was cut from.
"""

import io
import pickletools
import struct
import zipfile

import numpy as np
import pytest

from datafiles import overwrite_bytes, truncate_file
from records import results
from test_bad_input import _rsnn, error_line
from test_rsnn_golden import EPOCH, EXPECTED
from tfspike.errors import UserError
from tfspike.io.torch_pt import read_permutation_pt, read_pt, state_dict_arrays

REFUSED = "(a .pt file may only hold tensors and dicts)"


# ----------------------------------------------------------------------------- a .pt writer without torch

class Tensor:
    """A tensor of the synthetic checkpoint: ``size``/``stride`` (elements) into storage ``key``."""

    def __init__(self, key, storage_type, offset, size, stride, location="cpu", numel=None):
        self.key, self.storage_type, self.offset = key, storage_type, offset
        self.size, self.stride, self.location, self.numel = tuple(size), tuple(stride), location, numel


class Call:
    """``module.name(*args)`` in the pickle (GLOBAL + REDUCE); ``stack_global``: protocol-4 STACK_GLOBAL."""

    def __init__(self, module, name, args=(), stack_global=False):
        self.module, self.name, self.args, self.stack_global = module, name, tuple(args), stack_global


class OrderedDictOf(dict):
    """Pickled as ``collections.OrderedDict()`` + SETITEMS, as torch writes a state dict."""


def _global(module, name, stack_global=False):
    if stack_global:
        return _emit(module) + _emit(name) + b"\x93"
    return b"c" + f"{module}\n{name}\n".encode()


def _emit(obj):
    """Protocol-2 opcodes that build ``obj`` (dicts, lists, tuples, str, int, float, bool, None, Tensor, Call)."""
    if obj is None:
        return b"N"
    if isinstance(obj, bool):
        return b"\x88" if obj else b"\x89"
    if isinstance(obj, int):
        return b"J" + struct.pack("<i", obj)
    if isinstance(obj, float):
        return b"G" + struct.pack(">d", obj)
    if isinstance(obj, str):
        data = obj.encode()
        return b"X" + struct.pack("<I", len(data)) + data
    if isinstance(obj, tuple):
        return b"(" + b"".join(_emit(v) for v in obj) + b"t"
    if isinstance(obj, list):
        return b"](" + b"".join(_emit(v) for v in obj) + b"e"
    if isinstance(obj, dict):
        head = _global("collections", "OrderedDict") + b")R" if isinstance(obj, OrderedDictOf) else b"}"
        return head + b"(" + b"".join(_emit(k) + _emit(v) for k, v in obj.items()) + b"u"
    if isinstance(obj, Call):
        return _global(obj.module, obj.name, obj.stack_global) + _emit(obj.args) + b"R"
    if isinstance(obj, Tensor):
        pid = b"(" + _emit("storage") + _global("torch", obj.storage_type) + _emit(obj.key) + _emit(obj.location) \
            + _emit(obj.numel) + b"tQ"
        hooks = _global("collections", "OrderedDict") + b")R"
        return (_global("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + _emit(obj.offset) + _emit(obj.size)
                + _emit(obj.stride) + b"\x89" + hooks + b"tR")
    raise TypeError(type(obj))


def pickle_bytes(obj, protocol=2):
    return b"\x80" + bytes([protocol]) + _emit(obj) + b"."


def write_pt(path, obj, storages, archive="archive", byteorder=None, raw_pickle=None):
    """A torch-style zip checkpoint of ``obj``; ``storages``: key → 1-D array (written in ``byteorder``)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{archive}/data.pkl", raw_pickle if raw_pickle is not None else pickle_bytes(obj))
        if byteorder:
            z.writestr(f"{archive}/byteorder", byteorder)
        for key, array in storages.items():
            z.writestr(f"{archive}/data/{key}", array.astype(array.dtype.newbyteorder(
                ">" if byteorder == "big" else "<")).tobytes())
        z.writestr(f"{archive}/version", "3\n")
    return str(path)


def tensor_of(array, key, location="cpu", storage_type=None):
    """A contiguous Tensor of ``array`` and its storage."""
    names = {np.float32: "FloatStorage", np.int64: "LongStorage", np.float64: "DoubleStorage",
             np.int32: "IntStorage", np.uint8: "ByteStorage", np.bool_: "BoolStorage", np.float16: "HalfStorage"}
    a = np.ascontiguousarray(array)
    stride = tuple(s // a.itemsize for s in a.strides)
    t = Tensor(key, storage_type or names[a.dtype.type], 0, a.shape, stride, location, a.size)
    return t, a.ravel()


def reference_like(tmp_path, name="ref.pt", location="cuda:0", hidden=5, inputs=2, outputs=3, seed=0, **extra):
    """A BRF-style training checkpoint (model_state_dict, Adam state, epoch, loss) and its expected arrays."""
    rng = np.random.default_rng(seed)
    arrays = {"hidden.omega": rng.uniform(3, 5, hidden), "hidden.b_offset": rng.uniform(0.1, 1, hidden),
              "hidden.linear.weight": rng.normal(size=(hidden, inputs + hidden)),
              "out.tau_mem": rng.normal(20, 1, outputs), "out.linear.weight": rng.normal(size=(outputs, hidden))}
    arrays = {k: v.astype(np.float32) for k, v in arrays.items()}
    state, storages = OrderedDictOf(), {}
    for i, (k, v) in enumerate(arrays.items()):
        state[k], storages[str(i)] = tensor_of(v, str(i), location)
    step, storages["9"] = tensor_of(np.float32(7.0), "9", "cpu")
    obj = {"epoch": 42, "model_state_dict": state,
           "optimizer_state_dict": {"state": {0: {"step": step}},
                                    "param_groups": [{"lr": 0.01, "betas": (0.9, 0.999), "amsgrad": False,
                                                      "foreach": None, "params": [0, 1, 2, 3, 4]}]},
           "loss": 0.25}
    obj.update(extra)
    expected = {k.replace(".", "/"): v for k, v in arrays.items()}
    expected["epoch"] = np.int64(42)
    return write_pt(tmp_path / name, obj, storages), expected


def assert_same_arrays(got, expected):
    assert sorted(got) == sorted(expected)
    for k in expected:
        assert got[k].dtype == np.asarray(expected[k]).dtype, k
        assert np.array_equal(got[k], expected[k]), k


# ----------------------------------------------------------------------------- the published checkpoints

@pytest.mark.golden
@pytest.mark.parametrize("neuron", ["brf", "rf", "alif"])
def test_golden_pt_decodes_to_the_golden_npz(neuron, golden_dir):
    arrays = state_dict_arrays(golden_dir / "brf" / "pt" / f"ecg_{neuron}.pt")
    with np.load(golden_dir / "brf" / f"ecg_{neuron}.npz") as npz:
        assert_same_arrays(arrays, {k: npz[k] for k in npz.files})


@pytest.mark.golden
def test_golden_pt_reads_completely(golden_dir):
    """The whole checkpoint, Adam state included, is tensors, dicts, lists and numbers."""
    ckpt = read_pt(golden_dir / "brf" / "pt" / "ecg_brf.pt")
    assert sorted(ckpt) == ["epoch", "loss", "model_state_dict", "optimizer_state_dict"]
    assert ckpt["epoch"] == 360 and isinstance(ckpt["loss"], float)
    adam = ckpt["optimizer_state_dict"]
    assert sorted(adam["state"]) == [0, 1, 2, 3, 4] and adam["param_groups"][0]["params"] == [0, 1, 2, 3, 4]
    weight = ckpt["model_state_dict"]["hidden.linear.weight"]
    moment = adam["state"][2]["exp_avg"]
    assert moment.shape == weight.shape == (36, 40) and moment.dtype == np.float32
    assert adam["state"][0]["step"].shape == () and float(adam["state"][0]["step"]) > 0


@pytest.mark.golden
@pytest.mark.data
@pytest.mark.parametrize("neuron", ["BRF", "RF", "ALIF"])
def test_cli_load_pt_reproduces_the_golden_metrics(neuron, golden_dir, data_dir, tmp_path):
    from tfspike.cli import main

    sub, acc, acc_tol, nll, nll_tol, sop = EXPECTED[neuron][:6]
    path = str(golden_dir / "brf" / "pt" / f"ecg_{neuron.lower()}.pt")
    assert main([f"--model_type={neuron}", "--data_name=ECG", "--data_dir", data_dir, "--epochs=0",
                 "--plots=false", "--load", path, "--logging_dir", str(tmp_path)]) == 0
    res = results(tmp_path, f"ECG-{neuron}")
    assert res["loaded"] == path and res["recipe"]["sub_seq_length"] == sub
    assert abs(100 * res["test_accuracy"] - acc) <= acc_tol, res["test_accuracy"]
    assert abs(res["test_loss"] - nll) <= nll_tol, res["test_loss"]
    assert abs(res["sop_per_sample"] - sop) <= 10, res["sop_per_sample"]


@pytest.mark.golden
def test_import_reference_pt_equals_npz(golden_dir):
    """The same weights land in the model from the .pt and from the .npz."""
    from tfspike.rsnn.presets import build_rsnn
    from tfspike.rsnn.reference_io import import_reference

    a, b = build_rsnn("ALIF", "ECG"), build_rsnn("ALIF", "ECG")
    assert import_reference(a, str(golden_dir / "brf" / "pt" / "ecg_alif.pt")) == {"epoch": EPOCH["ALIF"]}
    assert import_reference(b, str(golden_dir / "brf" / "ecg_alif.npz")) == {"epoch": EPOCH["ALIF"]}
    for wa, wb in zip(a.weights, b.weights):
        assert np.array_equal(wa.numpy(), wb.numpy()), wa.path


# ----------------------------------------------------------------------------- synthetic checkpoints

@pytest.mark.parametrize("location", ["cpu", "cuda:0", "cuda:3", "mps"])
def test_any_storage_location_loads(location, tmp_path):
    path, expected = reference_like(tmp_path, location=location)
    assert_same_arrays(state_dict_arrays(path), expected)
    ckpt = read_pt(path)
    assert ckpt["loss"] == 0.25 and ckpt["optimizer_state_dict"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert type(ckpt["model_state_dict"]).__name__ == "OrderedDict"
    assert list(ckpt["model_state_dict"]) == ["hidden.omega", "hidden.b_offset", "hidden.linear.weight",
                                              "out.tau_mem", "out.linear.weight"]


def test_strides_offsets_shared_storages_and_dtypes(tmp_path):
    """A transposed view, a view at an offset, two tensors of one storage, every storage dtype, big-endian."""
    rng = np.random.default_rng(1)
    base = rng.normal(size=(3, 4)).astype(np.float32)
    flat = np.concatenate([np.float32([-9, -9]), base.T.ravel()])  # storage holds base column-major at offset 2
    obj = {"t": Tensor("0", "FloatStorage", 2, (3, 4), (1, 3), numel=flat.size),
           "row": Tensor("0", "FloatStorage", 2 + 1, (4,), (3,), numel=flat.size),  # base[1, :]
           "scalar": Tensor("0", "FloatStorage", 0, (), (), numel=flat.size),
           "empty": Tensor("0", "FloatStorage", 0, (0, 5), (5, 1), numel=flat.size)}
    storages = {"0": flat}
    samples = {"LongStorage": np.arange(-3, 3, dtype=np.int64), "DoubleStorage": rng.normal(size=4),
               "IntStorage": np.int32([1, -2, 3]), "ByteStorage": np.uint8([0, 7, 255]),
               "BoolStorage": np.bool_([True, False, True]), "HalfStorage": np.float16([0.5, -2, 65504])}
    for i, (name, a) in enumerate(samples.items()):
        obj[name], storages[str(i + 1)] = tensor_of(a, str(i + 1))
    for order in (None, "little", "big"):
        got = read_pt(write_pt(tmp_path / f"views_{order}.pt", obj, storages, byteorder=order))
        np.testing.assert_array_equal(got["t"], base)
        assert got["t"].flags.c_contiguous and got["t"].dtype == np.float32
        np.testing.assert_array_equal(got["row"], base[1])
        assert got["scalar"].shape == () and got["scalar"] == -9
        assert got["empty"].shape == (0, 5)
        for name, a in samples.items():
            assert got[name].dtype == a.dtype and got[name].dtype.isnative and np.array_equal(got[name], a), name


def test_a_bare_state_dict_and_a_permutation(tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t, s = tensor_of(a, "0")
    path = write_pt(tmp_path / "sd.pt", OrderedDictOf({"out.linear.weight": t}), {"0": s})
    assert_same_arrays(state_dict_arrays(path), {"out/linear/weight": a})
    perm = np.random.default_rng(2).permutation(784)
    t, s = tensor_of(perm.astype(np.int64), "0")
    path = write_pt(tmp_path / "perm_permuted_idx.pt", t, {"0": s})
    got = read_permutation_pt(path)
    assert got.dtype == np.int64 and np.array_equal(got, perm)

    from tfspike.data.smnist import load_permutation

    assert np.array_equal(load_permutation(path), perm)
    with pytest.raises(UserError, match="not a 1-D integer tensor"):
        read_permutation_pt(write_pt(tmp_path / "float.pt", tensor_of(np.float32([1, 2]), "0")[0],
                                     {"0": np.float32([1, 2])}))


def test_a_pruning_mask_is_refused(tmp_path):
    """tfspike has no weight mask: a checkpoint whose hidden/linear/mask prunes weights does not load."""
    from tfspike.errors import WeightMismatchError
    from tfspike.rsnn.presets import build_rsnn
    from tfspike.rsnn.reference_io import import_reference

    rng = np.random.default_rng(3)
    arrays = {"hidden.omega": rng.uniform(3, 5, 36), "hidden.b_offset": rng.uniform(0.1, 1, 36),
              "hidden.linear.weight": rng.normal(size=(36, 40)), "hidden.linear.mask": np.ones((36, 40)),
              "out.tau_mem": rng.normal(20, 1, 6), "out.linear.weight": rng.normal(size=(6, 36))}
    state, storages = OrderedDictOf(), {}
    for i, (k, v) in enumerate(arrays.items()):
        state[k], storages[str(i)] = tensor_of(v.astype(np.float32), str(i))
    model = build_rsnn("BRF", "ECG")
    assert import_reference(model, write_pt(tmp_path / "ones.pt", {"model_state_dict": state}, storages)) == {}
    np.testing.assert_array_equal(model.hidden.cell.kernel.numpy(), arrays["hidden.linear.weight"].T.astype(np.float32))
    storages["3"] = storages["3"].copy()
    storages["3"][[5, 17]] = 0
    path = write_pt(tmp_path / "pruned.pt", {"model_state_dict": state}, storages)
    with pytest.raises(WeightMismatchError, match="hidden/linear/mask prunes 2 weights"):
        import_reference(model, path)


# ----------------------------------------------------------------------------- hostile pickles

@pytest.mark.parametrize("module,name,stack_global", [("os", "system", False), ("posix", "system", True),
                                                      ("builtins", "eval", False), ("builtins", "exec", True),
                                                      ("subprocess", "call", False)])
def test_hostile_globals_are_refused_and_never_run(module, name, stack_global, tmp_path):
    marker = tmp_path / "pwned"
    command = f"open({str(marker)!r}, 'w').close()" if module == "builtins" else f"touch {marker}"
    args = ((["touch", str(marker)],) if module == "subprocess" else (command,))
    payload = {"model_state_dict": Call(module, name, args, stack_global)}
    raw = pickle_bytes(payload, protocol=4 if stack_global else 2)
    pickletools.dis(raw, out=io.StringIO())  # a well-formed pickle: only the allowlist stops it
    path = write_pt(tmp_path / "evil.pt", None, {}, raw_pickle=raw)
    with pytest.raises(UserError) as e:
        read_pt(path)
    assert str(e.value) == f"{path}: refuses to load global {module}.{name} {REFUSED}"
    assert not marker.exists()


def test_other_torch_globals_and_callable_storages_are_refused(tmp_path):
    for module, name in (("torch._utils", "_rebuild_parameter"), ("torch.nn.modules.linear", "Linear"),
                         ("collections", "defaultdict"), ("numpy.core.multiarray", "_reconstruct")):
        path = write_pt(tmp_path / f"{name}.pt", {"x": Call(module, name)}, {})
        with pytest.raises(UserError, match=f"refuses to load global {module}.{name}"):
            read_pt(path)
    # the storage class is only a marker for the persistent id: calling it is a corrupt pickle, not a call
    path = write_pt(tmp_path / "call_storage.pt", {"x": Call("torch", "FloatStorage", (3,))}, {})
    with pytest.raises(UserError, match="not a readable pickle"):
        read_pt(path)


def test_tensor_views_outside_their_storage_are_refused(tmp_path):
    storages = {"0": np.zeros(4, np.float32)}
    for size, stride, offset in (((10,), (1,), 0), ((2, 2), (2, 1), 1), ((3,), (2,), 0)):
        path = write_pt(tmp_path / "oob.pt", {"t": Tensor("0", "FloatStorage", offset, size, stride, numel=4)},
                        storages)
        with pytest.raises(UserError, match="reach element .* of a storage of 4"):
            read_pt(path)
    path = write_pt(tmp_path / "neg.pt", {"t": Tensor("0", "FloatStorage", 0, (2,), (-1,), numel=4)}, storages)
    with pytest.raises(UserError, match="corrupt tensor"):
        read_pt(path)


# ----------------------------------------------------------------------------- bad files: one line

def _bad_files(tmp_path):
    """name → (path, words of the one-line error)."""
    good, _ = reference_like(tmp_path, "good.pt")
    text = tmp_path / "text.pt"
    text.write_text("this is not a checkpoint\n")
    bad = {"text": (str(text), "not a PyTorch zip checkpoint (truncated or corrupt?)")}
    bad["truncated"] = (truncate_file(str(reference_like(tmp_path, "truncated.pt")[0])),
                        "not a PyTorch zip checkpoint (truncated or corrupt?)")
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.")
    bad["legacy"] = (str(legacy), "the legacy (PyTorch < 1.6) format")
    with zipfile.ZipFile(tmp_path / "nopkl.pt", "w") as z:
        z.writestr("archive/data/0", b"\0" * 16)
    bad["no_data_pkl"] = (str(tmp_path / "nopkl.pt"), "a zip archive with no data.pkl")
    t, s = tensor_of(np.zeros(6, np.float32), "0")
    bad["short_storage"] = (write_pt(tmp_path / "short.pt", {"model_state_dict": OrderedDictOf({"w": t})},
                                     {"0": s[:4]}), "has 16 bytes, torch.FloatStorage of 6 elements needs 24")
    bad["missing_storage"] = (write_pt(tmp_path / "nostorage.pt", {"model_state_dict": OrderedDictOf({"w": t})},
                                       {}), "storage archive/data/0 is missing")
    garbage = write_pt(tmp_path / "garbage.pt", None, {}, raw_pickle=b"\x80\x02}q\x00(X\xff\xff\xff\x7fab")
    bad["corrupt_pickle"] = (garbage, "data.pkl is not a readable pickle (truncated or corrupt?)")
    bad["not_a_state_dict"] = (write_pt(tmp_path / "list.pt", [1, 2, 3], {}), "it holds a list, not a model_state_dict")
    # bit rot inside a stored member: the zip's CRC check catches it
    rotten = str(reference_like(tmp_path, "rotten.pt")[0])
    with zipfile.ZipFile(rotten) as z:
        info = z.getinfo("archive/data/2")
    overwrite_bytes(rotten, info.header_offset + 30 + len(info.filename) + 4, 8)
    bad["crc"] = (rotten, "corrupt zip archive")
    return good, bad


def test_bad_files_are_one_line_errors(tmp_path):
    _, bad = _bad_files(tmp_path)
    for name, (path, words) in bad.items():
        with pytest.raises(UserError) as e:
            state_dict_arrays(path)
        message = str(e.value)
        assert "\n" not in message and path in message and words in message, (name, message)


def test_cli_bad_pt_files_exit_2_with_one_line(tmp_path, capsys):
    good, bad = _bad_files(tmp_path)
    evil = write_pt(tmp_path / "evil.pt", None, {}, raw_pickle=pickle_bytes(Call("os", "system", ("true",))))
    bad["hostile"] = (evil, f"refuses to load global os.system {REFUSED}")
    bad["foreign_keys"] = (good, "missing hidden/tau_mem, hidden/tau_adp")  # a BRF-style file for ALIF
    for name, (path, words) in bad.items():
        line = error_line(_rsnn("ALIF", tmp_path, f"--load={path}"), capsys)
        assert path in line and words in line, (name, line)
    # shapes that do not fit the 4-36-6 ECG network name the key and both shapes
    line = error_line(_rsnn("BRF", tmp_path, f"--load={good}"), capsys)
    assert good in line and "hidden/linear/weight (transposed) has shape (7, 5)" in line, line


def test_cli_bad_pt_permutation_exit_2(tmp_path, capsys):
    t, s = tensor_of(np.arange(783, dtype=np.int64), "0")
    cases = {"short": (write_pt(tmp_path / "short_permuted_idx.pt", t, {"0": s}), "must be a permutation of 0..783"),
             "dict": (reference_like(tmp_path, "ckpt_permuted_idx.pt")[0], "not a 1-D integer tensor"),
             "text": (_bad_files(tmp_path)[1]["text"])}
    for name, (path, words) in cases.items():
        line = error_line(_rsnn("BRF", tmp_path, f"--permutation={path}", data_name="PSMNIST"), capsys)
        assert path in line and words in line, (name, line)
