# Evaluation of students (rule evaluate) and teachers (rule evaluate_teacher) with snnkd
# evaluate: results/evaluate/<stage>/<the model's own path>/eval.json


rule evaluate:
    """Accuracy, per-layer firing rates, SynOps/MACs and energy of one SNN student."""
    input:
        model=run_path("results/distill", STUDENT, "model.pt"),
    output:
        json=run_path("results/evaluate/distill", STUDENT, "eval.json"),
    log:
        run_path("logs/evaluate/distill", STUDENT, ".log"),
    benchmark:
        run_path("benchmarks/evaluate/distill", STUDENT, ".tsv")
    conda:
        "../envs/snnkd.yaml"
    threads: res("evaluate", "threads")
    resources:
        mem_mb=res("evaluate", "mem_mb"),
        runtime=res("evaluate", "runtime"),
        gpu=res("evaluate", "gpu"),
    params:
        args=evaluate_args,
    shell:
        "OMP_NUM_THREADS={threads} snnkd evaluate --model {input.model:q} --out {output.json:q} " "{params.args} > {log:q} 2>&1"


use rule evaluate as evaluate_teacher with:
    input:
        model=run_path("results/pretrain", TEACHER, "model.pt"),
    output:
        json=run_path("results/evaluate/pretrain", TEACHER, "eval.json"),
    log:
        run_path("logs/evaluate/pretrain", TEACHER, ".log"),
    benchmark:
        run_path("benchmarks/evaluate/pretrain", TEACHER, ".tsv")
