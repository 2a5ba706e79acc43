"""Issue 16 (reliability), the Snakemake workflow part: items 4, 8 (workflow config alias
bomb) and 11 (duplicate variant keys, a trailing newline passing the schema patterns,
deeply nested YAML).  Every test runs the real ``snakemake`` (dry runs unless a shell
command must really run) or the real schema / config reader the Snakefile uses."""

from __future__ import annotations

import json
import os
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("snakemake.utils")
from schema_utils import accepted  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = ROOT / "Snakefile"
TINY = ROOT / "config" / "test" / "tiny.yaml"
SAFE_CONFIG = ROOT / "workflow" / "rules" / "safe_config.smk"
SID = "digits/rt/rt/logit/bptt/T2/seed0"
SETTINGS = settings(max_examples=int(os.environ.get("SNNKD_HYPOTHESIS_EXAMPLES", "50")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# Runs snakemake as its only child under a 3 GB address-space cap (so a regression cannot
# exhaust the machine), and reports exit status, output, wall time and the child's peak RSS.
MEASURE = r"""
import json, resource, subprocess, sys, time
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
t = time.monotonic()
try:
    r = subprocess.run(sys.argv[2:], capture_output=True, text=True, timeout=float(sys.argv[1]))
    rc, out = r.returncode, r.stdout + r.stderr
except subprocess.TimeoutExpired as e:
    rc, out = "timeout", str(e.stdout or "") + str(e.stderr or "")
print(json.dumps({"rc": rc, "out": out, "seconds": time.monotonic() - t,
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def smk(workdir: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run snakemake on the repository's Snakefile in ``workdir``."""
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-d", str(workdir), *args],
                          capture_output=True, text=True, timeout=timeout)


def measured_dry_run(workdir: Path, config: Path, limit: float = 45) -> dict:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-d", str(workdir), "-n",
           "--configfile", str(config)]
    r = subprocess.run([sys.executable, "-c", MEASURE, str(limit), *cmd], capture_output=True, text=True,
                       timeout=limit + 60)
    return json.loads(r.stdout)


def tiny_text() -> str:
    return TINY.read_text()


def write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def bomb(levels: int = 9, fanout: int = 9, indent: str = "") -> list[str]:
    """Lines of a YAML 'billion laughs': level i is a list of ``fanout`` aliases of level i-1."""
    lines = [f"{indent}bomb0: &a0 [{', '.join(['lol'] * fanout)}]"]
    for i in range(1, levels + 1):
        lines.append(f"{indent}bomb{i}: &a{i} [{', '.join([f'*a{i - 1}'] * fanout)}]")
    return lines


def with_logit_params(extra: list[str]) -> str:
    """tiny.yaml whose logit method params (free-form in the schema) also hold ``extra`` lines."""
    old = "    params: {tau: 4, alpha: 0.9}\n"
    assert old in tiny_text()
    return tiny_text().replace(old, "    params:\n      tau: 4\n      alpha: 0.9\n" + "\n".join(extra) + "\n")


def refused(r: subprocess.CompletedProcess | dict, *needles: str) -> str:
    """Assert a dry run stopped with a non-zero exit and every needle in its output."""
    rc = r["rc"] if isinstance(r, dict) else r.returncode
    out = r["out"] if isinstance(r, dict) else r.stdout + r.stderr
    assert rc not in (0, "timeout"), out[-2000:]
    for needle in needles:
        assert needle in out, out[-2000:]
    return out


# ---------------------------------------------------------------- item 4: shell injection

BAD_IDS = ["x;touch pwned;y", "x y", "x'y", "x$(touch pwned)y", "x`touch pwned`y", 'x"y', "x|y", "x&y"]


@pytest.mark.timeout(300)
def test_item_4_metacharacters_in_a_requested_path_run_no_shell(tmp_path: Path):
    """The exploit from the issue, run for real: it must not run ``touch pwned``."""
    bad = "x;touch pwned;y"
    model = tmp_path / "results" / "distill" / bad / "model.pt"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"not a model")
    r = smk(tmp_path, "-c1", f"results/evaluate/distill/{bad}/eval.json", "--configfile", str(TINY))
    assert not list(tmp_path.rglob("pwned")), "a shell fragment from a path was run"
    refused(r, "MissingRuleException")
    assert model.read_bytes() == b"not a model"


