"""Bad input: every case must exit non-zero with exactly one ``snnkd: error:`` line that
names the problem, no traceback, and leave no output behind (no new file or directory).

Cases run the real ``snnkd`` entry point in-process (an unexpected exception fails the
test with its traceback); the code-carrying pickle also runs in a subprocess.  The files
fed in are built here: configs, checkpoints (truncated, random, code-carrying, foreign
architecture, wrong kind), training states, empty data roots.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bad_input_utils import expect_error

from snnkd import io
from snnkd.cli.main import main
from snnkd.neurons import NeuronConfig
from snnkd.runtime import build, model_meta, save_model

QUICK = ["--dataset", "digits", "--limit-train", "40", "--epochs", "1", "--batch-size", "20", "--no-progress"]
PRETRAIN = ["pretrain", "--model", "resnet_tiny", *QUICK]
NO_MODEL = ["pretrain", *QUICK]  # for configs that name the model (the command line would win)
NO_DATASET = ["pretrain", "--model", "resnet_tiny", *QUICK[2:]]
DISTILL = ["distill", "--student", "resnet_tiny", "--T", "2", *QUICK]


class CodePayload:
    """Pickles as a call to ``os.system``: unpickling it would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# --- configs ------------------------------------------------------------------------------------------------

CONFIGS = [  # (id, command, YAML text, words the error must contain; {cfg}: the file)
    ("unknown-key", PRETRAIN, "bogus: 1\n", ["{cfg}", "unknown option 'bogus'"]),
    ("key-of-other-command", PRETRAIN, "student: resnet_tiny\n", ["{cfg}", "unknown option 'student'"]),
    ("nested-config", PRETRAIN, "config: other.yaml\n", ["{cfg}", "unknown option 'config'"]),
    ("non-string-key", PRETRAIN, "1: 2\n", ["{cfg}", "unknown option 1"]),
    ("int-is-text", PRETRAIN, "epochs: abc\n", ["{cfg}", "--epochs", "abc"]),
    ("help-key", PRETRAIN, "help: true\n", ["{cfg}", "unknown option 'help'"]),
    ("path-is-list", PRETRAIN, "data_root: [a, b]\n", ["{cfg}", "'data_root' takes one value"]),
    ("path-is-mapping", PRETRAIN, "state: {a: 1}\n", ["{cfg}", "'state' takes one value"]),
    ("name-is-bool", NO_DATASET, "dataset: yes\n", ["{cfg}", "'dataset' takes one value, not true/false"]),
    ("int-is-list", PRETRAIN, "batch_size: [1, 2]\n", ["{cfg}", "'batch_size' takes one value"]),
    ("int-is-float", PRETRAIN, "epochs: 1.5\n", ["{cfg}", "--epochs", "1.5"]),
    ("int-is-bool", PRETRAIN, "seed: true\n", ["{cfg}", "'seed' takes one value"]),
    ("flag-is-int", PRETRAIN, "no_progress: 1\n", ["{cfg}", "no_progress", "true or false"]),
    ("zero-epochs", PRETRAIN, "epochs: 0\n", ["{cfg}", "--epochs"]),
    ("zero-T", DISTILL, "T: 0\n", ["{cfg}", "--T", "0"]),
    ("negative-T", DISTILL, "T: -2\n", ["{cfg}", "--T", "-2"]),
    ("text-T", DISTILL, "T: four\n", ["{cfg}", "--T", "four"]),
    ("negative-lr", PRETRAIN, "lr: -0.1\n", ["{cfg}", "--lr"]),
    ("infinite-lr", PRETRAIN, "lr: .inf\n", ["{cfg}", "--lr"]),
    ("negative-momentum", PRETRAIN, "momentum: -1\n", ["{cfg}", "--momentum"]),
    ("val-fraction-above-1", PRETRAIN, "val_fraction: 1.5\n", ["{cfg}", "--val-fraction"]),
    ("negative-workers", PRETRAIN, "num_workers: -1\n", ["{cfg}", "--num-workers"]),
    ("unknown-device", PRETRAIN, "device: tpu9\n", ["{cfg}", "--device", "tpu9"]),
    ("unknown-optimizer", PRETRAIN, "optimizer: lbfgs\n", ["{cfg}", "--optimizer", "lbfgs"]),
    ("unknown-encoding", DISTILL, "encoding: morse\n", ["{cfg}", "--encoding", "morse"]),
    ("unknown-surrogate", DISTILL, "surrogate: step\n", ["{cfg}", "--surrogate", "step"]),
    ("lif-decay-above-1", DISTILL, "neuron: lif\ndecay: 1.5\n", ["decay"]),
    ("unknown-method", DISTILL, "method: nosuch\n", ["unknown method 'nosuch'"]),
    ("unknown-model", NO_MODEL, "model: nosuch\n", ["unknown model 'nosuch'"]),
    ("unknown-dataset", NO_DATASET, "dataset: nosuch\n", ["unknown dataset 'nosuch'"]),
    ("unknown-trainer", DISTILL, "trainer: nosuch\n", ["unknown trainer 'nosuch'"]),
    ("model-with-path-separator", NO_MODEL, "model: ../resnet_tiny\n", ["unknown model '../resnet_tiny'"]),
    ("dataset-with-path-separator", NO_DATASET, "dataset: digits/../../etc\n", ["unknown dataset 'digits/../../etc'"]),
    ("method-with-path-separator", DISTILL, "method: ../none\n", ["unknown method '../none'"]),
    ("param-without-value", DISTILL, "param: [tau]\n", ["KEY=VALUE", "tau"]),
    ("unknown-hyperparameter", DISTILL, "param: {foo: 1}\n", ["no hyperparameter foo"]),
    ("not-a-mapping", PRETRAIN, "- epochs\n- 2\n", ["{cfg}", "expected a mapping"]),
    ("not-yaml", PRETRAIN, "epochs: [1,\n", ["{cfg}", "not valid YAML"]),
    ("python-tag", PRETRAIN, "seed: !!python/object/apply:os.system ['touch {root}/PWNED']\n", ["{cfg}", "not valid YAML"]),
]


