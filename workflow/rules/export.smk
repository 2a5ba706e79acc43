# Export of every student: NIR graph, ONNX model, Lava network for Loihi, and an energy
# table per hardware target.  Each is switched on under `export:` in the config.


rule export_file:
    """Export one student to NIR or ONNX, with a JSON report of the check against PyTorch."""
    input:
        model="results/distill/{id}/model.pt",
    output:
        model="results/export/{fmt}/{id}/model.{fmt}",
        report="results/export/{fmt}/{id}/{fmt}.json",
    params:
        args=export_args,
    log:
        "logs/export/{fmt}/{id}.log",
    benchmark:
        "benchmarks/export/{fmt}/{id}.tsv"
    wildcard_constraints:
        fmt="nir|onnx",
        id=STUDENT_ID,
    threads: res("export", "threads")
    resources:
        mem_mb=res("export", "mem_mb"),
        runtime=res("export", "runtime"),
        gpu=res("export", "gpu"),
    conda:
        "../envs/snnkd.yaml"
    shell:
        "OMP_NUM_THREADS={threads} snnkd export --model {input.model:q} --to {wildcards.fmt:q} "
        "--out {output.model:q} --report {output.report:q} {params.args} > {log:q} 2>&1"


rule export_lava:
    """Export one student to a Lava network (runs on Loihi, or Lava's CPU simulator)."""
    input:
        model="results/distill/{id}/model.pt",
    output:
        net=directory("results/export/lava/{id}/net"),
        report="results/export/lava/{id}/lava.json",
    params:
        args=export_args,
    log:
        "logs/export/lava/{id}.log",
    benchmark:
        "benchmarks/export/lava/{id}.tsv"
    wildcard_constraints:
        id=STUDENT_ID,
    threads: res("export", "threads")
    resources:
        mem_mb=res("export", "mem_mb"),
        runtime=res("export", "runtime"),
        gpu=res("export", "gpu"),
    conda:
        "../envs/lava.yaml"
    shell:
        "OMP_NUM_THREADS={threads} snnkd export --model {input.model:q} --to lava "
        "--out {output.net:q} --report {output.report:q} {params.args} > {log:q} 2>&1"


rule energy:
    """Energy of one student on every hardware target of the energy table."""
    input:
        model="results/distill/{id}/model.pt",
    output:
        json="results/energy/{id}/energy.json",
        table="results/energy/{id}/energy.md",
    params:
        args=export_args,
    log:
        "logs/energy/{id}.log",
    benchmark:
        "benchmarks/energy/{id}.tsv"
    wildcard_constraints:
        id=STUDENT_ID,
    threads: res("export", "threads")
    resources:
        mem_mb=res("export", "mem_mb"),
        runtime=res("export", "runtime"),
        gpu=res("export", "gpu"),
    conda:
        "../envs/snnkd.yaml"
    shell:
        "OMP_NUM_THREADS={threads} snnkd energy --model {input.model:q} --out {output.json:q} "
        "--table {output.table:q} {params.args} > {log:q} 2>&1"
