# Helpers shared by the rules: the run grid, command-line options built from the config,
# resources, and the path of every result.  Kept free of rules so each .smk stays small.

import itertools
import json
import shlex
import sysconfig

from snakemake.exceptions import WorkflowError
from snakemake.settings.types import DeploymentMethod

# Rules call the `snnkd` command.  Unless conda provides it (--sdm conda), find it in the
# environment that runs Snakemake (a venv works without being activated).
if DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method:
    BINDIR = shlex.quote(sysconfig.get_path("scripts"))
    shell.prefix(f"PATH={BINDIR}:$PATH; ")

# Wildcard values, so a requested path can only name a run the config could have made
# (no shell metacharacters, spaces, quotes or '..' components ever reach a rule).
NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
TEACHERLESS = teacherless_methods(SNNKD_REGISTRIES)  # needs_teacher False (registry_check.smk)
DEFAULT_RESOURCES = {"threads": 1, "mem_mb": 2000, "runtime": 60, "gpu": 0}
STUDENT = "{dataset}/{teacher}/{student}/{method}/{trainer}/T{T}/seed{seed}"
TEACHER = "{dataset}/{teacher}"


def check_grid(cfg: dict) -> None:
    """Every name in a grid block must be a variant defined in the config."""
    for i, block in enumerate(cfg["grid"]):
        for key in ("datasets", "teachers", "students", "methods", "trainers"):
            missing = [n for n in block[key] if n not in cfg[key]]
            if missing:
                raise WorkflowError(f"config: grid[{i}].{key}: {', '.join(missing)} not defined under '{key}:'")


def build_runs(cfg: dict) -> list[dict]:
    """The Cartesian product of every grid block, deduplicated, in config order.
    Methods that need no teacher get teacher 'none', so a baseline runs once per student."""
    runs, seen = [], set()
    for block in cfg["grid"]:
        for ds, te, st, me, tr, T, seed in itertools.product(
            block["datasets"],
            block["teachers"],
            block["students"],
            block["methods"],
            block["trainers"],
            block["T"],
            block["seeds"],
        ):
            if cfg["methods"][me]["kind"] in TEACHERLESS:
                te = "none"
            run = dict(dataset=ds, teacher=te, student=st, method=me, trainer=tr, T=T, seed=seed)
            key = tuple(run.values())
            if key not in seen:
                seen.add(key)
                runs.append(run)
    return runs


check_grid(config)
RUNS = build_runs(config)
TEACHERS = sorted({(r["dataset"], r["teacher"]) for r in RUNS if r["teacher"] != "none"})
EXPORT = config.get("export", {})


def run_path(prefix: str, run: str, leaf: str) -> str:
    """The one path layout of the workflow: ``<prefix>/<run>/<leaf>`` (a file in the run's
    folder) or ``<prefix>/<run><leaf>`` when ``leaf`` is a suffix such as ``.log``.  ``run``
    is STUDENT or TEACHER (named wildcards), or either formatted with one run's names."""
    return f"{prefix}/{run}{leaf}" if leaf.startswith(".") else f"{prefix}/{run}/{leaf}"


def student_id(run: dict) -> str:
    return STUDENT.format(**run)


def teacher_id(dataset: str, teacher: str) -> str:
    return TEACHER.format(dataset=dataset, teacher=teacher)


def flag(key: str) -> str:
    dashed = key.replace("_", "-")
    return f"--{dashed}"


def cli(options: dict) -> str:
    """A mapping of option values -> shell-quoted command-line options (None is left out).
    Sorted by name, so reordering keys in a config file changes no params (and reruns nothing)."""
    parts = []
    for key, value in sorted(options.items()):
        if value is None or value is False:
            continue
        parts.append(flag(key) if value is True else f"{flag(key)} {shell_quote(str(value))}")
    return " ".join(parts)


def shell_quote(s: str) -> str:
    return shlex.quote(s)


def data_options(dataset: str, with_test: bool = False) -> dict:
    d = config["datasets"][dataset]
    out = {
        "dataset": d["name"],
        "data_root": config.get("data_root", "data"),
        "limit_train": d.get("limit_train"),
        "val_fraction": d.get("val_fraction"),
        "download": d.get("download", False),
        "autoaugment": d.get("autoaugment", False),
        "cutout": d.get("cutout", False),
    }
    if with_test:
        out["limit_test"] = d.get("limit_test")
    return out


def pretrain_args(wc) -> str:
    """Options of `snnkd pretrain` for one teacher; changing any of them reruns it."""
    t = config["teachers"][wc.teacher]
    train = {**config.get("pretrain", {}), **config["datasets"][wc.dataset].get("pretrain", {}), **t.get("train", {})}
    opts = {
        "model": t["arch"],
        **data_options(wc.dataset, with_test=True),
        **train,
        "seed": t.get("seed", 0),
        "device": config.get("device", "auto"),
    }
    if "limit_train" in t:  # the teacher's own training-set size (null: all of it)
        opts["limit_train"] = t["limit_train"]
    return cli(opts)


