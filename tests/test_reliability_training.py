"""Issue 16, training integrity: item 3 (divergence saved as success, bare ``NaN`` in JSON),
item 7 (resuming with another ``--data-root``) and item 11's "a train state with only its
format key" (and any other malformed state).

Every case runs the real ``snnkd`` entry point on digits with tiny limits: in-process
through ``snnkd.cli.main.main`` (an unexpected exception fails the test with its traceback)
or, where the process itself matters (a real kill, the literal command of the issue), in a
subprocess.  Faults are injected the way they happen: a learning rate that blows up, weights
turned NaN by an optimizer-step hook, a run SIGKILLed between epochs.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from resume_utils import snnkd, snnkd_killed

from snnkd import io
from snnkd.cli.main import main
from snnkd.errors import SnnkdError
from snnkd.runtime import build, model_meta, save_model
from snnkd.train.loop import STATE_FORMAT

TINY = ["--dataset", "digits", "--limit-train", "64", "--batch-size", "32", "--no-progress"]  # 2 steps/epoch


def pretrain(out: Path, *extra: str) -> list[str]:
    return ["pretrain", "--model", "resnet_tiny", *TINY, "--out", str(out), *extra]


def strict_loads(text: str):
    """``json.loads`` that refuses ``NaN``/``Infinity`` (Python's parser accepts them)."""
    def refuse(constant: str):
        raise ValueError(f"not strict JSON: bare {constant}")
    return json.loads(text, parse_constant=refuse)


def error_lines(err: str) -> list[str]:
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("snnkd: error: ")]
    assert len(lines) == 1, err
    return lines


def run(argv: list[str], capsys) -> tuple[int, str]:
    rc = main([str(a) for a in argv])
    return rc, capsys.readouterr().err


class PoisonAfterStep:
    """Optimizer-step hook: after the ``n``-th step, every parameter becomes NaN (in-process)."""

    def __init__(self, n: int) -> None:
        self.n, self.count = n, 0

    def __enter__(self) -> PoisonAfterStep:
        from torch.optim.optimizer import register_optimizer_step_post_hook
        self.handle = register_optimizer_step_post_hook(self)
        return self

    def __call__(self, opt, args, kwargs) -> None:
        self.count += 1
        if self.count == self.n:
            with torch.no_grad():
                for group in opt.param_groups:
                    for p in group["params"]:
                        p.fill_(float("nan"))

    def __exit__(self, *exc) -> None:
        self.handle.remove()


# --- item 3: divergence is an error, and no JSON output holds NaN ------------------------------------------

@pytest.mark.slow  # runs a training
def test_item3_pretrain_lr_1e6_is_an_error_not_a_model(tmp_path):
    """Item 3: ``pretrain --lr 1e6`` exited 0 with 19,994 of 20,000 weights NaN.  Now: one
    error line naming where and the --lr hint, exit 2, no model.pt, metrics or config."""
    out = tmp_path / "out"
    proc = snnkd(pretrain(out, "--epochs", "2", "--lr", "1e6"))
    assert proc.returncode == 2, proc.stderr
    (line,) = error_lines(proc.stderr)
    assert proc.stderr.strip() == line  # nothing else: the run never finished an epoch
    assert "diverged" in line and "epoch 1" in line and "lower --lr" in line, line
    assert not (out / "model.pt").exists() and not (out / "config.yaml").exists()
    assert not (out / "metrics.jsonl").exists() and not (out / "train_state.pt").exists()


@pytest.mark.slow  # runs a training
def test_item3_nan_loss_stops_at_the_step(tmp_path, capsys):
    """Item 3: a loss that turns NaN mid-epoch stops the run at that step (not after the epoch)."""
    out = tmp_path / "out"
    with PoisonAfterStep(1) as hook:
        rc, err = run(pretrain(out, "--epochs", "1", "--limit-train", "96"), capsys)  # 3 steps
    (line,) = error_lines(err)
    assert rc == 2 and "epoch 1, step 2: the loss is nan" in line, err
    assert hook.count == 2  # the third step never ran
    assert not (out / "model.pt").exists() and not (out / "metrics.jsonl").exists()


