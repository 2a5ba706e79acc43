# DAG-build-time check of the names a config gives snnkd: every architecture (teachers,
# students), dataset name, method kind and trainer kind must be registered in snnkd's
# registries (built-in, entry-point plugins, and the config's `plugins:` modules), so a
# typo fails `snakemake -n` with one line naming it and the valid choices, not inside a job.
# The config's `plugins:` reach every rule's snnkd command through SNNKD_PLUGINS.

from snakemake.exceptions import WorkflowError

# (config section, key of each variant, registry kind)
REGISTRY_NAMES = [
    ("teachers", "arch", "model"),
    ("students", "arch", "model"),
    ("datasets", "name", "dataset"),
    ("methods", "kind", "method"),
    ("trainers", "kind", "trainer"),
]


def snnkd_registries(cfg: dict) -> dict:
    """snnkd's registries after importing the config's plugins (also exported to the jobs)."""
    try:
        from snnkd.errors import SnnkdError
        from snnkd.registry import load_plugins, plugin_modules, registries
    except ImportError as e:
        raise WorkflowError(f"config check: snnkd is not importable by Snakemake ({e})")
    try:
        load_plugins(plugin_modules(cfg.get("plugins") or []), export=True)
        regs = registries()
        for reg in regs.values():
            reg.load()
    except SnnkdError as e:
        raise WorkflowError(f"config: plugins: {e}")
    return regs


def check_registry_names(cfg: dict, regs: dict) -> None:
    """Raise one WorkflowError naming the first unregistered name and the valid choices."""
    from snnkd.registry import close_match

    for section, key, kind in REGISTRY_NAMES:
        for variant, spec in (cfg.get(section) or {}).items():
            value = (spec or {}).get(key)
            if value is not None and value not in regs[kind]:
                names = regs[kind].names()
                raise WorkflowError(
                    f"config: {section}.{variant}.{key}: unknown {kind} {value!r}"
                    f"{close_match(value, names)}; choose one of {', '.join(names)}"
                )


def teacherless_methods(regs: dict) -> set:
    """Method kinds that train without a teacher (their `needs_teacher` attribute)."""
    return {name for name, cls in regs["method"].items() if not cls.needs_teacher}


SNNKD_REGISTRIES = snnkd_registries(config)
check_registry_names(config, SNNKD_REGISTRIES)
