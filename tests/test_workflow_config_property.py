"""Property-based tests of the workflow config validation (workflow/schemas/config.schema.yaml,
applied by ``snakemake.utils.validate`` exactly as the Snakefile applies it).

Starting from config/test/tiny.yaml: a variant name is accepted exactly when it is a
safe path component (letters, digits, ``_ . -``, starting with a letter or digit, at most
64 characters; ``none`` is not a teacher); unknown keys are refused at every level;
numbers outside their bounds are refused.  Refusal is always Snakemake's WorkflowError.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

pytest.importorskip("snakemake.utils")
from schema_utils import accepted  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
TINY = REPO / "config" / "test" / "tiny.yaml"
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
SECTIONS = ["datasets", "teachers", "students", "methods", "trainers"]
SETTINGS = settings(max_examples=int(os.environ.get("SNNKD_HYPOTHESIS_EXAMPLES", "50")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

pytestmark = pytest.mark.skipif(not (SCHEMA.is_file() and TINY.is_file()), reason="workflow config not present")


def base() -> dict:
    return yaml.safe_load(TINY.read_text())


def rename(cfg: dict, section: str, new: str) -> dict:
    """Rename the first variant of ``section`` everywhere it is used."""
    old = next(iter(cfg[section]))
    cfg[section] = {(new if k == old else k): v for k, v in cfg[section].items()}
    for block in cfg["grid"]:
        block[section] = [new if n == old else n for n in block[section]]
    return cfg


def test_the_tiny_config_is_valid():
    assert accepted(base())


names = st.text(max_size=70) | st.from_regex(SAFE_NAME, fullmatch=True) | \
    st.text(st.sampled_from("ab1_.-/\\\n :"), min_size=1, max_size=6)


@SETTINGS
@given(st.sampled_from(SECTIONS), names)
@example("students", "a/b")
@example("datasets", "..")
@example("methods", "x\n")
def test_variant_names_are_accepted_exactly_when_they_are_safe_path_components(section, name):
    cfg = base()
    assume(name not in cfg[section])
    safe = SAFE_NAME.fullmatch(name) is not None and not (section == "teachers" and name == "none")
    assert accepted(rename(cfg, section, name)) == safe, repr(name)


def test_name_with_a_trailing_newline_is_refused():
    """JSON-schema ``$`` under Python's ``re.search`` also matches before a final newline."""
    assert not accepted(rename(base(), "teachers", "rt\n"))


allowed = {
    (): set(yaml.safe_load(SCHEMA.read_text())["properties"]),
    ("teachers", "rt"): {"arch", "seed", "train"},
    ("methods", "logit"): {"kind", "params", "train"},
    ("grid", 0): {"datasets", "teachers", "students", "methods", "trainers", "T", "seeds", "paper"},
    ("distill",): {"epochs", "batch_size", "lr", "optimizer", "momentum", "weight_decay", "num_workers"},
}


@SETTINGS
@given(st.sampled_from(sorted(allowed, key=str)), st.text(min_size=1, max_size=12), st.integers() | st.text())
def test_unknown_keys_are_refused_at_every_level(where, key, value):
    assume(key not in allowed[where])
    cfg = base()
    node = cfg
    for part in where:
        node = node[part]
    node[key] = value
    assert not accepted(cfg)


@SETTINGS
@given(st.integers(-5, 20000) | st.floats(allow_nan=True) | st.booleans() | st.text(max_size=3))
def test_epochs_bounds_and_type(epochs):
    cfg = base()
    cfg["distill"]["epochs"] = epochs
    ok = isinstance(epochs, int) and not isinstance(epochs, bool) and 1 <= epochs <= 10000
    assert accepted(cfg) == ok


@SETTINGS
@given(st.lists(st.integers(-3, 2000), min_size=0, max_size=4))
def test_T_values(ts):
    cfg = base()
    cfg["grid"][0]["T"] = ts
    ok = len(ts) >= 1 and len(set(ts)) == len(ts) and all(1 <= t <= 1024 for t in ts)
    assert accepted(cfg) == ok
