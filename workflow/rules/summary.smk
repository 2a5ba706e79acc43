# Tables and figures over all runs (thin glue in workflow/scripts/), shown in the report.


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
            labels={"table": "all runs (TSV)"},
        ),
        md=report(
            "results/summary/summary.md",
            caption="../report/summary.rst",
            category="Summary",
            labels={"table": "all runs (Markdown)"},
        ),
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
    """Accuracy against energy, per-layer firing rates, and training curves."""
    input:
        students=student_evals(),
        teachers=teacher_evals(),
        conversions=convert_evals(),
        metrics=[r["metrics"] for r in run_records()],
    output:
        energy=report(
            "results/plots/accuracy_energy.png",
            caption="../report/accuracy_energy.rst",
            category="Figures",
            labels={"figure": "accuracy against energy"},
        ),
        rates=report(
            "results/plots/firing_rates.png",
            caption="../report/firing_rates.rst",
            category="Figures",
            labels={"figure": "per-layer firing rates"},
        ),
        curves=report(
            "results/plots/training_curves.png",
            caption="../report/training_curves.rst",
            category="Figures",
            labels={"figure": "training curves"},
        ),
        accuracy_T=report(
            "results/plots/accuracy_T.png",
            caption="../report/accuracy_T.rst",
            category="Figures",
            labels={"figure": "accuracy against T"},
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
    script:
        "../scripts/plots.py"
