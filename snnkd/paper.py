"""Published figures next to ours: the ``paper`` field of workflow grid blocks.

A grid block of a reproduction config (``config/paper/*.yaml``) may carry
``paper: {source, teacher_accuracy, accuracy: {method: %}, noise: {variant: {method: %}}}``.
:func:`find_paper` returns the entry that applies to one run; :func:`comparison` turns
run records (as built by the workflow: names + the path of each eval JSON) into one
row per run group and measure (clean accuracy, each noise variant, teacher), ours as the
mean over seeds beside the paper's figure, with the per-seed values and, for every method
that is not the direct baseline, a paired test against that baseline (:func:`paired_vs_baseline`);
:func:`to_markdown` prints them.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

GROUP = ("dataset", "teacher", "student", "method", "trainer", "T")
BASELINE_KIND = "none"  # the direct-training baseline every KD method is tested against


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


def paired_vs_baseline(ours: dict[int, float], base: dict[int, float]) -> tuple[float | None, float | None, int]:
    """``(mean difference ours - baseline in pp, p, pairs)`` over the seeds both have.

    Runs with the same seed share initial weights and data order, so they are paired; the
    test is the two-sided paired t-test (``scipy.stats.ttest_rel``) of
    ``d_s = ours_s - base_s``: ``t = mean(d) / (sd(d) / sqrt(n))`` with ``n - 1`` degrees of
    freedom.  ``p`` is None with fewer than 2 pairs or when every ``d_s`` is equal."""
    seeds = sorted(set(ours) & set(base))
    if not seeds:
        return None, None, 0
    d = [ours[s] - base[s] for s in seeds]
    p = None
    if len(d) > 1 and len(set(d)) > 1:
        from scipy.stats import ttest_rel

        p = float(ttest_rel([ours[s] for s in seeds], [base[s] for s in seeds]).pvalue)
    return statistics.fmean(d), p, len(d)


def _baselines(config: dict) -> set[str]:
    """Method variant names of kind ``none`` (the name ``none`` when the config has no methods)."""
    names = {n for n, m in (config.get("methods") or {}).items() if m.get("kind") == BASELINE_KIND}
    return names or {BASELINE_KIND}


def comparison(config: dict, records: list[dict]) -> list[dict]:
    """Rows ``{group keys..., measure, ours, ours_std, seeds, per_seed, paper, source,
    vs_baseline, p_value, pairs}``: the baseline of a group is the direct-training run of the
    same dataset, student, trainer and T (any teacher), paired by seed."""
    groups: dict[tuple, list[dict]] = {}
    for rec in records:
        groups.setdefault(tuple(rec[k] for k in GROUP), []).append(rec)
    baselines = _baselines(config)

    def values(recs: list[dict], measure: str) -> dict[int, float]:
        out = {}
        for r in recs:
            e = json.loads(Path(r["eval"]).read_text())
            v = e.get("accuracy") if measure == "accuracy" else e.get("noise", {}).get(measure[6:], {}).get("accuracy")
            if v is not None:
                out[int(r.get("seed", 0))] = v
        return out

    def baseline_of(run: dict) -> list[dict]:
        for key, recs in groups.items():
            other = dict(zip(GROUP, key))
            if other["method"] in baselines and all(
                    str(other[k]) == str(run[k]) for k in ("dataset", "student", "trainer", "T")):
                return recs
        return []

    rows = []
    for key, recs in groups.items():
        run = dict(zip(GROUP, key))
        paper = find_paper(config, run) or {}
        evals = [json.loads(Path(r["eval"]).read_text()) for r in recs]
        base = {**run, "seeds": len(evals), "source": paper.get("source", "")}
        ref = [] if run["method"] in baselines else baseline_of(run)

        def add(measure: str, fig: float | None, base: dict = base, recs: list[dict] = recs,
                ref: list[dict] = ref) -> None:
            ours = values(recs, measure)
            xs = [ours[s] for s in sorted(ours)]
            diff, p, pairs = paired_vs_baseline(ours, values(ref, measure)) if ref else (None, None, 0)
            rows.append({**base, "measure": measure, "ours": _mean(xs), "per_seed": ours,
                         "ours_std": statistics.stdev(xs) if len(xs) > 1 else 0.0, "paper": fig,
                         "vs_baseline": diff, "p_value": p, "pairs": pairs})

        add("accuracy", (paper.get("accuracy") or {}).get(run["method"]))
        variants = list(dict.fromkeys([v for e in evals for v in e.get("noise", {})]
                                      + list(paper.get("noise") or {})))
        for v in variants:
            add(f"noise {v}", (paper.get("noise") or {}).get(v, {}).get(run["method"]))
        teval = recs[0].get("teacher_eval")
        if teval:
            t = json.loads(Path(teval).read_text())
            rows.append({**base, "measure": "teacher accuracy", "ours": t["accuracy"], "ours_std": 0.0, "seeds": 1,
                         "per_seed": {}, "paper": paper.get("teacher_accuracy"), "vs_baseline": None,
                         "p_value": None, "pairs": 0})
    return rows


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def cells(r: dict) -> list[str]:
    """The printed cells of one row after the group keys: measure, ours (mean ± sd),
    paper, difference to the baseline (pp), paired p, per-seed values, source."""
    ours = _fmt(r["ours"]) + (f" ± {r['ours_std']:.2f} (n={r['seeds']})" if r["seeds"] > 1 else "")
    diff = "-" if r.get("vs_baseline") is None else f"{r['vs_baseline']:+.2f} (n={r['pairs']})"
    p = "-" if r.get("p_value") is None else f"{r['p_value']:.3g}"
    per_seed = ", ".join(f"{s}: {v:.2f}" for s, v in sorted((r.get("per_seed") or {}).items())) or "-"
    return [r["measure"], ours, _fmt(r["paper"]), diff, p, per_seed, r["source"] or "-"]


HEAD = ["measure", "ours (%)", "paper (%)", "vs none (pp)", "p (paired t)", "per seed (%)", "source"]


def to_markdown(rows: list[dict]) -> str:
    head = [*GROUP, *HEAD]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join([*(str(r[k]) for k in GROUP), *cells(r)]) + " |")
    return "\n".join(lines) + "\n"
