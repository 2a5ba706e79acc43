"""config/README.md documents every key of the workflow schema, and the catalog file of
the snakemake-workflows convention is present and well formed."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def schema_keys(node: object) -> set[str]:
    """Every property name declared anywhere in the schema (top level, variants, $defs)."""
    keys: set[str] = set()
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "properties" and isinstance(v, dict):
                keys |= set(v)
            keys |= schema_keys(v)
    elif isinstance(node, list):
        for v in node:
            keys |= schema_keys(v)
    return keys


def test_config_readme_names_every_schema_key() -> None:
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    documented = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", (ROOT / "config" / "README.md").read_text()))
    keys = schema_keys(schema)
    assert len(keys) > 40  # the walk found the nested keys, not only the top level
    assert sorted(keys - documented) == []


def test_config_readme_names_every_top_level_key_in_its_table() -> None:
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    text = (ROOT / "config" / "README.md").read_text()
    table = text.split("## Top-level keys", 1)[1].split("\n## ", 1)[0]
    rows = set(re.findall(r"^\| `(\w+)` \|", table, re.MULTILINE))
    assert rows == set(schema["properties"]), sorted(rows ^ set(schema["properties"]))
    assert {f"`{k}`" for k in schema["required"]} <= {f"`{r}`" for r in rows}


def test_workflow_catalog_file() -> None:
    cat = yaml.safe_load((ROOT / ".snakemake-workflow-catalog.yml").read_text())
    usage = cat["usage"]
    assert set(usage) <= {"mandatory-flags", "software-stack-deployment", "report"}
    assert usage["report"] is True and usage["software-stack-deployment"]["conda"] is True
    assert "Snakefile" in usage["mandatory-flags"]["desc"] and (ROOT / "Snakefile").is_file()