def distill_args(wc) -> str:
    """Options of `snnkd distill` for one student run; changing any of them reruns it."""
    s, m = config["students"][wc.student], config["methods"][wc.method]
    train = {
        **config.get("distill", {}),
        **config["datasets"][wc.dataset].get("distill", {}),
        **s.get("train", {}),
        **m.get("train", {}),
    }
    neuron = dict(s.get("neuron", {}))
    if "detach_reset" in neuron:
        neuron["no_detach_reset"] = not neuron.pop("detach_reset")
    tr = config["trainers"][wc.trainer]
    opts = {
        "student": s["arch"],
        "method": m["kind"],
        "trainer": tr["kind"],
        "precision": tr.get("precision"),
        "compile_neurons": tr.get("compile_neurons"),
        "rate_grad": tr.get("grad"),
        "T": int(wc.T),
        **neuron,
        **data_options(wc.dataset, with_test=True),
        **train,
        "seed": int(wc.seed),
        "device": config.get("device", "auto"),
    }
    params = " ".join(f"--param {shell_quote(f'{k}={json_value(v)}')}" for k, v in sorted(m.get("params", {}).items()))
    return f"{cli(opts)} {params}".strip()


def json_value(v) -> str:
    """Method parameter values travel as YAML flow text (JSON is valid YAML)."""
    return json.dumps(v)


def evaluate_args(wc) -> str:
    ev = config.get("evaluate", {})
    ds = wc.dataset
    limit = ev.get("limit_test") or config["datasets"].get(ds, {}).get("limit_test")
    noise = " ".join(f"--noise {shell_quote(v)}" for v in ev.get("noise", []))  # KDSNN Tab. 2 variants
    return f"""{cli({"data_root": config.get("data_root", "data"), "limit_test": limit,
                    "batch_size": ev.get("batch_size"), "ops_batches": ev.get("ops_batches"),
                    "precision": ev.get("precision"),
                    "device": config.get("device", "auto")})} {noise}""".strip()


def launcher(step: str) -> str:
    """`snnkd`, or `torchrun` with one process per GPU (DDP) when the rule asks for more than one."""
    n = int(res(step, "gpu"))
    return f"torchrun --standalone --nproc_per_node {n} -m snnkd" if n > 1 else "snnkd"


def export_args(wc) -> str:
    """Data options of `snnkd export` / `snnkd energy` (the export is checked on test inputs)."""
    ds = wc.dataset
    limit = (
        EXPORT.get("limit_test")
        or config.get("evaluate", {}).get("limit_test")
        or config["datasets"].get(ds, {}).get("limit_test")
    )
    return cli({"data_root": config.get("data_root", "data"), "limit_test": limit})


def energy_args(wc) -> str:
    """Sample options of `snnkd energy`: those of `snnkd evaluate`, so that energy.md counts
    the samples eval.json counts and both give one energy per model and target."""
    ev = config.get("evaluate", {})
    limit = ev.get("limit_test") or config["datasets"].get(wc.dataset, {}).get("limit_test")
    return cli(
        {
            "data_root": config.get("data_root", "data"),
            "limit_test": limit,
            "batch_size": ev.get("batch_size"),
            "ops_batches": ev.get("ops_batches"),
        }
    )


def res(step: str, key: str):
    """A generic resource of one rule: config `resources.<step>.<key>`, else the default."""
    return config.get("resources", {}).get(step, {}).get(key, DEFAULT_RESOURCES[key])


def teacher_model(wc):
    """The teacher model.pt a student run needs (nothing for teacherless methods)."""
    if wc.teacher == "none":
        return []
    return run_path("results/pretrain", teacher_id(wc.dataset, wc.teacher), "model.pt")


def teacher_option(wc, input) -> str:
    return f"--teacher {shell_quote(input.teacher)}" if wc.teacher != "none" else ""


def student_evals() -> list[str]:
    return [run_path("results/evaluate/distill", student_id(r), "eval.json") for r in RUNS]


def teacher_evals() -> list[str]:
    return [run_path("results/evaluate/pretrain", teacher_id(d, t), "eval.json") for d, t in TEACHERS]


def export_targets() -> list[str]:
    """The export outputs switched on under `export:` for every student run."""
    out = []
    for r in RUNS:
        if EXPORT.get("seeds") is not None and r["seed"] not in EXPORT["seeds"]:
            continue
        sid = student_id(r)
        if EXPORT.get("nir"):
            out.append(run_path("results/export/nir", sid, "model.nir"))
        if EXPORT.get("onnx"):
            out.append(run_path("results/export/onnx", sid, "model.onnx"))
        if EXPORT.get("lava"):
            out.append(run_path("results/export/lava", sid, "lava.json"))
        if EXPORT.get("energy"):
            out.append(run_path("results/energy", sid, "energy.md"))
    return out


def run_records() -> list[dict]:
    """What summarise and plots need about each run: its names and its files."""
    recs = []
    for r in RUNS:
        sid = student_id(r)
        rec = {
            **r,
            "eval": run_path("results/evaluate/distill", sid, "eval.json"),
            "metrics": run_path("results/distill", sid, "metrics.jsonl"),
            "teacher_eval": (
                None
                if r["teacher"] == "none"
                else run_path("results/evaluate/pretrain", teacher_id(r["dataset"], r["teacher"]), "eval.json")
            ),
        }
        recs.append(rec)
    return recs
