"""Summary tables of all runs: one TSV and one Markdown table.

One row per (dataset, teacher, student, method, trainer, T); accuracy is the mean ± sample
standard deviation over seeds; SynOps, MACs, firing rate and energy are seed means; the
teacher's accuracy and energy stand beside each row.  Energy is read from ``eval.json``
(``energy_uj``, priced by snnkd/energy.py, the same figure as ``energy.md``) and is
``None`` (``-``) where the model does not run on the target (an ANN on Loihi).  ANN-to-SNN
conversions (``convert:`` block, workflow/rules/convert.smk) are rows with method ``convert``
and trainer ``none``, the teacher's variant as student, priced by the same energy model.
Runs under Snakemake (``script:``) or by hand: ``python summarise.py records.json summary.tsv summary.md`` where
``records.json`` lists the run records built in workflow/rules/common.smk.
"""

import json
import statistics
import sys
from pathlib import Path
from typing import Any

KEYS = ("dataset", "teacher", "student", "method", "trainer", "T")


def read_json(path: str | Path) -> dict[str, Any]:
    with open(path) as f:
        return json.load(f)


def group_runs(records: list[dict]) -> dict[tuple, list[dict]]:
    """Records grouped by everything but the seed, each record with its eval loaded."""
    groups: dict[tuple, list[dict]] = {}
    for rec in records:
        loaded = {**rec, "ev": read_json(rec["eval"]),
                  "tev": read_json(rec["teacher_eval"]) if rec.get("teacher_eval") else None}
        groups.setdefault(tuple(rec[k] for k in KEYS), []).append(loaded)
    return groups


def mean(xs: list[float]) -> float:
    return statistics.fmean(xs) if xs else float("nan")


def mean_energy(evs: list[dict], target: str) -> float | None:
    """Seed mean of ``energy_uj[target]`` (``None``: the model does not run on that target)."""
    xs = [e["energy_uj"].get(target) for e in evs]
    return None if any(x is None for x in xs) else mean(xs)


def std(xs: list[float]) -> float:
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


def summary_rows(records: list[dict]) -> list[dict[str, Any]]:
    """One summary row per group of seeds."""
    rows = []
    for key, runs in group_runs(records).items():
        evs = [r["ev"] for r in runs]
        acc = [e["accuracy"] for e in evs]
        row: dict[str, Any] = dict(zip(KEYS, key))
        row.update(arch=evs[0]["arch"], seeds=len(runs), accuracy_mean=mean(acc), accuracy_std=std(acc),
                   params=evs[0]["params"], synops=mean([e["synops"] for e in evs]),
                   macs=mean([e["macs"] for e in evs]),
                   mean_firing_rate=mean([e["mean_firing_rate"] for e in evs
                                          if e.get("mean_firing_rate") is not None]))
        for target in evs[0]["energy_uj"]:
            row[f"energy_uj_{target}"] = mean_energy(evs, target)
        tev = runs[0]["tev"]
        row["teacher_accuracy"] = tev["accuracy"] if tev else None
        for target in evs[0]["energy_uj"]:
            row[f"teacher_energy_uj_{target}"] = tev["energy_uj"].get(target) if tev else None
        rows.append(row)
    return rows


def fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


def write_tsv(rows: list[dict], path: str | Path) -> None:
    cols = list(rows[0]) if rows else list(KEYS)
    lines = ["\t".join(cols)] + ["\t".join(fmt(r.get(c), 6) for c in cols) for r in rows]
    Path(path).write_text("\n".join(lines) + "\n")


def write_markdown(rows: list[dict], path: str | Path) -> None:
    targets = [c[len("energy_uj_"):] for c in (rows[0] if rows else {}) if c.startswith("energy_uj_")]
    head = ["dataset", "teacher", "student", "method", "trainer", "T", "accuracy (%)", "SynOps", "MACs"]
    head += [f"energy {t} (µJ)" for t in targets] + ["teacher acc. (%)"]
    head += [f"teacher energy {t} (µJ)" for t in targets]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [str(r[k]) for k in KEYS]
        cells.append(f"{r['accuracy_mean']:.2f} ± {r['accuracy_std']:.2f} (n={r['seeds']})")
        cells += [fmt(r["synops"]), fmt(r["macs"])]
        cells += [fmt(r[f"energy_uj_{t}"]) for t in targets]
        cells.append(fmt(r["teacher_accuracy"], 4))
        cells += [fmt(r[f"teacher_energy_uj_{t}"]) for t in targets]
        lines.append("| " + " | ".join(cells) + " |")
    Path(path).write_text("\n".join(lines) + "\n")


def add_paper(rows: list[dict], records: list[dict], config: dict | None, md: str) -> None:
    """The seeds' figures (config grid[].paper) beside ours: a paper column in every row,
    and a comparison table per measure (clean and noise accuracy) under the summary."""
    if not config or not any("paper" in b for b in config.get("grid", [])):
        return
    from snnkd.paper import comparison, find_paper, to_markdown

    for r in rows:
        p = find_paper(config, r) or {}
        r["paper_accuracy"] = (p.get("accuracy") or {}).get(r["method"])
        r["paper_source"] = p.get("source")
    with open(md, "a") as f:
        f.write("\n## Beside the papers\n\n" + to_markdown(comparison(config, records)))


def main(records: list[dict], tsv: str, md: str, config: dict | None = None) -> None:
    rows = summary_rows(records)
    Path(tsv).parent.mkdir(parents=True, exist_ok=True)
    write_markdown(rows, md)
    add_paper(rows, records, config, md)
    write_tsv(rows, tsv)


if "snakemake" in globals():
    sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (injected by Snakemake)
    main(snakemake.params.records, snakemake.output.tsv, snakemake.output.md, snakemake.config)  # noqa: F821
elif __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: summarise.py RECORDS.json SUMMARY.tsv SUMMARY.md")
    main(read_json(sys.argv[1]), sys.argv[2], sys.argv[3])