def plant_models(workdir: Path, bad: str) -> str:
    """Input models under run ids holding ``bad``; returns the student id."""
    sid = f"digits/rt/{bad}/logit/bptt/T2/seed0"
    for stage, run in [("distill", sid), ("pretrain", f"digits/{bad}")]:
        model = workdir / "results" / stage / run / "model.pt"
        model.parent.mkdir(parents=True)
        model.write_bytes(b"m")
    return sid


def targets_for(bad: str) -> dict[str, str]:
    """One target of every rule with a wildcard, with ``bad`` in one of its path components."""
    sid = f"digits/rt/{bad}/logit/bptt/T2/seed0"
    return {"evaluate-distill": f"results/evaluate/distill/{sid}/eval.json",
            "evaluate-pretrain": f"results/evaluate/pretrain/digits/{bad}/eval.json",
            "export-nir": f"results/export/nir/{sid}/model.nir",
            "export-onnx": f"results/export/onnx/{sid}/onnx.json",
            "export-lava": f"results/export/lava/{sid}/lava.json",
            "energy": f"results/energy/{sid}/energy.md",
            "pretrain": f"results/pretrain/digits/{bad}/model.pt",
            "distill-T": f"results/distill/{SID.replace('T2', 'T2;x')}/model.pt"}


@pytest.mark.parametrize("rule", sorted(targets_for("x")))
def test_item_4_every_rule_refuses_a_path_component_with_a_semicolon(tmp_path: Path, rule: str):
    """Even with its input model present, no rule matches a path outside the run-path alphabet."""
    bad = "x;touch pwned;y"
    plant_models(tmp_path, bad)
    refused(smk(tmp_path, "-n", targets_for(bad)[rule], "--configfile", str(TINY)), "MissingRuleException")


@pytest.mark.parametrize("bad", BAD_IDS[1:])
def test_item_4_evaluate_refuses_other_unsafe_path_components(tmp_path: Path, bad: str):
    plant_models(tmp_path, bad)
    refused(smk(tmp_path, "-n", targets_for(bad)["evaluate-distill"], "--configfile", str(TINY)),
            "MissingRuleException")
    assert not list(tmp_path.rglob("pwned"))


def test_item_4_a_teacher_id_is_not_a_student_id(tmp_path: Path):
    """Export and energy take only student runs; evaluate takes a run of its own stage's shape."""
    for target in ["results/export/nir/digits/rt/model.nir", "results/energy/digits/rt/energy.md",
                   "results/evaluate/pretrain/digits/rt/extra/eval.json"]:
        refused(smk(tmp_path, "-n", target, "--configfile", str(TINY)), "MissingRuleException")


def shell_blocks() -> list[tuple[str, str]]:
    """(file, text) of every `shell:` directive in the workflow's .smk files and Snakefile."""
    blocks = []
    for path in [SNAKEFILE, *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]:
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.strip() == "shell:":
                body = []
                for nxt in lines[i + 1:]:
                    if not nxt.strip().startswith(('"', "'", 'f"', "f'")):
                        break
                    body.append(nxt)
                blocks.append((path.name, "\n".join(body)))
    return blocks


# Options built in Python (common.smk) that are shell-quoted there, token by token.
PREQUOTED = {"threads", "params.args", "params.snnkd", "params.teacher"}


def test_item_4_every_path_in_a_shell_directive_is_quoted():
    blocks = shell_blocks()
    assert len(blocks) >= 6, blocks
    for name, text in blocks:
        for field in re.findall(r"\{([^{}]+)\}", text):
            assert field.endswith(":q") or field in PREQUOTED, f"{name}: {{{field}}} is not quoted"


def test_item_4_config_values_reach_the_shell_as_single_words(tmp_path: Path):
    """data_root, noise and method params with metacharacters: each printed command splits
    back into exactly the configured value."""
    cfg = yaml.safe_load(tiny_text())
    cfg["data_root"] = "d a;touch pwned;$(x)'"
    cfg["methods"]["logit"]["params"]["note"] = "a b;c'd"
    path = write(tmp_path, yaml.safe_dump(cfg))
    r = smk(tmp_path, "-n", "-p", "--configfile", str(path))
    assert r.returncode == 0, (r.stdout + r.stderr)[-2000:]
    commands = [ln.strip() for ln in (r.stdout + r.stderr).splitlines() if "snnkd " in ln and "--out" in ln]
    assert len(commands) >= 4, commands
    for cmd in commands:
        words = shlex.split(cmd)
        assert words[words.index("--data-root") + 1] == cfg["data_root"], cmd
    logit = [shlex.split(c) for c in commands if "distill" in c and "logit" in c]
    assert logit and 'note="a b;c\'d"' in logit[0], logit
    assert not list(tmp_path.rglob("pwned"))


