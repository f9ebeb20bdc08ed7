"""The config of the resources an asset requires: part of its fingerprint.

A resource's config can change the value (`env="prod"` -> `"staging"`), so the
fingerprint records, per resource key the asset's op requires
(`required_resource_keys` and resource parameters), that resource's config as
a run would resolve it: the definition's configured values, overridden by the
run config's `resources.<key>.config`, with Dagster's field defaults filled in.

Secrets stay out by one rule: a field whose configured value is an `EnvVar`
(Dagster keeps it as `{"env": NAME}` in the resource's config schema default
or in the run config) is recorded by name, `{"env": "DB_PASSWORD"}`, never by
value; changing which variable it reads is a miss, changing the variable's
value is not (rotate a password without recomputing). Anything else the user
wants left out is named in `cached(exclude_resources=[...])`: `"db"` drops the
whole resource, `"db.password"` one (dotted, nested) field.

A resource held in a field of another (`creds: Creds`) is recorded inside it,
under the field's name, by the same rules. IO managers are not recorded: they
decide where a value is stored, not what it is (pivot's own config is the
store). A resource without config (a plain
object given to `Definitions`) is recorded as `{}`: pivot cannot see its state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pivot_dagster.fingerprint import jsonable_params


class ResourceConfigError(Exception):
    """The config of a resource cannot be resolved here (say, an unset env var outside a run)."""


def _is_env(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"env"} and isinstance(value["env"], str)


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, Mapping) and isinstance(over, Mapping) and not _is_env(over):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base.get(k), v) if k in base else v
        return out
    return over


def _names_for_env(resolved: Any, raw: Any) -> Any:
    """`resolved` with every value that `raw` took from an env var replaced by its name."""
    if _is_env(raw):
        return {"env": raw["env"]}
    if isinstance(resolved, Mapping) and isinstance(raw, Mapping):
        return {k: _names_for_env(v, raw.get(k)) for k, v in resolved.items()}
    if isinstance(resolved, list) and isinstance(raw, list) and len(raw) == len(resolved):
        return [_names_for_env(v, r) for v, r in zip(resolved, raw, strict=True)]
    return resolved


def _drop(config: dict[str, Any], path: list[str]) -> None:
    node: Any = config
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(path[-1], None)


def is_io_manager(resource_def: Any) -> bool:
    from dagster import IOManagerDefinition

    return isinstance(resource_def, IOManagerDefinition)


def config_of(resource_def: Any, run_config: Any = None) -> dict[str, Any]:
    """One resource's resolved config, EnvVar fields by name (see the module doc)."""
    from dagster._config import process_config

    schema = getattr(resource_def, "config_schema", None)
    config_type = getattr(schema, "config_type", None)
    if schema is None or config_type is None:
        return {}
    default = schema.default_value if schema.default_provided else None
    raw = _merge(default, run_config) if run_config is not None else default
    result = process_config(config_type, raw if raw is not None else {})
    if not result.success:
        errors = "; ".join(e.message for e in result.errors or [])
        raise ResourceConfigError(errors or "invalid resource config")
    resolved = _names_for_env(result.value, raw)
    config = jsonable_params(resolved)
    config.update(_nested(resource_def))
    return config


def _nested(resource_def: Any) -> dict[str, Any]:
    """Resources held in fields of a ConfigurableResource (`creds: Creds`): Dagster keeps
    them out of the outer config schema, so each is recorded under its field name."""
    out: dict[str, Any] = {}
    for attr, nested in sorted((getattr(resource_def, "nested_resources", None) or {}).items()):
        nested_def = (
            nested.get_resource_definition()
            if hasattr(nested, "get_resource_definition")
            else nested
        )
        if not is_io_manager(nested_def):
            out[attr] = config_of(nested_def)
    return out


def resource_parts(
    required: Iterable[str],
    resource_defs: Mapping[str, Any],
    run_config: Mapping[str, Any] | None,
    exclude: Iterable[str] = (),
) -> dict[str, Any]:
    """`{resource key: config}` for the resources an asset requires (module doc).

    `run_config` is the run's `resources` section (None outside a run: the
    definitions' own config, which is what a run without run config gets).
    """
    excluded = [e.split(".") for e in exclude]
    out: dict[str, Any] = {}
    for key in sorted(required):
        rdef = resource_defs.get(key)
        if rdef is None or is_io_manager(rdef) or [key] in excluded:
            continue
        given = ((run_config or {}).get(key) or {}).get("config")
        config = config_of(rdef, given)
        for path in excluded:
            if path[0] == key and len(path) > 1:
                _drop(config, path[1:])
        out[key] = config
    return out
