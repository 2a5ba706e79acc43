"""The workflow config's integers, read as JSON Schema's draft 4 read them: a whole number.

Snakemake validates the config against ``workflow/schemas/config.schema.yaml`` with the
draft the schema declares (2020-12), where ``type: integer`` also admits a float whose
fractional part is zero: ``epochs: 1.0`` passes, and the job then fails when
``snnkd --epochs 1.0`` is refused by the command line.  This second pass over the same
schema, with only the ``integer`` type redefined (Python ``int``, not ``bool``), catches it
when the DAG is built, with the path of the value.  The Snakefile runs it right after
Snakemake's own ``validate``; ``tests/schema_utils.py`` runs both, as the Snakefile does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import best_match


def _whole(checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


_Strict = validators.extend(Draft202012Validator,
                            type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _whole))


def integer_error(config: Any, schema_path: str | Path) -> str | None:
    """One line naming the first value the schema wants as an integer but the config gives
    as anything else (``1.0`` among them), or ``None``."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    err = best_match(_Strict(schema).iter_errors(config))
    if err is None:
        return None
    where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
    return f"config {where}: {err.message}"