# -------------------------------------------------------- item 8: workflow config alias bomb

@pytest.mark.timeout(300)
@pytest.mark.parametrize("where", ["top-level", "method-params"])
def test_item_8_workflow_config_alias_bomb_is_refused_fast(tmp_path: Path, where: str):
    """A 1.3 KB config whose aliases expand to 9^10 values: refused in seconds, in little memory
    (before: >60 s and >1.5 GB, then MemoryError, in the schema error message or Snakemake's
    JSON dump of the config)."""
    text = tiny_text() + "\n".join(bomb()) + "\n" if where == "top-level" else \
        with_logit_params(bomb(indent="      "))
    assert len(text.encode()) < 1500
    r = measured_dry_run(tmp_path, write(tmp_path, text))
    refused(r, "aliases expand to more than")
    assert r["seconds"] < 30 and r["max_rss_mb"] < 300, (r["seconds"], r["max_rss_mb"])
    assert not (tmp_path / "results").exists()


def test_item_8_an_alias_to_its_own_anchor_is_refused(tmp_path: Path):
    r = smk(tmp_path, "-n", "--configfile", str(write(tmp_path, with_logit_params(["      loop: &l [1, *l]"]))))
    refused(r, "refers to its own anchor")


def test_item_8_small_aliases_stay_allowed(tmp_path: Path):
    """The paper configs share one training recipe through an anchor and merge keys."""
    text = tiny_text().replace("distill: {epochs: 1, batch_size: 50, lr: 0.05}",
                               "distill: &recipe {epochs: 1, batch_size: 50, lr: 0.05}\npretrain: *recipe")
    text = text.replace("students:\n  rt:\n    arch: resnet_tiny\n",
                        "students:\n  rt: &st\n    arch: resnet_tiny\n  rt2: {<<: *st, arch: resnet_tiny}\n")
    r = smk(tmp_path, "-n", "--configfile", str(write(tmp_path, text)))
    assert r.returncode == 0, (r.stdout + r.stderr)[-2000:]


# ------------------------------------------------------------- item 11: duplicate variant

def test_item_11_duplicate_variant_is_refused_with_key_and_line(tmp_path: Path):
    text = tiny_text().replace("  logit:\n    kind: logit\n", "  logit:\n    kind: logit\n  logit:\n    kind: none\n")
    assert text != tiny_text()
    lines = text.splitlines()
    second = [i + 1 for i, ln in enumerate(lines) if ln == "  logit:"][1]
    r = smk(tmp_path, "-n", "--configfile", str(write(tmp_path, text)))
    refused(r, "duplicate key 'logit'", f"line {second}")


def test_item_11_duplicate_key_in_a_json_config_is_refused(tmp_path: Path):
    cfg = yaml.safe_load(tiny_text())
    body = json.dumps(cfg)
    text = body.replace('"trainers": {', '"trainers": {"bptt": {"kind": "bptt"}, ', 1)
    r = smk(tmp_path, "-n", "--configfile", str(write(tmp_path, text, "cfg.json")))
    refused(r, "duplicate key 'bptt'")


# ------------------------------------------------------------- item 11: trailing newline

def set_in(cfg: dict, where: tuple, value) -> dict:
    node = cfg
    for part in where[:-1]:
        node = node[part]
    node[where[-1]] = value
    return cfg


NEWLINE_FIELDS = {
    "ident: dataset name": (("datasets", "digits", "name"), "digits"),
    "ident: teacher arch": (("teachers", "rt", "arch"), "resnet_tiny"),
    "ident: method kind": (("methods", "logit", "kind"), "logit"),
    "ident: trainer kind": (("trainers", "bptt", "kind"), "bptt"),
    "device": (("device",), "cpu"),
    "noise": (("evaluate", "noise"), ["background"]),
    "surrogate": (("students", "rt", "neuron"), {"surrogate": "atan"}),
}


