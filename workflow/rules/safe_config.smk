# A careful second reading of every workflow config file, before the config is validated or
# used.  Snakemake's own reader (PyYAML FullLoader) keeps YAML aliases shared, so a 1 KB
# "billion laughs" file loads quickly, but the first thing that walks the config (the schema
# error message, Snakemake's JSON dump of the config, a rule's params) expands it until memory
# runs out.  It also lets a repeated key silently win (two variants with one name) and has no
# depth bound.  Here each file is composed once more as a YAML node graph and refused, with one
# message naming the file and line, when
#   - a mapping repeats a key,
#   - collections nest deeper than MAX_CONFIG_DEPTH (aliases counted as expanded),
#   - aliases would expand to more than MAX_CONFIG_NODES nodes, or an alias refers to itself.
# Aliases within those bounds (the paper configs share one training recipe) stay allowed.
# Nesting beyond ~490 levels is refused by Snakemake itself (RecursionError in its reader)
# before this file runs.

import json

import yaml
from snakemake.exceptions import WorkflowError

MAX_CONFIG_DEPTH = 50  # nested mappings/sequences; the shipped configs use at most 6
MAX_CONFIG_NODES = 100_000  # YAML nodes after alias expansion; the shipped configs use < 2,000


class ConfigFileError(Exception):
    """A workflow config file that is not read any further."""


class _CheckingLoader(yaml.SafeLoader):
    """SafeLoader whose composer bounds depth and refuses repeated mapping keys."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.CollectionStartEvent):
            self._depth += 1
            if self._depth > MAX_CONFIG_DEPTH:
                line = self.peek_event().start_mark.line + 1
                raise ConfigFileError(f"line {line}: nested deeper than {MAX_CONFIG_DEPTH} levels")
            try:
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1
        return super().compose_node(parent, index)

    def compose_mapping_node(self, anchor):
        node = super().compose_mapping_node(anchor)
        first = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            ident = (key.tag, key.value)
            if ident in first:
                raise ConfigFileError(
                    f"line {key.start_mark.line + 1}: duplicate key {key.value!r} " f"(first given on line {first[ident]})"
                )
            first[ident] = key.start_mark.line + 1
        return node


def _children(node) -> list:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _measure(node, level: int, memo: dict, open_: set) -> tuple[int, int]:
    """(expanded node count, expanded height) of ``node`` found at nesting ``level`` (root 1).
    Height counts the collections on the longest path down (a scalar has 0).  Raises
    ConfigFileError as soon as a bound is passed, so neither time nor recursion grows."""
    children = _children(node)
    line = node.start_mark.line + 1
    if children and level > MAX_CONFIG_DEPTH:
        raise ConfigFileError(f"line {line}: nested deeper than {MAX_CONFIG_DEPTH} levels once aliases are expanded")
    key = id(node)
    if key in open_:
        raise ConfigFileError(f"line {line}: an alias refers to its own anchor")
    if key not in memo:
        open_.add(key)
        size, height = 1, 0
        for child in children:
            csize, cheight = _measure(child, level + 1, memo, open_)
            size, height = size + csize, max(height, cheight)
            if size > MAX_CONFIG_NODES:
                raise ConfigFileError(f"line {line}: aliases expand to more than {MAX_CONFIG_NODES} values")
        open_.discard(key)
        memo[key] = (size, height + 1 if isinstance(node, yaml.CollectionNode) else 0)
    size, height = memo[key]
    if level - 1 + height > MAX_CONFIG_DEPTH:
        raise ConfigFileError(f"line {line}: nested deeper than {MAX_CONFIG_DEPTH} levels once aliases are expanded")
    return size, height


def _json_depth(obj) -> int:
    """Nesting depth of parsed JSON, walked without recursion."""
    depth, stack = 0, [(obj, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            depth = max(depth, level)
            stack.extend((v, level + 1) for v in (item.values() if isinstance(item, dict) else item))
    return depth


def _check_json(text: str) -> bool:
    """Check ``text`` as JSON, which Snakemake tries first; False when it is not JSON.
    JSON has no aliases: refuse repeated keys and too deep nesting."""

    def pairs(items):
        seen = set()
        for k, _ in items:
            if k in seen:
                raise ConfigFileError(f"duplicate key {k!r}")
            seen.add(k)
        return dict(items)

    try:
        obj = json.loads(text, object_pairs_hook=pairs)
    except RecursionError:
        raise ConfigFileError(f"nested deeper than {MAX_CONFIG_DEPTH} levels") from None
    except ValueError:
        return False
    if _json_depth(obj) > MAX_CONFIG_DEPTH:
        raise ConfigFileError(f"nested deeper than {MAX_CONFIG_DEPTH} levels")
    return True


def check_config_text(text: str) -> None:
    """Refuse a config text with repeated keys, too deep nesting or an alias bomb."""
    if _check_json(text):
        return
    loader = _CheckingLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.YAMLError as e:
        raise ConfigFileError(f"not valid YAML: {' '.join(str(e).split())}") from None
    finally:
        loader.dispose()
    if root is not None:
        _measure(root, 1, {}, set())


def check_config_files(paths) -> None:
    """check_config_text for every file, as one WorkflowError naming the file."""
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise WorkflowError(f"config file {str(path)!r}: cannot be read: {e}") from None
        try:
            check_config_text(text)
        except ConfigFileError as e:
            raise WorkflowError(f"config file {str(path)!r}: {e}") from None