@pytest.mark.parametrize("cmd,text,names", [c[1:] for c in CONFIGS], ids=[c[0] for c in CONFIGS])
def test_bad_config(tmp_path, capsys, cmd, text, names):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text.replace("{root}", str(tmp_path)))
    # the config comes last so that its values override the defaults given before it
    names = [n.replace("{cfg}", str(cfg)) for n in names]
    expect_error([*cmd, "--out", tmp_path / "out", "--config", cfg], tmp_path, capsys, *names)
    assert not (tmp_path / "PWNED").exists()


def test_missing_config_file(tmp_path, capsys):
    expect_error([*PRETRAIN, "--out", tmp_path / "out", "--config", tmp_path / "nope.yaml"], tmp_path, capsys,
                 "config file not found", "nope.yaml")


@pytest.mark.parametrize("argv,names", [
    (["distill", "--T", "0"], ["--T"]),
    (["pretrain", "--epochs", "-3"], ["--epochs"]),
    (["pretrain", "--bogus", "1"], ["unrecognized arguments", "--bogus"]),
    (["nosuchcommand"], ["invalid choice", "nosuchcommand"]),
    (["evaluate", "--device", "tpu"], ["--device", "tpu"]),
    (["pretrain", "--model", "resnet_tiny", "--dataset", "digits"], ["--out"]),
], ids=["T-zero", "negative-epochs", "unknown-flag", "unknown-command", "evaluate-device", "missing-out"])
def test_bad_command_line(tmp_path, capsys, argv, names):
    expect_error(argv, tmp_path, capsys, *names)


# --- checkpoints --------------------------------------------------------------------------------------------

