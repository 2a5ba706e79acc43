"""The workflow config schema, checked the way the Snakefile checks it (shared by tests)."""

from __future__ import annotations

import copy
from pathlib import Path

from snakemake import utils as snakemake_utils
from snakemake.exceptions import WorkflowError

from snnkd.workflow_schema import integer_error

SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


def accepted(cfg: dict) -> bool:
    """Whether Snakemake's ``validate`` accepts ``cfg`` against the schema (on a copy: it fills defaults)."""
    try:
        snakemake_utils.validate(copy.deepcopy(cfg), str(SCHEMA))
    except WorkflowError:
        return False
    return integer_error(cfg, SCHEMA) is None  # the Snakefile's second pass (snnkd.workflow_schema)
