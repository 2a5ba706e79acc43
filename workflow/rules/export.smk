# Export of every student: NIR graph, ONNX model, Lava network for Loihi, and an energy
# table per hardware target.  Each is switched on under `export:` in the config.
# The NIR graph is built once per student (export_nir); the Lava network and the energy
# counts are made from that file (`--nir`), so all three describe the same graph.


rule export_nir:
    """Export one student to NIR, with a JSON report of the check against PyTorch."""
    input:
        model=run_path("results/distill", STUDENT, "model.pt"),
    output:
        model=run_path("results/export/nir", STUDENT, "model.nir"),
        report=run_path("results/export/nir", STUDENT, "nir.json"),
    log:
        run_path("logs/export/nir", STUDENT, ".log"),
    benchmark:
        run_path("benchmarks/export/nir", STUDENT, ".tsv")
    conda:
        "../envs/snnkd.yaml"
    threads: res("export", "threads")
    resources:
        mem_mb=res("export", "mem_mb"),
        runtime=res("export", "runtime"),
        gpu=res("export", "gpu"),
    params:
        args=export_args,
    shell:
        "OMP_NUM_THREADS={threads} snnkd export --model {input.model:q} --to nir "
        "--out {output.model:q} --report {output.report:q} {params.args} > {log:q} 2>&1"


rule export_onnx:
    """Export one student to ONNX (unrolled over T), checked with onnxruntime."""
    input:
        model=run_path("results/distill", STUDENT, "model.pt"),
    output:
        model=run_path("results/export/onnx", STUDENT, "model.onnx"),
        report=run_path("results/export/onnx", STUDENT, "onnx.json"),
    log:
        run_path("logs/export/onnx", STUDENT, ".log"),
    benchmark:
        run_path("benchmarks/export/onnx", STUDENT, ".tsv")
    conda:
        "../envs/snnkd.yaml"
    threads: res("export", "threads")
    resources:
        mem_mb=res("export", "mem_mb"),
        runtime=res("export", "runtime"),
        gpu=res("export", "gpu"),
    params:
        args=export_args,
    shell:
        "OMP_NUM_THREADS={threads} snnkd export --model {input.model:q} --to onnx "
        "--out {output.model:q} --report {output.report:q} {params.args} > {log:q} 2>&1"


rule export_lava:
    """Build one student's Lava network from its NIR file (runs on Loihi, or Lava's CPU simulator)."""
    input:
        model=run_path("results/distill", STUDENT, "model.pt"),
        nir=run_path("results/export/nir", STUDENT, "model.nir"),
    output:
        net=directory(run_path("results/export/lava", STUDENT, "net")),
        report=run_path("results/export/lava", STUDENT, "lava.json"),
    log:
        run_path("logs/export/lava", STUDENT, ".log"),
    benchmark:
        run_path("benchmarks/export/lava", STUDENT, ".tsv")
    conda:
        "../envs/lava.yaml"
    threads: res("export", "threads")
    resources:
        mem_mb=res("export", "mem_mb"),
        runtime=res("export", "runtime"),
        gpu=res("export", "gpu"),
    params:
        args=export_args,
    shell:
        "OMP_NUM_THREADS={threads} snnkd export --model {input.model:q} --to lava --nir {input.nir:q} "
        "--out {output.net:q} --report {output.report:q} {params.args} > {log:q} 2>&1"


rule energy:
    """Energy of one student on every hardware target, counted on its NIR graph."""
    input:
        model=run_path("results/distill", STUDENT, "model.pt"),
        nir=run_path("results/export/nir", STUDENT, "model.nir"),
    output:
        json=run_path("results/energy", STUDENT, "energy.json"),
        table=run_path("results/energy", STUDENT, "energy.md"),
    log:
        run_path("logs/energy", STUDENT, ".log"),
    benchmark:
        run_path("benchmarks/energy", STUDENT, ".tsv")
    conda:
        "../envs/snnkd.yaml"
    threads: res("export", "threads")
    resources:
        mem_mb=res("export", "mem_mb"),
        runtime=res("export", "runtime"),
        gpu=res("export", "gpu"),
    params:
        args=energy_args,
    shell:
        "OMP_NUM_THREADS={threads} snnkd energy --model {input.model:q} --nir {input.nir:q} "
        "--out {output.json:q} --table {output.table:q} {params.args} > {log:q} 2>&1"
