"""The summary as HTML tables that Snakemake's report shows inline: every summary row
(summarise.summary_rows: the same figures as summary.tsv), and the table "beside the papers"
(snnkd.paper.comparison) when the grid carries paper figures.

Runs under Snakemake (``script:``) or by hand:
``python summary_html.py records.json summary.html [config.yaml papers.html]``.
"""

import html
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from summarise import KEYS, fmt, read_json, summary_rows  # noqa: E402

from snnkd import io  # noqa: E402

STYLE = ("<style>table{border-collapse:collapse;font:13px sans-serif}th,td{border:1px solid #bbb;"
         "padding:3px 7px;text-align:right}th{background:#eee}td.t{text-align:left}</style>")


def html_table(head: list[str], rows: list[list[Any]], text_cols: int = 0) -> str:
    """An escaped HTML table; the first ``text_cols`` columns are left-aligned."""
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td{' class=t' if i < text_cols else ''}>{html.escape(str(c))}</td>"
                                    for i, c in enumerate(r)) + "</tr>\n" for r in rows)
    return f"<table>\n<thead><tr>{th}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n"


def page(title: str, content: str) -> str:
    """A complete HTML page (the report embeds it as its own document)."""
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{STYLE}</head>"
            f"<body><h3>{html.escape(title)}</h3>\n{content}</body></html>\n")


def summary_table(rows: list[dict]) -> str:
    """One HTML row per summary row (accuracy mean ± sd over n seeds, SynOps, MACs, firing
    rate, energy per target, the teacher's accuracy and energy)."""
    targets = list(dict.fromkeys(c[len("energy_uj_"):] for r in rows for c in r if c.startswith("energy_uj_")))
    head = [*KEYS, "accuracy (%)", "SynOps", "MACs", "firing rate"]
    head += [f"energy {t} (µJ)" for t in targets] + ["teacher acc. (%)"] + [f"teacher energy {t} (µJ)" for t in targets]
    body = []
    for r in rows:
        cells = [r[k] for k in KEYS]
        cells += [f"{r['accuracy_mean']:.2f} ± {r['accuracy_std']:.2f} (n={r['seeds']})", fmt(r["synops"]),
                  fmt(r["macs"]), fmt(r["mean_firing_rate"], 3)]
        cells += [fmt(r.get(f"energy_uj_{t}")) for t in targets] + [fmt(r["teacher_accuracy"])]
        cells += [fmt(r.get(f"teacher_energy_uj_{t}")) for t in targets]
        body.append(cells)
    return html_table(head, body, text_cols=len(KEYS))


def paper_table(config: dict, records: list[dict]) -> str:
    """Our figures beside the papers' (snnkd.paper.comparison), one row per group and measure."""
    from snnkd.paper import GROUP, HEAD, cells, comparison

    body = [[*(r[k] for k in GROUP), *cells(r)] for r in comparison(config, records)]
    return html_table([*GROUP, *HEAD], body, text_cols=len(GROUP) + 1)


def has_paper(config: dict | None) -> bool:
    return bool(config) and any("paper" in b for b in config.get("grid", []))


def main(records: list[dict], out: str | None, config: dict | None = None, papers: str | None = None) -> None:
    """Write the summary page (``out``) and the papers page (``papers``), each when given."""
    if out:
        io.write_text(out, page("All runs of the grid", summary_table(summary_rows(records))))
    if papers:
        content = paper_table(config, records) if has_paper(config) else "<p>no paper figures in this grid</p>"
        io.write_text(papers, page("Beside the papers", content))


if "snakemake" in globals():
    sys.stderr = open(snakemake.log[0], "w")  # noqa: F821 (injected by Snakemake)
    _out = snakemake.output  # noqa: F821
    main(snakemake.params.records, getattr(_out, "html", None), snakemake.config, getattr(_out, "papers", None))  # noqa: F821
elif __name__ == "__main__":
    if len(sys.argv) not in (3, 5):
        sys.exit("usage: summary_html.py RECORDS.json SUMMARY.html [CONFIG.yaml PAPERS.html]")
    import yaml

    cfg = yaml.safe_load(Path(sys.argv[3]).read_text()) if len(sys.argv) == 5 else None
    main(read_json(sys.argv[1]), sys.argv[2], cfg, sys.argv[4] if len(sys.argv) == 5 else None)
