"""Params checks: the pydantic base of every params section, and one error line per bad value.

Every params section, and every method's `Config`, is a `Section`: a pydantic model that refuses
unknown keys, and whose fields state their rules as pydantic types (`Int` with `Field(gt=0)`,
`Literal[...]`, `Bool`, finite `Float`s, lists with `min_length`, validators for rules that
involve several values). `parse` validates a mapping into one and turns pydantic's report into a
`ParamsError` of one line that names the dotted key, the value given and what is allowed, e.g.
`methods.adae.width = -3 is invalid: must be an integer > 0`. What is allowed is read off the
field's own type (its JSON schema), so the rule and its wording cannot drift apart.

Light on purpose: pydantic only, no torch, scikit-learn or numba, so that `load_params()` in the
data stages starts in a fraction of a second.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, StrictBool, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from ganad.errors import ParamsError


def _plain_number(value):
    """A numpy scalar computed in code (an int64 label, a float32 rate) as the Python number it holds."""
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0 and value.dtype.kind in "iuf":
        return value.item()
    return value


def _no_bool(value):
    """YAML's true/false are not the numbers 1/0, not even for a `Literal[1, 3]`."""
    if isinstance(value, bool):
        raise PydanticCustomError("bool_refused", "a boolean is not a number here")
    return value


# Strict: a YAML `true` is no integer, nor 1.5, nor "3"; numbers are finite.
Int = Annotated[int, Strict(), BeforeValidator(_plain_number)]
Float = Annotated[float, Strict(), Field(allow_inf_nan=False), BeforeValidator(_plain_number)]
Bool = StrictBool
Text = Annotated[str, Strict()]
PositiveInt = Annotated[Int, Field(gt=0)]
NonNegativeInt = Annotated[Int, Field(ge=0)]
PositiveFloat = Annotated[Float, Field(gt=0)]
Fraction = Annotated[Float, Field(ge=0, lt=1)]  # [0, 1)
NonEmptyText = Annotated[Text, Field(min_length=1)]
NotBool = BeforeValidator(_no_bool)  # for a Literal of numbers: Annotated[Literal["auto", 1, 3], NotBool]


def once(values: list) -> list:
    """An AfterValidator for lists whose items must differ (run.seeds, run.methods, ...)."""
    if len(set(map(repr, values))) != len(values):
        raise ValueError("must be a list of distinct values")
    return values


class Invalid(ValueError):
    """Raised by a validator whose message says more than the field's rule (a rule across fields, a removed
    setting). `key` is dotted, relative to where the validator runs (its model, or its field: ""); `problem` is
    the rest of the message, e.g. Invalid("npz_path", "is missing: source 'npz' needs the archive's path")."""

    def __init__(self, key: str, problem: str):
        super().__init__(problem)
        self.key, self.problem = key, problem


def invalid(key: str, value: Any, allowed: str) -> Invalid:
    """The usual bad-value message: `<key> = <value> is invalid: must be <allowed>`."""
    return Invalid(key, f"= {value!r} is invalid: must be {allowed}")


