# Helpers of the report rules (workflow/rules/summary.smk): the blockwise runs, the export reports
# and benchmark files the figures read, and every output the report shows.  Kept free of rules
# (snakemake --lint).

BLOCKWISE_RUNS = [r for r in RUNS if config["methods"][r["method"]]["kind"] == "blockwise"]
HAS_PAPER = any("paper" in b for b in config["grid"])
PLOTS = ("accuracy_bars", "accuracy_T", "accuracy_energy", "firing_rates", "training_curves")
PLOTS += ("noise", "export_agreement", "resources")


def exported_runs() -> list[dict]:
    """The student runs the export covers (export.seeds), with the paths of their reports."""
    out = []
    for r in RUNS:
        if EXPORT.get("seeds") is not None and r["seed"] not in EXPORT["seeds"]:
            continue
        sid = student_id(r)
        rec = {**r}
        for fmt in ("nir", "onnx", "lava"):
            rec[fmt] = run_path(f"results/export/{fmt}", sid, f"{fmt}.json") if EXPORT.get(fmt) else None
        if rec["nir"] or rec["onnx"] or rec["lava"]:
            out.append(rec)
    return out


def export_reports() -> list[str]:
    return [e[f] for e in exported_runs() for f in ("nir", "onnx", "lava") if e[f]]


def benchmark_records() -> list[dict]:
    """Every benchmarks/<step>/<id>.tsv the grid's jobs write (time and peak memory figure)."""
    teachers = sorted(set(TEACHERS) | {(c["dataset"], c["teacher"]) for c in CONVERSIONS})
    out = [{"step": s, "id": teacher_id(d, t)} for d, t in teachers for s in ("pretrain", "evaluate/pretrain")]
    out += [{"step": s, "id": student_id(r)} for r in RUNS for s in ("distill", "evaluate/distill")]
    steps = (("export/nir", "nir"), ("export/onnx", "onnx"), ("export/lava", "lava"), ("energy", "energy"))
    for e in exported_runs():
        out += [{"step": s, "id": student_id(e)} for s, key in steps if EXPORT.get(key)]
    out += [{"step": s, "id": conversion_id(c)} for c in CONVERSIONS for s in ("convert", "evaluate/convert")]
    return [{**b, "path": run_path(f"benchmarks/{b['step']}", b["id"], ".tsv")} for b in out]


def report_outputs() -> list[str]:
    """What the report shows: the HTML tables, the figures, the blockwise figures per run."""
    out = ["results/summary/summary.html"] + (["results/summary/papers.html"] if HAS_PAPER else [])
    out += [f"results/plots/{name}.png" for name in PLOTS]
    for r in BLOCKWISE_RUNS:
        out += [run_path("results/plots/blockwise", student_id(r), f) for f in ("fig2_cosine.png", "fig3_val_acc.png")]
    return out