def ann(arch: str = "resnet_tiny", dataset: str = "digits"):
    model = build(arch, None, 10, 1, 8)
    return model, model_meta(model, dataset, None)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    """Good and bad model files, made once; ``ckpts["marker"]`` appears if any payload runs."""
    d = tmp_path_factory.mktemp("in")
    marker = d.parent / f"{d.name}-PWNED"
    model, meta = ann()
    save_model(d / "good.pt", model, meta)
    raw = (d / "good.pt").read_bytes()
    (d / "truncated.pt").write_bytes(raw[: len(raw) // 2])
    (d / "random.pt").write_bytes(os.urandom(4096))
    (d / "empty.pt").write_bytes(b"")
    torch.save({"format": io.CHECKPOINT_FORMAT, "meta": meta, "state_dict": {"w": CodePayload(marker)}}, d / "code.pt")
    (d / "code.pkl").write_bytes(pickle.dumps(CodePayload(marker), protocol=2))
    vgg, _ = ann("vgg_tiny")
    io.save_checkpoint(d / "other_arch.pt", vgg.state_dict(), meta)  # says resnet_tiny, holds vgg_tiny
    io.save_torch(d / "plain.pt", {"weight": torch.zeros(3)})
    io.save_checkpoint(d / "no_meta_keys.pt", model.state_dict(), {"arch": "resnet_tiny"})
    io.save_checkpoint(d / "evil_arch.pt", model.state_dict(), {**meta, "arch": "../../etc/passwd"})
    io.save_checkpoint(d / "odd_kind.pt", model.state_dict(), {**meta, "kind": "snn"})  # an SNN without neurons
    cifar = build("resnet_tiny", None, 10, 3, 32)  # a consistent cifar10 teacher (a digits net labelled so is refused)
    io.save_checkpoint(d / "cifar_teacher.pt", cifar.state_dict(), {**meta, "dataset": "cifar10", "in_chans": 3,
                                                                    "img_size": 32})
    snn = build("resnet_tiny", NeuronConfig(), 10, 1, 8, T=2)
    save_model(d / "snn.pt", snn, model_meta(snn, "digits", NeuronConfig()))
    vgg_teacher, vgg_meta = ann("vgg_tiny")
    save_model(d / "vgg_teacher.pt", vgg_teacher, vgg_meta)
    assert not marker.exists()
    return {**{p.name: p for p in d.iterdir()}, "marker": marker}


CHECKPOINTS = [  # (file, words the error must contain)
    ("truncated", ["truncated.pt", "not a readable checkpoint"]),
    ("random", ["random.pt", "not a readable checkpoint"]),
    ("empty", ["empty.pt", "not a readable checkpoint"]),
    ("code", ["code.pt", "refused"]),
    ("code.pkl", ["code.pkl"]),
    ("other_arch", ["other_arch.pt", "do not fit architecture 'resnet_tiny'"]),
    ("plain", ["plain.pt", "not an snnkd model checkpoint"]),
    ("no_meta_keys", ["no_meta_keys.pt", "lacks"]),
    ("evil_arch", ["unknown model '../../etc/passwd'"]),
    ("odd_kind", ["odd_kind.pt", "kind 'snn' with neuron None"]),
    ("missing", ["not found", "missing.pt"]),
]


def checkpoint(ckpts: dict[str, Path], name: str) -> Path:
    """The file called ``name`` (``.pt`` unless it has a suffix); ``missing`` does not exist."""
    return ckpts["good.pt"].parent / (name if "." in name else f"{name}.pt")


@pytest.mark.parametrize("name,names", CHECKPOINTS, ids=[c[0] for c in CHECKPOINTS])
def test_bad_model_for_evaluate(ckpts, tmp_path, capsys, name, names):
    expect_error(["evaluate", "--model", checkpoint(ckpts, name), "--out", tmp_path / "eval.json"],
                 tmp_path, capsys, *names)
    assert not ckpts["marker"].exists(), "unpickling ran code from a checkpoint"


@pytest.mark.parametrize("name,names", [
    *CHECKPOINTS,
    ("snn", ["snn.pt", "holds an SNN"]),
    ("cifar_teacher", ["'cifar10'", "'digits'"]),
], ids=[*(c[0] for c in CHECKPOINTS), "snn-teacher", "teacher-of-other-dataset"])
def test_bad_teacher_for_distill(ckpts, tmp_path, capsys, name, names):
    expect_error([*DISTILL, "--method", "logit", "--teacher", checkpoint(ckpts, name), "--out", tmp_path / "out"],
                 tmp_path, capsys, *names)
    assert not ckpts["marker"].exists(), "unpickling ran code from a checkpoint"


def test_code_carrying_checkpoint_in_a_subprocess(ckpts, tmp_path):
    """End to end: the real process refuses the file and the payload never runs."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = tmp_path / "eval.json"
    proc = subprocess.run([sys.executable, "-m", "snnkd", "evaluate", "--model", str(ckpts["code.pt"]), "--out", str(out)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "refused" in proc.stderr
    assert not ckpts["marker"].exists() and not out.exists()


@pytest.mark.parametrize("method,params,names", [
    ("blockwise", [], ["same stage names", "layer1", "block1"]),
    ("feature", ["--param", "stages=[layer1]"], ["'layer1'", "no such stage"]),
], ids=["blockwise-resnet-from-vgg", "feature-stage-missing-in-teacher"])
def test_teacher_student_pair_the_method_cannot_combine(ckpts, tmp_path, capsys, method, params, names):
    expect_error([*DISTILL, "--method", method, *params, "--teacher", ckpts["vgg_teacher.pt"], "--out", tmp_path / "out"],
                 tmp_path, capsys, *names)


# --- training states -----------------------------------------------------------------------------------------

def test_corrupt_training_state(ckpts, tmp_path, capsys):
    state = tmp_path / "state.pt"
    state.write_bytes(ckpts["truncated.pt"].read_bytes())
    expect_error([*PRETRAIN, "--state", state, "--out", tmp_path / "out"], tmp_path, capsys,
                 "state.pt", "training state")


def test_model_file_as_training_state(ckpts, tmp_path, capsys):
    expect_error([*PRETRAIN, "--state", ckpts["good.pt"], "--out", tmp_path / "out"], tmp_path, capsys,
                 "good.pt", "not an snnkd training state")


# --- data ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dataset", ["cifar10", "cifar100", "mnist", "fashion_mnist", "imagenet"])
def test_missing_dataset_offline(tmp_path, capsys, dataset, monkeypatch):
    import snnkd.data
    monkeypatch.setattr(snnkd.data, "DEBIAN_FASHION_MNIST", tmp_path / "no-debian-copy")
    root = tmp_path / "data"
    root.mkdir()
    expect_error(["pretrain", "--model", "resnet_tiny", "--dataset", dataset, "--data-root", root,
                  "--epochs", "1", "--out", tmp_path / "out"], tmp_path, capsys,
                 f"dataset {dataset!r} not found under {root}", "expected layout")


def write_state(argv: list[str], path: Path) -> None:
    """A training state after epoch 1, as ``snnkd ARGV`` would have saved it."""
    from snnkd.cli.main import parse_args
    from snnkd.cli.training import fit_config, run_identity
    from snnkd.methods import build_method
    from snnkd.train.loop import _save_state, make_optimizer

    a = parse_args([str(x) for x in argv])
    model, meta = ann()
    method = build_method("none", model, None, {})
    cfg = fit_config(a)
    cfg.identity = run_identity(a, meta)
    opt = make_optimizer(list(model.parameters()), cfg)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    _save_state(path, 1, model, method, opt, sched, [], cfg)


@pytest.mark.parametrize("change,names", [
    (["--limit-train", "60"], ["limit_train"]),
    (["--val-fraction", "0.2"], ["val_fraction"]),
    (["--epochs", "2"], ["epochs"]),
    (["--lr", "0.5"], ["lr"]),
    (["--model", "vgg_tiny"], ["arch"]),
], ids=["limit-train", "val-fraction", "epochs", "lr", "model"])
def test_training_state_of_another_run(tmp_path, capsys, change, names):
    state = tmp_path / "in" / "state.pt"
    state.parent.mkdir()
    write_state([*PRETRAIN, "--state", state, "--out", tmp_path / "x"], state)
    expect_error([*PRETRAIN, *change, "--state", state, "--out", tmp_path / "out"], tmp_path, capsys,
                 "state.pt", "different settings", *names)


def test_training_state_of_the_same_run_is_resumed(tmp_path, capsys):
    """The control for the test above: the same command takes the state and finishes."""
    state = tmp_path / "state.pt"
    argv = [*PRETRAIN, "--state", state, "--out", tmp_path / "out"]
    write_state(argv, state)
    assert main([str(x) for x in argv]) == 0
    assert "resuming from" in capsys.readouterr().err
    assert (tmp_path / "out" / "model.pt").is_file() and not state.exists()


# --- outputs that cannot be written ----------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["out", "out-below", "state"])
def test_output_under_a_file(tmp_path, capsys, where):
    blocker = tmp_path / "afile"
    blocker.write_text("not a directory")
    out = {"out": blocker, "out-below": blocker / "sub"}.get(where, tmp_path / "out")
    state = ["--state", blocker / "state.pt"] if where == "state" else []
    expect_error([*PRETRAIN, "--out", out, *state], tmp_path, capsys, "cannot write", "afile is not a directory")


def test_evaluate_output_is_a_directory(ckpts, tmp_path, capsys):
    (tmp_path / "dir").mkdir()
    expect_error(["evaluate", "--model", ckpts["good.pt"], "--out", tmp_path / "dir"], tmp_path, capsys,
                 "cannot write", "is a directory")


def test_evaluate_on_a_missing_dataset(tmp_path, capsys):
    model, meta = ann()
    (tmp_path / "in").mkdir()
    save_model(tmp_path / "in" / "cifar.pt", build("resnet_tiny", None, 10, 3, 32), {**meta, "dataset": "cifar10",
                                                                                       "in_chans": 3, "img_size": 32})
    (tmp_path / "data").mkdir()
    expect_error(["evaluate", "--model", tmp_path / "in" / "cifar.pt", "--data-root", tmp_path / "data",
                  "--out", tmp_path / "eval.json"], tmp_path, capsys, "dataset 'cifar10' not found")


def test_resume_with_another_thread_count_warns(tmp_path, capsys):
    state = tmp_path / "state.pt"
    argv = [*PRETRAIN, "--state", state, "--out", tmp_path / "out"]
    write_state(argv, state)
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        assert main([str(x) for x in argv]) == 0
    finally:
        torch.set_num_threads(threads)
    err = capsys.readouterr().err
    assert f"written with {threads} CPU threads, this run uses {threads + 1}" in err


def test_config_of_random_bytes(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(b"epochs: 2\n\xff\xfe\x00\x81")
    expect_error([*PRETRAIN, "--out", tmp_path / "out", "--config", cfg], tmp_path, capsys, str(cfg), "not UTF-8")


def numeric_hyperparameters() -> list[tuple[str, str]]:
    from snnkd.methods import list_methods, method_params
    return [(m, k) for m in list_methods() for k, v in method_params(m).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)]


@pytest.mark.parametrize("method,key", numeric_hyperparameters(), ids=lambda x: str(x))
@pytest.mark.parametrize("value", ["abc", "[1]"])
def test_non_numeric_hyperparameter_of_every_method(ckpts, tmp_path, capsys, method, key, value):
    expect_error([*DISTILL, "--method", method, "--teacher", ckpts["good.pt"], "--param", f"{key}={value}",
                  "--out", tmp_path / "out"], tmp_path, capsys, f"'{method}'", key, "must be a number")