@pytest.mark.parametrize("field", sorted(NEWLINE_FIELDS))
def test_item_11_trailing_newline_is_refused_by_the_schema(field: str):
    where, good = NEWLINE_FIELDS[field]
    if isinstance(good, str):
        bad = good + "\n"
    elif isinstance(good, list):
        bad = [good[0] + "\n"]
    else:
        bad = {k: v + "\n" for k, v in good.items()}
    assert accepted(set_in(yaml.safe_load(tiny_text()), where, good)), field
    assert not accepted(set_in(yaml.safe_load(tiny_text()), where, bad)), field


def test_item_11_trailing_newline_in_a_param_name_is_refused():
    cfg = yaml.safe_load(tiny_text())
    cfg["methods"]["logit"]["params"]["tau\n"] = 4
    assert not accepted(cfg)


def test_item_11_trailing_newline_device_stops_the_dry_run(tmp_path: Path):
    cfg = yaml.safe_load(tiny_text())
    cfg["device"] = "cpu\n"
    r = smk(tmp_path, "-n", "--configfile", str(write(tmp_path, yaml.safe_dump(cfg))))
    refused(r, "device")


# -------------------------------------------------------------------- item 11: nesting

def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [60, 400])
def test_item_11_nesting_deep_config_is_refused_with_one_message(tmp_path: Path, depth: int):
    """Free-form method params nested deeper than 50: one message, no RecursionError
    traceback (before: accepted at 60, a ~1000-line RecursionError at 400)."""
    r = smk(tmp_path, "-n", "--configfile", str(write(tmp_path, with_logit_params([f"      deep: {nested(depth)}"]))))
    out = refused(r, "nested deeper than 50 levels")
    assert "RecursionError" not in out and len(out.splitlines()) < 40, out[-2000:]


def test_item_11_nesting_through_aliases_counts_expanded(tmp_path: Path):
    lines = [f"      inner: &in {nested(30)}", "      outer: " + "[" * 30 + "*in" + "]" * 30]
    r = smk(tmp_path, "-n", "--configfile", str(write(tmp_path, with_logit_params(lines))))
    refused(r, "nested deeper than 50 levels once aliases are expanded")


# ------------------------------------------- properties of the config reader (hypothesis)

@pytest.fixture(scope="module")
def reader() -> dict:
    """The Snakefile's config reader (pure Python, no rules) loaded on its own."""
    return runpy.run_path(str(SAFE_CONFIG))


def depth_of(obj) -> int:
    if isinstance(obj, dict):
        return 1 + max((depth_of(v) for v in obj.values()), default=0)
    if isinstance(obj, list):
        return 1 + max((depth_of(v) for v in obj), default=0)
    return 0


trees = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                     lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids, max_size=3),
                     max_leaves=40)


def deepen(tree, extra: int):
    for _ in range(extra):
        tree = [tree]
    return tree


@SETTINGS
@given(trees, st.integers(0, 60), st.booleans())
def test_item_11_nesting_property_accepted_exactly_up_to_50_levels(reader, tree, extra, as_json):
    tree = deepen(tree, extra)
    text = json.dumps(tree) if as_json else yaml.safe_dump(tree)
    ok = depth_of(tree) <= 50
    try:
        reader["check_config_text"](text)
    except reader["ConfigFileError"]:
        assert not ok
    else:
        assert ok


@SETTINGS
@given(st.integers(1, 12), st.integers(1, 12))
def test_item_8_alias_expansion_property(reader, levels, fanout):
    """A bomb of ``levels`` x ``fanout`` is refused exactly when it expands past the bound."""
    text = "\n".join(bomb(levels, fanout)) + "\n"
    # expanded YAML nodes: the root mapping, its keys, and each level's list
    size = [1 + fanout]  # level 0: the list and its scalars
    for _ in range(levels):
        size.append(1 + fanout * size[-1])
    total = 1 + (levels + 1) + sum(size)
    try:
        reader["check_config_text"](text)
    except reader["ConfigFileError"] as e:
        assert total > reader["MAX_CONFIG_NODES"] or levels + 2 > 50, (e, total)
    else:
        assert total <= reader["MAX_CONFIG_NODES"]


@SETTINGS
@given(st.lists(st.from_regex(r"[a-z]{1,3}", fullmatch=True), min_size=1, max_size=6))
def test_item_11_duplicate_keys_property(reader, keys):
    text = "".join(f"{k}: {i}\n" for i, k in enumerate(keys))
    try:
        reader["check_config_text"](text)
    except reader["ConfigFileError"] as e:
        assert len(set(keys)) < len(keys) and "duplicate key" in str(e)
    else:
        assert len(set(keys)) == len(keys)