@pytest.mark.slow  # runs a training
def test_item3_nan_weights_after_the_last_step_are_caught_at_epoch_end(tmp_path, capsys):
    """Item 3: weights that turn NaN in the epoch's last step (no later loss to show it) are
    found by the epoch-end check, which names the tensor; nothing is written."""
    out = tmp_path / "out"
    with PoisonAfterStep(2):  # the last of epoch 1's 2 steps
        rc, err = run(pretrain(out, "--epochs", "2"), capsys)
    (line,) = error_lines(err)
    assert rc == 2 and "the end of epoch 1" in line and "weight' is not finite" in line, err
    assert "no epoch completed" in line and not out.exists(), line


@pytest.mark.slow  # runs a training
def test_item3_divergence_keeps_the_last_good_state_for_resume(tmp_path, capsys):
    """Item 3: divergence in epoch 2 keeps epoch 1's state (and its metrics line), writes no
    model; the same command resumes from that state and finishes."""
    out = tmp_path / "out"
    argv = pretrain(out, "--epochs", "2")
    with PoisonAfterStep(3):  # epoch 2, step 1
        rc, err = run(argv, capsys)
    (line,) = error_lines(err)
    assert rc == 2 and "epoch 2, step 2" in line and "state of epoch 1 stays at" in line, err
    assert sorted(p.name for p in out.iterdir()) == ["metrics.jsonl", "train_state.pt"]  # no model, no temp
    state = torch.load(out / "train_state.pt", weights_only=True)
    assert state["epoch"] == 1 and all(math.isfinite(t.float().sum()) for t in state["student"].values())
    rows = [strict_loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1]
    rc, err = run(argv, capsys)
    assert rc == 0 and "resuming from" in err and "after epoch 1" in err, err
    assert (out / "model.pt").is_file() and not (out / "train_state.pt").exists()


@pytest.mark.slow  # runs a training
def test_item3_metrics_and_eval_are_strict_json(tmp_path, capsys):
    """Item 3: metrics.jsonl and eval.json held bare ``NaN`` (an empty validation set gave
    ``val_loss: NaN``).  Every line/file now parses as strict JSON; no validation is null."""
    out = tmp_path / "out"
    rc, err = run(pretrain(out, "--epochs", "1", "--val-fraction", "0"), capsys)
    assert rc == 0, err
    rows = [strict_loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["val_acc"] is None and rows[0]["val_loss"] is None
    assert math.isfinite(rows[0]["train_loss"])
    rc, err = run(["evaluate", "--model", out / "model.pt", "--out", tmp_path / "eval.json", "--limit-test", "40"],
                  capsys)
    assert rc == 0, err
    assert 0 <= strict_loads((tmp_path / "eval.json").read_text())["accuracy"] <= 100


@pytest.mark.slow  # runs a training
def test_item3_evaluate_writes_no_nan(tmp_path, capsys):
    """Item 3: a model whose outputs overflow (finite weights of 1e30: loss NaN) made
    evaluate write ``"loss": NaN`` and exit 0; now it is one error line and no eval.json."""
    model = build("resnet_tiny", None, 10, 1, 8)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1e30)
    save_model(tmp_path / "huge.pt", model, model_meta(model, "digits", None))
    rc, err = run(["evaluate", "--model", tmp_path / "huge.pt", "--out", tmp_path / "eval.json",
                   "--limit-test", "40"], capsys)
    (line,) = error_lines(err)
    assert rc == 2 and "eval.json" in line, err
    assert not (tmp_path / "eval.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.pt"]  # no temp file either


finite_or_not = st.floats(allow_nan=True, allow_infinity=True)
json_like = st.recursive(st.none() | st.booleans() | st.integers() | finite_or_not | st.text(max_size=5),
                         lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=4), kids, max_size=4),
                         max_leaves=12)