class Section(BaseModel):
    """A params section: its fields, their defaults and rules; unknown keys refused, assignments checked."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_is_default(cls, data):
        return {} if data is None else data  # `section:` with nothing under it: every default


def parse(model_cls: type[Section], section: Any, where: str = ""):
    """`section` validated into `model_cls`; a bad value or key stops with one `ParamsError` line whose keys are
    prefixed by `where` (e.g. "methods.adae")."""
    try:
        return model_cls.model_validate({} if section is None else section)
    except ValidationError as exc:
        raise ParamsError(explain(model_cls, exc, where)) from None


# --- pydantic's report as one line ---------------------------------------------------------------------------


def explain(model_cls: type[BaseModel], exc: ValidationError, where: str = "") -> str:
    """The first problem of `exc` (unknown keys first) as one line naming the dotted key, the value and the rule."""
    schema = model_cls.model_json_schema()
    walk = _Walker(schema)
    errors = exc.errors()
    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    if unknown:
        keys, node = walk(unknown[0]["loc"][:-1])
        parent = unknown[0]["loc"][: len(keys)]
        names = sorted(str(e["loc"][-1]) for e in unknown if e["loc"][:-1] == parent)
        allowed = sorted(walk.resolve(node).get("properties", {}))
        place = _dotted(where, keys)
        return (f"{place}: unknown key(s)" if place else "unknown top-level key(s)") + f" {names}; allowed: {allowed}"
    keys, node = walk(errors[0]["loc"])
    # one field, several reports (one per member of a union): the deepest says most, a validator's most of those
    same = [e for e in errors if walk(e["loc"])[0] == keys]
    error = max(same, key=lambda e: (len(e["loc"]), e["type"] == "value_error"))
    key = _dotted(where, keys) or "params"
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, Invalid):
        full = _dotted(where, keys + (cause.key.split(".") if cause.key else []))
        return f"{full or 'params'}{'' if cause.problem.startswith(':') else ' '}{cause.problem}"
    if error["type"] == "missing":
        return f"{key} is missing: must be {describe(node, walk)}"
    if isinstance(cause, Exception):  # a validator's own rule, e.g. "must be a list of distinct values"
        return f"{key} = {error['input']!r} is invalid: {cause}"
    return f"{key} = {error['input']!r} is invalid: must be {describe(node, walk)}"


def _dotted(where: str, keys) -> str:
    return ".".join(str(k) for k in ([where] if where else []) + list(keys))


class _Walker:
    """Follows an error's location through a model's JSON schema: the keys it names, and the schema of the last."""

    def __init__(self, schema: dict):
        self.schema = schema

    def deref(self, node: dict) -> dict:
        """`node` with references followed."""
        while True:
            if "$ref" in node:
                node = self.schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
            elif len(node.get("allOf", ())) == 1:
                node = node["allOf"][0]
            else:
                return node

    def resolve(self, node: dict) -> dict:
        """`node` with references followed, and an optional model (`X | None`) as the model."""
        node = self.deref(node)
        mappings = [b for b in node.get("anyOf", ()) if self.deref(b).get("type") == "object"]
        return self.deref(mappings[0]) if len(mappings) == 1 else node

    def __call__(self, loc) -> tuple[list[str], dict]:
        keys, node = [], self.schema
        for item in loc:
            here = self.resolve(node)
            if isinstance(item, str) and item in here.get("properties", {}):
                node = here["properties"][item]
            elif (
                isinstance(item, str)
                and isinstance(here.get("additionalProperties"), dict)
                and here.get("type") == "object"
            ):
                node = here["additionalProperties"]  # a key of a mapping (data.<name>, methods.<name>)
            else:
                break  # a list index or a union member's tag: the field's own
            keys.append(item)
        return keys, node


_SYMBOLS = {
    "exclusiveMinimum": ">",
    "gt": ">",
    "minimum": ">=",
    "ge": ">=",
    "exclusiveMaximum": "<",
    "lt": "<",
    "maximum": "<=",
    "le": "<=",
}


def _bounds(node: dict) -> str:
    """' > 0', ' in [0, 1)', ...: a number's bounds (pydantic writes them either way in a JSON schema)."""
    low = next(((k, node[k]) for k in ("exclusiveMinimum", "gt", "minimum", "ge") if k in node), None)
    high = next(((k, node[k]) for k in ("exclusiveMaximum", "lt", "maximum", "le") if k in node), None)
    if low and high:
        return (
            f" in {'(' if _SYMBOLS[low[0]] == '>' else '['}{low[1]}, "
            f"{high[1]}{')' if _SYMBOLS[high[0]] == '<' else ']'}"
        )
    one = low or high
    return f" {_SYMBOLS[one[0]]} {one[1]}" if one else ""


_PLURALS = (
    ("an integer", "integers"),
    ("a finite number", "finite numbers"),
    ("a non-empty string", "non-empty strings"),
    ("a string", "strings"),
    ("one of ", "values from "),
    ("a mapping", "mappings"),
)


def _plural(text: str) -> str:
    for one, many in _PLURALS:
        if text.startswith(one):
            return many + text[len(one) :]
    return f"items that are each {text}"


def describe(node: dict, walk: _Walker) -> str:
    """What a JSON-schema node allows, in words: 'an integer > 0', "'auto' or an integer > 0", ..."""
    node = walk.deref(node)
    kind = node.get("type")
    if kind == "object":  # a section, or a mapping such as executor.slurm.additional
        return "a mapping of keys to values"
    if "description" in node:
        return node["description"]
    if "const" in node:
        return repr(node["const"])
    if "enum" in node:
        return f"one of {node['enum']}"
    if "anyOf" in node:
        parts = [describe(branch, walk) for branch in node["anyOf"]]
        return " or ".join(sorted(parts, key=lambda p: p != "null"))
    if kind == "null":
        return "null"
    if kind == "boolean":
        return "true or false"
    if kind == "integer":
        return "an integer" + _bounds(node)
    if kind == "number":
        return "a finite number" + _bounds(node)
    if kind == "string":
        return "a non-empty string" if node.get("minLength") else "a string"
    if kind == "array":
        items = walk.deref(node.get("items") or {})
        items = (
            f"values from [{items['const']!r}]"
            if "const" in items
            else _plural(describe(items, walk))
            if items
            else "values"
        )
        return f"a {'non-empty ' if node.get('minItems') else ''}list of {items}"
    return "a valid value"
