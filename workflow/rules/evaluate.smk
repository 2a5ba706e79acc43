# Evaluation of teachers (stage pretrain) and students (stage distill) with snnkd evaluate:
# results/evaluate/<stage>/<the model's own path>/eval.json


rule evaluate:
    """Accuracy, per-layer firing rates, SynOps/MACs and energy of one model."""
    input:
        model="results/{stage}/{id}/model.pt",
    output:
        json="results/evaluate/{stage}/{id}/eval.json",
    params:
        args=evaluate_args,
    log:
        "logs/evaluate/{stage}/{id}.log",
    benchmark:
        "benchmarks/evaluate/{stage}/{id}.tsv"
    wildcard_constraints:
        stage="pretrain|distill",
    threads: res("evaluate", "threads")
    resources:
        mem_mb=res("evaluate", "mem_mb"),
        runtime=res("evaluate", "runtime"),
        gpu=res("evaluate", "gpu"),
    conda:
        "../envs/snnkd.yaml"
    shell:
        "OMP_NUM_THREADS={threads} snnkd evaluate --model {input.model:q} --out {output.json:q} "
        "{params.args} > {log:q} 2>&1"
