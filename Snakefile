# snnkd workflow: pretrain ANN teachers, distill SNN students, evaluate, export, summarise.
#
# How result paths are built
# --------------------------
# The config (config/config.yaml, checked against workflow/schemas/config.schema.yaml)
# names variants of datasets, teachers, students, methods and trainers; every `grid` block
# is a Cartesian product of variant names, T values and seeds.  One student run is
#
#     STUDENT = {dataset}/{teacher}/{student}/{method}/{trainer}/T{T}/seed{seed}
#     TEACHER = {dataset}/{teacher}
#
# where each field is a variant name from the config (teacher is `none` for methods of
# kind `none`, so the baseline trains once per student, not once per teacher).
# Every step writes three parallel trees with the same wildcards:
#
#     results/<step>/<id>/...     logs/<step>/<id>.log     benchmarks/<step>/<id>.tsv
#
#     results/pretrain/TEACHER/{model.pt,metrics.jsonl,config.yaml}
#     results/distill/STUDENT/{model.pt,metrics.jsonl,config.yaml}
#     results/evaluate/pretrain/TEACHER/eval.json   results/evaluate/distill/STUDENT/eval.json
#     results/export/{nir,onnx}/STUDENT/model.{nir,onnx} + {nir,onnx}.json
#     results/export/lava/STUDENT/{net/,lava.json}  results/energy/STUDENT/energy.{json,md}
#     results/summary/summary.{tsv,md}             results/plots/*.png
#
# Rules name these paths with one helper, run_path(prefix, STUDENT or TEACHER, leaf), so
# every wildcard is named (workflow/rules/common.smk).  The NIR graph of a student is made
# once; export_lava and energy read it (snnkd export/energy --nir).
# Resumable training state lives in work/state/<step>/<id>.pt (not a declared output).
# Hyperparameters reach `snnkd` as rule params, so Snakemake's params rerun trigger
# reruns exactly the jobs whose options changed, and everything downstream of them.

import os

from snakemake.utils import min_version, validate
from snakemake.exceptions import WorkflowError

min_version("9.0")


include: "workflow/rules/safe_config.smk"


# config/config.yaml unless --configfile names another one (then only that one is used).
# Every config file is first read once more, carefully (repeated keys, nesting depth, alias
# expansion): see workflow/rules/safe_config.smk.
check_config_files(workflow.overwrite_configfiles or [p for p in ["config/config.yaml"] if os.path.exists(p)])

if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")
try:
    from snnkd.workflow_schema import integer_error
except ImportError as e:
    raise WorkflowError(f"config check: snnkd is not importable by Snakemake ({e})")
_int_error = integer_error(config, os.path.join(workflow.basedir, "workflow/schemas/config.schema.yaml"))  # 1.0 is no integer
if _int_error:
    raise WorkflowError(f"Error validating config file. {_int_error}")


include: "workflow/rules/registry_check.smk"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/convert.smk"
include: "workflow/rules/summary.smk"


wildcard_constraints:
    dataset=NAME,
    teacher=NAME,
    student=NAME,
    method=NAME,
    trainer=NAME,
    T=r"\d+",
    seed=r"\d+",


# Thin glue that takes seconds runs on the submitting host, not as cluster jobs.
localrules:
    all,
    summarise,
    plots,
    summary_html,
    papers_html,
    plot_blockwise,


rule all:
    """Every run of the grid evaluated, the export switched on, the tables and figures."""
    default_target: True
    input:
        student_evals(),
        teacher_evals(),
        export_targets(),
        "results/summary/summary.tsv",
        "results/summary/summary.md",
        "results/plots/accuracy_energy.png",
        "results/plots/firing_rates.png",
        "results/plots/training_curves.png",
        report_outputs(),
