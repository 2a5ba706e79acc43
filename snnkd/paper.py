"""Published figures next to ours: the ``paper`` field of workflow grid blocks.

A grid block of a reproduction config (``config/paper/*.yaml``) may carry
``paper: {source, teacher_accuracy, accuracy: {method: %}, noise: {variant: {method: %}}}``.
:func:`find_paper` returns the entry that applies to one run; :func:`comparison` turns
run records (as built by the workflow: names + the path of each eval JSON) into one
row per run group and measure (clean accuracy, each noise variant, teacher), ours as the
mean over seeds beside the paper's figure; :func:`to_markdown` prints them.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

GROUP = ("dataset", "teacher", "student", "method", "trainer", "T")


def _in(block: dict, key: str, value: Any) -> bool:
    return value in block.get(key, [])


def find_paper(config: dict, run: dict) -> dict | None:
    """The ``paper`` entry of the first grid block that produces ``run`` (teacher ``none``,
    a teacherless baseline, matches any block's teachers), or None."""
    for block in config.get("grid", []):
        if "paper" not in block:
            continue
        if not (_in(block, "datasets", run["dataset"]) and _in(block, "students", run["student"])
                and _in(block, "methods", run["method"]) and _in(block, "trainers", run["trainer"])
                and _in(block, "T", int(run["T"]))):
            continue
        if run["teacher"] != "none" and not _in(block, "teachers", run["teacher"]):
            continue
        return block["paper"]
    return None


def _mean(xs: list[float]) -> float | None:
    return statistics.fmean(xs) if xs else None


def comparison(config: dict, records: list[dict]) -> list[dict]:
    """Rows ``{group keys..., measure, ours, ours_std, seeds, paper, source}``."""
    groups: dict[tuple, list[dict]] = {}
    for rec in records:
        groups.setdefault(tuple(rec[k] for k in GROUP), []).append(rec)
    rows = []
    for key, recs in groups.items():
        run = dict(zip(GROUP, key))
        paper = find_paper(config, run) or {}
        evals = [json.loads(Path(r["eval"]).read_text()) for r in recs]
        base = {**run, "seeds": len(evals), "source": paper.get("source", "")}

        def add(measure: str, values: list[float], fig: float | None, base: dict = base) -> None:
            rows.append({**base, "measure": measure, "ours": _mean(values),
                         "ours_std": statistics.stdev(values) if len(values) > 1 else 0.0, "paper": fig})

        add("accuracy", [e["accuracy"] for e in evals], (paper.get("accuracy") or {}).get(run["method"]))
        variants = list(dict.fromkeys([v for e in evals for v in e.get("noise", {})]
                                      + list(paper.get("noise") or {})))
        for v in variants:
            fig = (paper.get("noise") or {}).get(v, {}).get(run["method"])
            add(f"noise {v}", [e["noise"][v]["accuracy"] for e in evals if v in e.get("noise", {})], fig)
        teval = recs[0].get("teacher_eval")
        if teval:
            t = json.loads(Path(teval).read_text())
            tv = {"accuracy": t["accuracy"], **{f"noise {k}": d["accuracy"] for k, d in t.get("noise", {}).items()}}
            add("teacher accuracy", [tv["accuracy"]], paper.get("teacher_accuracy"))
    return rows


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def to_markdown(rows: list[dict]) -> str:
    head = ["dataset", "teacher", "student", "method", "trainer", "T", "measure", "ours (%)", "paper (%)", "source"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        ours = _fmt(r["ours"]) + (f" ± {r['ours_std']:.2f} (n={r['seeds']})" if r["seeds"] > 1 else "")
        lines.append("| " + " | ".join([*(str(r[k]) for k in GROUP), r["measure"], ours, _fmt(r["paper"]),
                                        r["source"] or "-"]) + " |")
    return "\n".join(lines) + "\n"
