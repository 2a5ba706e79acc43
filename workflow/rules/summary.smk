# Tables and figures over all runs (thin glue in workflow/scripts/), shown in the report:
# the summary as an HTML table (summary_html.py) and beside the papers when the grid carries
# paper figures; the figures of plots.py / plots_runs.py, each written even when the grid has
# no data for it (it then says so), so every declared output exists; the blockwise figures
# (snnkd plot-blockwise) for every blockwise run of the grid.


include: "summary_helpers.smk"


rule summarise:
    """One TSV and one Markdown table: accuracy mean ± std over seeds, SynOps, energy."""
    input:
        students=student_evals(),
        teachers=teacher_evals(),
        conversions=convert_evals(),
    output:
        tsv=report(
            "results/summary/summary.tsv",
            caption="../report/summary.rst",
            category="Summary",
            labels={"table": "all runs (TSV download)"},
        ),
        md="results/summary/summary.md",
    log:
        "logs/summary/summarise.log",
    benchmark:
        "benchmarks/summary/summarise.tsv"
    conda:
        "../envs/snnkd.yaml"
    threads: 1
    resources:
        mem_mb=res("summarise", "mem_mb"),
        runtime=res("summarise", "runtime"),
        gpu=0,
    params:
        records=run_records() + convert_records(),
    script:
        "../scripts/summarise.py"


rule plots:
    """The report's figures (plots.py, plots_runs.py); each says so when the grid has no data for it."""
    input:
        students=student_evals(),
        teachers=teacher_evals(),
        conversions=convert_evals(),
        metrics=[r["metrics"] for r in run_records()],
        exports=export_reports(),
        benchmarks=[b["path"] for b in benchmark_records()],
    output:
        accuracy_bars=report(
            "results/plots/accuracy_bars.png",
            caption="../report/accuracy_bars.rst",
            category="Figures",
            labels={"figure": "accuracy per method"},
        ),
        accuracy_T=report(
            "results/plots/accuracy_T.png",
            caption="../report/accuracy_T.rst",
            category="Figures",
            labels={"figure": "accuracy against T"},
        ),
        accuracy_energy=report(
            "results/plots/accuracy_energy.png",
            caption="../report/accuracy_energy.rst",
            category="Figures",
            labels={"figure": "accuracy against energy"},
        ),
        firing_rates=report(
            "results/plots/firing_rates.png",
            caption="../report/firing_rates.rst",
            category="Figures",
            labels={"figure": "per-layer firing rates"},
        ),
        training_curves=report(
            "results/plots/training_curves.png",
            caption="../report/training_curves.rst",
            category="Figures",
            labels={"figure": "training curves per loss term"},
        ),
        noise=report(
            "results/plots/noise.png",
            caption="../report/noise.rst",
            category="Figures",
            labels={"figure": "noise robustness"},
        ),
        export_agreement=report(
            "results/plots/export_agreement.png",
            caption="../report/export_agreement.rst",
            category="Figures",
            labels={"figure": "export agreement"},
        ),
        resources=report(
            "results/plots/resources.png",
            caption="../report/resources.rst",
            category="Figures",
            labels={"figure": "time and peak memory"},
        ),
    log:
        "logs/summary/plots.log",
    benchmark:
        "benchmarks/summary/plots.tsv"
    conda:
        "../envs/snnkd.yaml"
    threads: 1
    resources:
        mem_mb=res("summarise", "mem_mb"),
        runtime=res("summarise", "runtime"),
        gpu=0,
    params:
        records=run_records() + convert_records(),
        exports=exported_runs(),
        benchmarks=benchmark_records(),
    script:
        "../scripts/plots.py"


rule summary_html:
    """The summary as an HTML table shown in the report, and beside the papers when the grid has paper figures."""
    input:
        students=student_evals(),
        teachers=teacher_evals(),
        conversions=convert_evals(),
    output:
        html=report(
            "results/summary/summary.html",
            caption="../report/summary.rst",
            category="Summary",
            labels={"table": "all runs"},
        ),
    log:
        "logs/summary/summary_html.log",
    benchmark:
        "benchmarks/summary/summary_html.tsv"
    conda:
        "../envs/snnkd.yaml"
    threads: 1
    resources:
        mem_mb=res("summarise", "mem_mb"),
        runtime=res("summarise", "runtime"),
        gpu=0,
    params:
        records=run_records() + convert_records(),
    script:
        "../scripts/summary_html.py"


rule papers_html:
    """Our accuracies beside the papers' figures (grid[].paper), planned only when the grid has them."""
    input:
        students=student_evals(),
        teachers=teacher_evals(),
    output:
        papers=report(
            "results/summary/papers.html",
            caption="../report/papers.rst",
            category="Summary",
            labels={"table": "beside the papers"},
        ),
    log:
        "logs/summary/papers_html.log",
    benchmark:
        "benchmarks/summary/papers_html.tsv"
    conda:
        "../envs/snnkd.yaml"
    threads: 1
    resources:
        mem_mb=res("summarise", "mem_mb"),
        runtime=res("summarise", "runtime"),
        gpu=0,
    params:
        records=run_records(),
    script:
        "../scripts/summary_html.py"


rule plot_blockwise:
    """Yang et al.'s Figs. 2 and 3 for one blockwise run (snnkd plot-blockwise)."""
    input:
        metrics=run_path("results/distill", STUDENT, "metrics.jsonl"),
    output:
        cosine=report(
            run_path("results/plots/blockwise", STUDENT, "fig2_cosine.png"),
            caption="../report/blockwise_cosine.rst",
            category="Block-wise",
            subcategory="{dataset}/{teacher}/{student}/{method}/{trainer}/T{T}/seed{seed}",
            labels={"figure": "cosine similarity per stage"},
        ),
        val_acc=report(
            run_path("results/plots/blockwise", STUDENT, "fig3_val_acc.png"),
            caption="../report/blockwise_val_acc.rst",
            category="Block-wise",
            subcategory="{dataset}/{teacher}/{student}/{method}/{trainer}/T{T}/seed{seed}",
            labels={"figure": "hybrid and SNN validation accuracy"},
        ),
    log:
        run_path("logs/plots/blockwise", STUDENT, ".log"),
    benchmark:
        run_path("benchmarks/plots/blockwise", STUDENT, ".tsv")
    conda:
        "../envs/snnkd.yaml"
    threads: 1
    resources:
        mem_mb=res("summarise", "mem_mb"),
        runtime=res("summarise", "runtime"),
        gpu=0,
    params:
        out=subpath(output.cosine, parent=True),
    shell:
        "snnkd plot-blockwise --metrics {input.metrics:q} --out {params.out:q} > {log:q} 2>&1"
