# Helpers of the conversion rules (workflow/rules/convert.smk): the `convert:` block of the
# config checked and expanded, the options of `snnkd convert`, and the records the summary
# and the plots read.  Kept free of rules (snakemake --lint).

CONVERT = config.get("convert") or {}
CONVERSION = "{dataset}/{teacher}/T{T}"


def check_convert(cfg: dict) -> None:
    """Every teacher and dataset the convert block names must be a variant defined in the config."""
    block = cfg.get("convert") or {}
    for key in ("datasets", "teachers"):
        missing = [n for n in block.get(key, []) if n not in cfg[key]]
        if missing:
            raise WorkflowError(f"config: convert.{key}: {', '.join(missing)} not defined under '{key}:'")


check_convert(config)
CONVERSIONS = [
    dict(dataset=d, teacher=t, T=int(T))
    for d in CONVERT.get("datasets", [])
    for t in CONVERT.get("teachers", [])
    for T in CONVERT.get("T", [])
]


def conversion_id(c: dict) -> str:
    return CONVERSION.format(**c)


def convert_args(wc) -> str:
    """Options of `snnkd convert` for one conversion; changing any of them reruns it."""
    return cli(
        {
            "T": int(wc.T),
            "percentile": CONVERT.get("percentile"),
            "calib_batches": CONVERT.get("calib_batches"),
            "batch_size": CONVERT.get("batch_size"),
            "data_root": config.get("data_root", "data"),
            "download": config["datasets"][wc.dataset].get("download", False),
        }
    )


def convert_evals() -> list[str]:
    """Every conversion's eval.json and its teacher's (the summary shows the teacher beside it)."""
    out = [run_path("results/evaluate/convert", conversion_id(c), "eval.json") for c in CONVERSIONS]
    teachers = sorted({(c["dataset"], c["teacher"]) for c in CONVERSIONS})
    return out + [run_path("results/evaluate/pretrain", teacher_id(d, t), "eval.json") for d, t in teachers]


def convert_records() -> list[dict]:
    """Summary and plot records of the conversions, shaped as run_records() rows."""
    return [
        {
            **c,
            "student": c["teacher"],
            "method": "convert",
            "trainer": "none",
            "seed": 0,
            "eval": run_path("results/evaluate/convert", conversion_id(c), "eval.json"),
            "metrics": None,
            "teacher_eval": run_path(
                "results/evaluate/pretrain",
                teacher_id(c["dataset"], c["teacher"]),
                "eval.json",
            ),
        }
        for c in CONVERSIONS
    ]
