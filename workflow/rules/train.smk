# Training: ANN teachers (snnkd pretrain) and SNN students (snnkd distill).
# The resumable training state lives under work/state/, outside the declared outputs, so a
# killed job resumes from its last epoch instead of Snakemake deleting the checkpoint.
# Every path is run_path(<tree>/<step>, TEACHER or STUDENT, <leaf>) (see common.smk).


rule pretrain:
    """Train one ANN teacher on one dataset."""
    output:
        model=run_path("results/pretrain", TEACHER, "model.pt"),
        metrics=run_path("results/pretrain", TEACHER, "metrics.jsonl"),
        config=run_path("results/pretrain", TEACHER, "config.yaml"),
    log:
        run_path("logs/pretrain", TEACHER, ".log"),
    benchmark:
        run_path("benchmarks/pretrain", TEACHER, ".tsv")
    conda:
        "../envs/snnkd.yaml"
    threads: res("pretrain", "threads")
    resources:
        mem_mb=res("pretrain", "mem_mb"),
        runtime=res("pretrain", "runtime"),
        gpu=res("pretrain", "gpu"),
    params:
        args=pretrain_args,
        out=subpath(output.model, parent=True),
        state=run_path("work/state/pretrain", TEACHER, ".pt"),
        snnkd=launcher("pretrain"),
    shell:
        "OMP_NUM_THREADS={threads} {params.snnkd} pretrain {params.args} --out {params.out:q} "
        "--state {params.state:q} --no-progress > {log:q} 2>&1"


rule distill:
    """Train one SNN student with one distillation method, trainer, T and seed."""
    input:
        teacher=teacher_model,
    output:
        model=run_path("results/distill", STUDENT, "model.pt"),
        metrics=run_path("results/distill", STUDENT, "metrics.jsonl"),
        config=run_path("results/distill", STUDENT, "config.yaml"),
    log:
        run_path("logs/distill", STUDENT, ".log"),
    benchmark:
        run_path("benchmarks/distill", STUDENT, ".tsv")
    conda:
        "../envs/snnkd.yaml"
    threads: res("distill", "threads")
    resources:
        mem_mb=res("distill", "mem_mb"),
        runtime=res("distill", "runtime"),
        gpu=res("distill", "gpu"),
    params:
        args=distill_args,
        teacher=lambda wc, input: teacher_option(wc, input),
        out=subpath(output.model, parent=True),
        state=run_path("work/state/distill", STUDENT, ".pt"),
        snnkd=launcher("distill"),
    shell:
        "OMP_NUM_THREADS={threads} {params.snnkd} distill {params.args} {params.teacher} --out {params.out:q} "
        "--state {params.state:q} --no-progress > {log:q} 2>&1"
