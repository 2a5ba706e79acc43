# Training: ANN teachers (snnkd pretrain) and SNN students (snnkd distill).
# The resumable training state lives under work/state/, outside the declared outputs, so a
# killed job resumes from its last epoch instead of Snakemake deleting the checkpoint.


rule pretrain:
    """Train one ANN teacher on one dataset."""
    output:
        model="results/pretrain/{dataset}/{teacher}/model.pt",
        metrics="results/pretrain/{dataset}/{teacher}/metrics.jsonl",
        config="results/pretrain/{dataset}/{teacher}/config.yaml",
    params:
        args=pretrain_args,
        out=subpath(output.model, parent=True),
        state="work/state/pretrain/{dataset}/{teacher}.pt",
        snnkd=launcher("pretrain"),
    log:
        "logs/pretrain/{dataset}/{teacher}.log",
    benchmark:
        "benchmarks/pretrain/{dataset}/{teacher}.tsv"
    threads: res("pretrain", "threads")
    resources:
        mem_mb=res("pretrain", "mem_mb"),
        runtime=res("pretrain", "runtime"),
        gpu=res("pretrain", "gpu"),
    conda:
        "../envs/snnkd.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {params.snnkd} pretrain {params.args} --out {params.out:q} "
        "--state {params.state:q} --no-progress > {log:q} 2>&1"


rule distill:
    """Train one SNN student with one distillation method, trainer, T and seed."""
    input:
        teacher=teacher_model,
    output:
        model="results/distill/{dataset}/{teacher}/{student}/{method}/{trainer}/T{T}/seed{seed}/model.pt",
        metrics="results/distill/{dataset}/{teacher}/{student}/{method}/{trainer}/T{T}/seed{seed}/metrics.jsonl",
        config="results/distill/{dataset}/{teacher}/{student}/{method}/{trainer}/T{T}/seed{seed}/config.yaml",
    params:
        args=distill_args,
        teacher=lambda wc, input: teacher_option(wc, input),
        out=subpath(output.model, parent=True),
        state="work/state/distill/{dataset}/{teacher}/{student}/{method}/{trainer}/T{T}/seed{seed}.pt",
        snnkd=launcher("distill"),
    log:
        "logs/distill/{dataset}/{teacher}/{student}/{method}/{trainer}/T{T}/seed{seed}.log",
    benchmark:
        "benchmarks/distill/{dataset}/{teacher}/{student}/{method}/{trainer}/T{T}/seed{seed}.tsv"
    threads: res("distill", "threads")
    resources:
        mem_mb=res("distill", "mem_mb"),
        runtime=res("distill", "runtime"),
        gpu=res("distill", "gpu"),
    conda:
        "../envs/snnkd.yaml"
    shell:
        "OMP_NUM_THREADS={threads} {params.snnkd} distill {params.args} {params.teacher} --out {params.out:q} "
        "--state {params.state:q} --no-progress > {log:q} 2>&1"
