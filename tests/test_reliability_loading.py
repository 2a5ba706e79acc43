"""Issue 16, untrusted files: items 8, 9 and three of item 11, each built for real.

* item 8: a 519-byte YAML alias bomb, a deflate-recompressed model.pt whose entries expand
  to gigabytes, a checkpoint whose ``meta`` holds a self-doubling list (40 levels, shared
  references), a small .nir with an unwritten chunked dataset of huge declared shape;
* item 9: checkpoint metadata out of range or contradicting its dataset, an int weight
  name, a tensor in ``meta.method``, NaN weights;
* item 11: 10,000-deep ``[[[[``, a non-numeric energy.yaml entry, complex weights.

The memory cases run the real command in a subprocess under an address-space limit and
report their peak RSS (``resource.getrusage``); the limits are generous (seconds, not ms).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import h5py
import pytest
import torch
from bad_input_utils import expect_error

from snnkd import io
from snnkd.neurons import NeuronConfig
from snnkd.runtime import build, model_meta, save_model

REPO = Path(__file__).resolve().parents[1]
AS_LIMIT = 4 << 30  # the process may map 4 GiB (importing torch needs ~3); a bomb fails, not the machine
EXTRA_RSS_MB = 400  # over the same command's cost when it fails at once; every bomb below needs >= 1.5 GB more
RUNNER = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
from snnkd.cli.main import main
rc = main(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
sys.exit(rc)
"""


