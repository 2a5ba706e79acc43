# ANN-to-SNN conversion baseline (snnkd convert, issue 15): each teacher of the `convert:` block
# turned into an SNN at every T, evaluated like a student, summarised beside the KD rows:
#
#     results/convert/CONVERSION/{model.pt,config.yaml}    CONVERSION = {dataset}/{teacher}/T{T}
#     results/evaluate/convert/CONVERSION/eval.json
#
# The summary and the plots read convert_records() (method `convert`, trainer `none`, the
# teacher's variant name as student, seed 0): see summary.smk.


include: "convert_helpers.smk"


rule convert:
    """One ANN teacher converted to an SNN at one T (percentile normalisation, IF soft reset)."""
    input:
        teacher=run_path("results/pretrain", TEACHER, "model.pt"),
    output:
        model=run_path("results/convert", CONVERSION, "model.pt"),
        config=run_path("results/convert", CONVERSION, "config.yaml"),
    log:
        run_path("logs/convert", CONVERSION, ".log"),
    benchmark:
        run_path("benchmarks/convert", CONVERSION, ".tsv")
    conda:
        "../envs/snnkd.yaml"
    threads: res("convert", "threads")
    resources:
        mem_mb=res("convert", "mem_mb"),
        runtime=res("convert", "runtime"),
        gpu=res("convert", "gpu"),
    params:
        args=convert_args,
        out=subpath(output.model, parent=True),
    shell:
        "OMP_NUM_THREADS={threads} snnkd convert --teacher {input.teacher:q} --out {params.out:q} " "{params.args} > {log:q} 2>&1"


use rule evaluate as evaluate_convert with:
    input:
        model=run_path("results/convert", CONVERSION, "model.pt"),
    output:
        json=run_path("results/evaluate/convert", CONVERSION, "eval.json"),
    log:
        run_path("logs/evaluate/convert", CONVERSION, ".log"),
    benchmark:
        run_path("benchmarks/evaluate/convert", CONVERSION, ".tsv")