def has_non_finite(obj) -> bool:
    if isinstance(obj, float):
        return not math.isfinite(obj)
    if isinstance(obj, dict):
        return any(has_non_finite(v) for v in obj.values())
    return isinstance(obj, list) and any(has_non_finite(v) for v in obj)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(obj=json_like)
def test_item3_write_json_is_strict_or_refuses(tmp_path, obj):
    """Item 3 (property): write_json/write_jsonl either write strict JSON that reads back
    equal, or (a NaN/infinity anywhere) raise one SnnkdError and leave no file at all."""
    d = tmp_path / "w"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    for write, name in ((io.write_json, "x.json"), (lambda p, o: io.write_jsonl(p, [o, o]), "x.jsonl")):
        if has_non_finite(obj):
            with pytest.raises(SnnkdError, match="not a finite number"):
                write(d / name, obj)
            assert list(d.iterdir()) == []
        else:
            write(d / name, obj)
            text = (d / name).read_text()
            parsed = [strict_loads(ln) for ln in text.splitlines()] if name.endswith("l") else [strict_loads(text)]
            assert all(p == json.loads(json.dumps(obj)) for p in parsed)
            (d / name).unlink()


# --- item 7: the data root is part of a run's identity -----------------------------------------------------

@pytest.fixture(scope="module")
def killed_run(tmp_path_factory) -> dict[str, Path]:
    """A real 2-epoch run with ``--data-root R1``, SIGKILLed just before its epoch-2 state:
    ``OUT/train_state.pt`` holds epoch 1."""
    root = tmp_path_factory.mktemp("killed")
    (root / "r1").mkdir()
    (root / "r2").mkdir()
    out = root / "out"
    proc = snnkd_killed("before:train_state.pt", 2, pretrain(out, "--epochs", "2", "--data-root", str(root / "r1")))
    assert proc.returncode != 0 and (out / "train_state.pt").is_file(), proc.stderr
    return {"root": root, "out": out, "state": out / "train_state.pt"}


def copy_run(killed_run: dict[str, Path], dest: Path) -> Path:
    out = dest / "out"
    shutil.copytree(killed_run["out"], out)
    return out


@pytest.mark.slow  # runs a training
def test_item7_resume_with_another_data_root_is_refused(killed_run, tmp_path, capsys):
    """Item 7: resuming with another --data-root trained one model on two datasets; now it
    is refused in one line naming both (resolved) roots, and the state is left as it was."""
    out = copy_run(killed_run, tmp_path)
    before = (out / "train_state.pt").read_bytes()
    r1, r2 = (killed_run["root"] / "r1").resolve(), (killed_run["root"] / "r2").resolve()
    rc, err = run(pretrain(out, "--epochs", "2", "--data-root", killed_run["root"] / "r2"), capsys)
    (line,) = error_lines(err)
    assert rc == 2 and "different settings" in line and "data_root" in line, err
    assert str(r1) in line and str(r2) in line, line
    assert (out / "train_state.pt").read_bytes() == before and not (out / "model.pt").exists()


@pytest.mark.slow  # runs a training
def test_item7_same_data_root_spelled_otherwise_resumes(killed_run, tmp_path, capsys, monkeypatch):
    """Item 7, the control: the same root given relative to the working directory resumes."""
    out = copy_run(killed_run, tmp_path)
    monkeypatch.chdir(killed_run["root"])
    rc, err = run(pretrain(out, "--epochs", "2", "--data-root", "r1"), capsys)
    assert rc == 0 and "after epoch 1" in err, err
    assert (out / "model.pt").is_file()


# --- item 11: a malformed training state is one line, never a KeyError --------------------------------------