def run_bounded(*argv: object, timeout: float = 120) -> tuple[int, str, int, float]:
    """``snnkd ARGV`` in a subprocess: ``(exit code, stderr, peak RSS in MB, seconds)``."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", RUNNER.format(limit=AS_LIMIT), *map(str, argv)],
                          capture_output=True, text=True, timeout=timeout, env=env)
    rss = int(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else -1
    return proc.returncode, proc.stderr.strip(), rss, time.monotonic() - t0


_BASE_RSS: list[int] = []


def rss_limit() -> int:
    """Peak RSS (MB) allowed for a refused bomb: what ``evaluate`` of a missing file peaks at
    in this same environment (the imports: ~850 MB alone, more after a long test session
    on some machines), plus :data:`EXTRA_RSS_MB`.  Measured once per session."""
    if not _BASE_RSS:
        rc, err, rss, _ = run_bounded("evaluate", "--model", REPO / "no-such-model.pt", "--out",
                                      REPO / "no-such-dir" / "eval.json")
        assert rc == 2 and rss > 0, err
        _BASE_RSS.append(rss)
    return _BASE_RSS[0] + EXTRA_RSS_MB


def assert_one_error(rc: int, err: str, *words: str) -> None:
    assert rc == 2, err[-2000:]
    assert "Traceback" not in err and len(err.splitlines()) == 1 and err.startswith("snnkd: error: "), err[-2000:]
    for w in words:
        assert w in err, f"{w!r} not in {err!r}"


def snn():
    model = build("resnet_tiny", NeuronConfig(), 10, 1, 8, T=2)
    return model, model_meta(model, "digits", NeuronConfig())


def ann(num_classes: int = 10, in_chans: int = 1, img_size: int = 8):
    model = build("resnet_tiny", None, num_classes, in_chans, img_size)
    return model, model_meta(model, "digits", None)


@pytest.fixture()
def inp(tmp_path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    return d


# evaluate's --noise takes a list; each item is turned into a string, which expands its aliases
ALIAS_BOMB = "noise:\n- &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n" + "".join(
    f"- &{c} [{','.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefghi", "bcdefghij"))


# --- item 8 -------------------------------------------------------------------------------------------------

def test_item_8_yaml_alias_bomb_config(inp, tmp_path):
    assert len(ALIAS_BOMB) < 600  # like the 519-byte file: 9**10 leaves once expanded
    model, meta = ann()
    save_model(inp / "m.pt", model, meta)
    cfg = inp / "bomb.yaml"
    cfg.write_text(ALIAS_BOMB)
    rc, err, rss, secs = run_bounded("evaluate", "--config", cfg, "--model", inp / "m.pt",
                                     "--out", tmp_path / "eval.json", timeout=180)
    assert_one_error(rc, err, str(cfg), "YAML aliases are not allowed")
    assert rss < rss_limit() and secs < 60
    assert not (tmp_path / "eval.json").exists()


def _recompress(src: Path, dst: Path, inflate_to: int) -> None:
    """``src``'s zip entries deflated into ``dst``; its largest tensor entry replaced by
    ``inflate_to`` zero bytes (they deflate to about a thousandth of that)."""
    with zipfile.ZipFile(src) as z:
        infos = z.infolist()
        big = max((i for i in infos if "/data/" in i.filename), key=lambda i: i.file_size)
        with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED) as out:
            for i in infos:
                if i is big:
                    with out.open(i.filename, "w", force_zip64=True) as f:
                        chunk = bytes(1 << 20)
                        for _ in range(inflate_to >> 20):
                            f.write(chunk)
                else:
                    out.writestr(i.filename, z.read(i))


def test_item_8_deflate_recompressed_checkpoint(inp, tmp_path):
    model, meta = ann()
    save_model(inp / "good.pt", model, meta)
    bomb = inp / "model.pt"
    _recompress(inp / "good.pt", bomb, 1536 << 20)
    assert bomb.stat().st_size < 3 << 20
    rc, err, rss, secs = run_bounded("evaluate", "--model", bomb, "--out", tmp_path / "eval.json")
    assert_one_error(rc, err, "model.pt", "compressed")
    assert rss < rss_limit() and secs < 60
    assert not (tmp_path / "eval.json").exists()


def _doubling(levels: int) -> list:
    a: list = [0]
    for _ in range(levels):
        a = [a, a]  # shared references: tiny in the pickle, 2**levels leaves when expanded
    return a


@pytest.mark.parametrize("key", ["method", "params", "extra_key"])
def test_item_8_checkpoint_meta_with_a_doubling_list(inp, tmp_path, key):
    model, meta = ann()
    io.save_checkpoint(inp / "model.pt", model.state_dict(), {**meta, key: _doubling(40)})
    assert (inp / "model.pt").stat().st_size < 1 << 20
    rc, err, rss, secs = run_bounded("evaluate", "--model", inp / "model.pt", "--out", tmp_path / "eval.json",
                                     timeout=90)
    assert_one_error(rc, err, "model.pt", "refused")
    assert rss < rss_limit() and secs < 60


@pytest.mark.parametrize("shape", [(2**20, 2**20), (2**14, 2**15)], ids=["4TiB", "2GiB"])
def test_item_8_nir_with_an_unwritten_chunked_dataset(inp, tmp_path, shape):
    from snnkd.export.nir_export import to_nir, write_nir

    model, meta = snn()
    save_model(inp / "snn.pt", model, meta)
    bad = inp / "bad.nir"
    write_nir(to_nir(model, meta), bad)
    with h5py.File(bad, "a") as f:
        del f["node/nodes/fc/weight"]
        f["node/nodes/fc"].create_dataset("weight", shape=shape, dtype="float32", chunks=(256, 256))  # never written
    assert bad.stat().st_size < 400 << 10
    rc, err, rss, secs = run_bounded("energy", "--model", inp / "snn.pt", "--nir", bad, "--out", tmp_path / "e.json")
    assert_one_error(rc, err, "bad.nir", "weight")
    assert rss < rss_limit() and secs < 60
    assert not (tmp_path / "e.json").exists()


# --- item 9 -------------------------------------------------------------------------------------------------

def _meta_case(change: dict) -> tuple:
    model, meta = ann()
    return model.state_dict(), {**meta, **change}


META_CASES = [  # (id, change to a good digits ANN's meta, words the error names)
    ("num-classes-negative", {"num_classes": -1}, ["num_classes", "[1, 100000]"]),
    ("num-classes-2**34", {"num_classes": 2**34}, ["num_classes"]),
    ("num-classes-text", {"num_classes": "10"}, ["num_classes"]),
    ("in-chans-zero", {"in_chans": 0}, ["in_chans"]),
    ("img-size-float", {"img_size": 8.5}, ["img_size"]),
    ("T-10**9", {"T": 10**9}, ["T", "[1, 1024]"]),
    ("T-bool", {"T": True}, ["T"]),
    ("tensor-in-method", {"method": torch.zeros(3)}, ["Tensor"]),
    ("arch-is-list", {"arch": ["resnet_tiny"]}, ["arch"]),
    ("dataset-unknown", {"dataset": "nosuch"}, ["unknown dataset"]),
    ("digits-net-labelled-mnist", {"dataset": "mnist"}, ["'mnist'", "img_size 8", "28"]),
    ("num-classes-contradicts-dataset", {"num_classes": 100}, ["num_classes 100"]),
    ("neuron-threshold-text", {"kind": "snn", "neuron": {"kind": "if", "threshold": "x"}}, ["threshold"]),
    ("neuron-unknown-field", {"kind": "snn", "neuron": {"kind": "if", "bogus": 1}}, ["bogus"]),
    ("nan-in-meta", {"test_acc": float("nan")}, ["non-finite"]),
    ("meta-key-int", {1: 2}, ["non-string key"]),
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("change,names", [c[1:] for c in META_CASES], ids=[c[0] for c in META_CASES])
def test_item_9_checkpoint_metadata(inp, tmp_path, capsys, change, names):
    state, meta = _meta_case(change)
    if change.get("num_classes") == 100:
        state = build("resnet_tiny", None, 100, 1, 8).state_dict()
    io.save_checkpoint(inp / "m.pt", state, meta)
    expect_error(["evaluate", "--model", inp / "m.pt", "--out", tmp_path / "eval.json"], tmp_path, capsys,
                 "m.pt", *names)


@pytest.mark.timeout(120)
def test_item_9_int_weight_name(inp, tmp_path, capsys):
    model, meta = ann()
    state = dict(model.state_dict())
    state[7] = state.pop("head.fc.bias")
    io.save_checkpoint(inp / "m.pt", state, meta)
    expect_error(["evaluate", "--model", inp / "m.pt", "--out", tmp_path / "eval.json"], tmp_path, capsys,
                 "m.pt", "weight names must be strings")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("teacher", [(100, 1), (10, 3)], ids=["num-classes", "in-chans"])
def test_item_9_teacher_contradicting_its_dataset(inp, tmp_path, capsys, teacher):
    k, c = teacher
    model = build("resnet_tiny", None, k, c, 8)
    save_model(inp / "t.pt", model, model_meta(model, "digits", None))
    expect_error(["distill", "--student", "resnet_tiny", "--T", "2", "--dataset", "digits", "--method", "logit",
                  "--teacher", inp / "t.pt", "--epochs", "1", "--limit-train", "40", "--no-progress",
                  "--out", tmp_path / "out"], tmp_path, capsys, "t.pt", "'digits'", f"{'num_classes' if k != 10 else 'in_chans'}")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", ["digits-labelled-mnist", "nan-weights"])
def test_item_9_export_nir_refuses_before_writing(inp, tmp_path, capsys, case):
    model, meta = snn()
    if case == "nan-weights":
        with torch.no_grad():
            model.head.fc.weight[0, :3] = float("nan")
        save_model(inp / "m.pt", model, meta)
        names = ["m.pt", "has 3 non-finite weights"]
    else:
        save_model(inp / "m.pt", model, {**meta, "dataset": "mnist"})
        names = ["m.pt", "'mnist'", "img_size 8"]
    expect_error(["export", "--model", inp / "m.pt", "--to", "nir", "--out", tmp_path / "m.nir",
                  "--limit-test", "8", "--no-third-party"], tmp_path, capsys, *names)


# --- item 11 ------------------------------------------------------------------------------------------------

@pytest.mark.timeout(120)
@pytest.mark.parametrize("text", ["[" * 10_000, "- " * 3_000 + "x\n",
                                  "{a: " * 5_000], ids=["flow-seq-10000", "block-seq-3000", "flow-map-5000"])
def test_item_11_nesting_deeply_nested_yaml(tmp_path, capsys, text):
    cfg = tmp_path / "deep.yaml"
    cfg.write_text(text)
    t0 = time.monotonic()
    expect_error(["pretrain", "--model", "resnet_tiny", "--dataset", "digits", "--config", cfg,
                  "--out", tmp_path / "out"], tmp_path, capsys, str(cfg), "nested deeper than 100 levels")
    assert time.monotonic() - t0 < 10


ENERGY = "cmos45nm: {{mac_pj: 4.6, ac_pj: 0.9, {extra}}}\n"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("entry,names", [
    ("neuron_update_pj: abc", ["cmos45nm.neuron_update_pj", "'abc'"]),
    ("neuron_update_pj: -1", ["cmos45nm.neuron_update_pj", ">= 0"]),
    ("neuron_update_pj: .nan", ["cmos45nm.neuron_update_pj", "finite"]),
    ("neuron_update_pj: [1]", ["cmos45nm.neuron_update_pj"]),
    ("source: 3", ["cmos45nm.source", "text"]),
], ids=["text", "negative", "nan", "list", "source-number"])
def test_item_11_energy_yaml_entry(inp, tmp_path, capsys, entry, names):
    model, meta = ann()
    save_model(inp / "m.pt", model, meta)
    table = inp / "energy.yaml"
    table.write_text(ENERGY.format(extra=entry))
    expect_error(["evaluate", "--model", inp / "m.pt", "--energy-table", table, "--out", tmp_path / "eval.json"],
                 tmp_path, capsys, "energy.yaml", *names)


def test_item_11_energy_yaml_packaged_table_is_valid():
    """The control: the table snnkd ships passes the same check."""
    from snnkd.validate import load_energy_table

    table = load_energy_table()
    assert set(table) == {"cmos45nm", "loihi"} and table["loihi"]["ac_pj"] == 23.6


@pytest.mark.timeout(120)
def test_item_11_complex_tensor_weights(inp, tmp_path, capsys):
    model, meta = ann()
    state = dict(model.state_dict())
    state["head.fc.weight"] = torch.complex(state["head.fc.weight"], torch.ones_like(state["head.fc.weight"]))
    io.save_checkpoint(inp / "m.pt", state, meta)
    expect_error(["evaluate", "--model", inp / "m.pt", "--out", tmp_path / "eval.json"], tmp_path, capsys,
                 "m.pt", "complex")


def test_item_11_complex_tensor_in_training_state(tmp_path):
    """Any file read with ``io.load_torch`` (training states too) refuses complex tensors."""
    path = tmp_path / "state.pt"
    torch.save({"format": "x", "opt": {"state": {0: {"buf": torch.zeros(2, dtype=torch.complex64)}}}}, path)
    with pytest.raises(Exception) as e:
        io.load_torch(path, "training state")
    assert type(e.value).__name__ == "SnnkdError" and "complex" in str(e.value)


# --- controls: good files still load ------------------------------------------------------------------------

def test_good_files_still_load(inp):
    from snnkd.export.nir_check import read_nir
    from snnkd.export.nir_export import to_nir, write_nir
    from snnkd.runtime import load_model

    model, meta = snn()
    save_model(inp / "snn.pt", model, {**meta, "method": "logit", "params": {"tau": 4, "stages": ["layer1"]}})
    back, bmeta = load_model(inp / "snn.pt")
    assert bmeta["params"] == {"tau": 4, "stages": ["layer1"]}
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), back.state_dict().values()))
    write_nir(to_nir(model, meta), inp / "g.nir")
    assert "fc" in read_nir(inp / "g.nir").nodes
    assert json.loads(json.dumps(bmeta)) == bmeta


def test_yaml_without_aliases_reads_as_safe_load():
    import yaml

    from snnkd.safeload import yaml_loads

    text = "a: [1, 2.5, {b: c}]\nd: 2020-01-02\n'e': null\n"
    assert yaml_loads(text) == yaml.safe_load(text)


def test_item_8_netx_with_an_unwritten_dataset_is_refused_before_reading(tmp_path):
    """The same bound guards ``--netx`` files (``check_netx`` reads every weight)."""
    from snnkd.errors import SnnkdError
    from snnkd.export.loihi.netx import check_netx

    path = tmp_path / "net.net"
    with h5py.File(path, "w") as f:
        g = f.create_group("layer/0")
        g["type"] = b"dense"
        g["shape"] = [10]
        g.create_group("neuron")
        g.create_dataset("weight", shape=(2**14, 2**15), dtype="float32", chunks=(256, 256))
    with pytest.raises(SnnkdError, match="unwritten"):
        check_netx(path)