def state_case(state: dict, case: str) -> dict:
    """``state`` damaged as ``case`` says."""
    s = dict(state)
    if case == "only-format-key":
        return {"format": STATE_FORMAT}
    if case.startswith("drop:"):
        del s[case[5:]]
    elif case == "epoch-str":
        s["epoch"] = "1"
    elif case == "epoch-zero":
        s["epoch"] = 0
    elif case == "epoch-beyond":
        s["epoch"] = 7
    elif case == "student-list":
        s["student"] = list(s["student"].values())
    elif case == "student-value-str":
        s["student"] = {**s["student"], next(iter(s["student"])): "weights"}
    elif case == "history-ints":
        s["history"] = [1]
    elif case == "rng-no-numpy":
        s["rng"] = {k: v for k, v in s["rng"].items() if k != "numpy"}
    elif case == "rng-numpy-keys-int":
        s["rng"] = {**s["rng"], "numpy": {**s["rng"]["numpy"], "keys": 3}}
    elif case == "optimizer-no-groups":
        s["optimizer"] = {"state": {}}
    elif case == "momentum-wrong-shape":
        opt = s["optimizer"]
        s["optimizer"] = {**opt, "state": {k: {**v, "momentum_buffer": torch.zeros(3)} for k, v in opt["state"].items()}}
    elif case == "scheduler-epoch-str":
        s["scheduler"] = {**s["scheduler"], "last_epoch": "x"}
    elif case == "threads-str":
        s["threads"] = "2"
    else:
        raise AssertionError(case)
    return s


CASES = ["only-format-key", *(f"drop:{k}" for k in ("epoch", "student", "method", "optimizer", "scheduler", "rng",
                                                     "history", "fit")),
         "epoch-str", "epoch-zero", "epoch-beyond", "student-list", "student-value-str", "history-ints",
         "rng-no-numpy", "rng-numpy-keys-int", "optimizer-no-groups", "momentum-wrong-shape",
         "scheduler-epoch-str", "threads-str"]


@pytest.mark.slow  # runs a training
@pytest.mark.parametrize("case", CASES)
def test_item11_state_malformed_is_one_line(killed_run, tmp_path, capsys, case):
    """Item 11: state: a train state with only its format key raised KeyError (traceback);
    so did any other missing key or wrong type.  Now: one "incomplete training state" line,
    exit 2, the state file untouched and no model written."""
    state = torch.load(killed_run["state"], weights_only=True)
    path = tmp_path / "state.pt"
    torch.save(state_case(state, case), path)
    before = path.read_bytes()
    rc, err = run(pretrain(tmp_path / "out", "--epochs", "2", "--state", path,
                           "--data-root", killed_run["root"] / "r1"), capsys)
    (line,) = error_lines(err)
    assert rc == 2 and "incomplete training state" in line and "state.pt" in line, err
    assert path.read_bytes() == before and not (tmp_path / "out" / "model.pt").exists()


leaf = st.none() | st.booleans() | st.integers(-3, 10**6) | st.floats() | st.text(max_size=3) | st.just(torch.zeros(2))


@pytest.mark.slow  # runs a training
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(["epoch", "student", "method", "optimizer", "scheduler", "rng", "history", "fit",
                            "threads"]),
       sub=st.integers(0, 50), value=leaf | st.lists(leaf, max_size=3))
def test_item11_state_fuzz_never_a_traceback(killed_run, tmp_path, capsys, key, sub, value):
    """Item 11: state (property): one entry of a real state replaced (at the top or one level
    down) by an arbitrary value: the run either resumes or stops with one error line."""
    state = torch.load(killed_run["state"], weights_only=True)
    if isinstance(state[key], dict) and state[key]:
        inner = sorted(state[key], key=str)[sub % len(state[key])]
        state[key] = {**state[key], inner: value}
    else:
        state[key] = value
    d = tmp_path / f"f{key}{sub}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    torch.save(state, d / "state.pt")
    rc, err = run(pretrain(d / "out", "--epochs", "2", "--state", d / "state.pt",
                           "--data-root", killed_run["root"] / "r1"), capsys)
    assert "Traceback" not in err
    if rc != 0:
        error_lines(err)
        assert not (d / "out" / "model.pt").exists()
