"""ganad.schema: a pydantic error becomes one ParamsError line naming the dotted key, the value and the rule."""

from typing import Literal

import numpy as np
import pytest
from pydantic import Field, ValidationError, model_validator

from ganad.errors import ParamsError
from ganad.schema import Bool, Float, Int, Invalid, PositiveInt, Section, invalid, parse


class Inner(Section):
    width: Int = Field(64, gt=0)
    rate: Float = Field(0.5, ge=0, lt=1)
    sizes: list[PositiveInt] = Field([1, 2], min_length=1)
    mode: Literal["a", "b"] = "a"
    jobs: Literal["auto"] | PositiveInt = "auto"
    limit: PositiveInt | None = None
    flag: Bool = False

    @model_validator(mode="after")
    def _agree(self):
        if self.mode == "b" and self.width > 8:
            raise invalid("width", self.width, "at most 8 with mode 'b'")
        return self


class Outer(Section):
    inner: Inner = Field(default_factory=Inner)
    named: dict[str, Inner] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _missing(self):
        if "gone" in self.named:
            raise Invalid("named.gone", "is no longer a setting: remove it")
        return self


@pytest.mark.parametrize(
    "section, line",
    [
        ({"inner": {"width": -3}}, "methods.x.inner.width = -3 is invalid: must be an integer > 0"),
        ({"inner": {"width": True}}, "methods.x.inner.width = True is invalid: must be an integer > 0"),
        ({"inner": {"width": 1.5}}, "methods.x.inner.width = 1.5 is invalid: must be an integer > 0"),
        ({"inner": {"width": "3"}}, "methods.x.inner.width = '3' is invalid: must be an integer > 0"),
        ({"inner": {"rate": float("nan")}}, "methods.x.inner.rate = nan is invalid: must be a finite number in [0, 1)"),
        ({"inner": {"rate": True}}, "methods.x.inner.rate = True is invalid: must be a finite number in [0, 1)"),
        (
            {"inner": {"sizes": [3, 0]}},
            "methods.x.inner.sizes = 0 is invalid: must be a non-empty list of integers > 0",
        ),
        ({"inner": {"sizes": []}}, "methods.x.inner.sizes = [] is invalid: must be a non-empty list of integers > 0"),
        ({"inner": {"mode": "c"}}, "methods.x.inner.mode = 'c' is invalid: must be one of ['a', 'b']"),
        ({"inner": {"jobs": 0}}, "methods.x.inner.jobs = 0 is invalid: must be 'auto' or an integer > 0"),
        ({"inner": {"limit": -1}}, "methods.x.inner.limit = -1 is invalid: must be null or an integer > 0"),
        ({"inner": {"flag": 1}}, "methods.x.inner.flag = 1 is invalid: must be true or false"),
        ({"inner": 3}, "methods.x.inner = 3 is invalid: must be a mapping of keys to values"),
        ({"named": {"k": {"width": 0}}}, "methods.x.named.k.width = 0 is invalid: must be an integer > 0"),
        ({"named": {"k": {"mode": "b"}}}, "methods.x.named.k.width = 64 is invalid: must be at most 8 with mode 'b'"),
        ({"named": {"gone": {}}}, "methods.x.named.gone is no longer a setting: remove it"),
        (
            {"inner": {"widht": 3, "mdoe": "a"}},
            "methods.x.inner: unknown key(s) ['mdoe', 'widht']; allowed: ['flag', 'jobs', 'limit', 'mode', 'rate', "
            "'sizes', "
            "'width']",
        ),
    ],
)
def test_a_pydantic_error_is_one_line_naming_key_value_and_rule(section, line):
    with pytest.raises(ValidationError):
        Outer.model_validate(section)
    with pytest.raises(ParamsError) as info:
        parse(Outer, section, "methods.x")
    assert str(info.value) == line


def test_a_bool_is_refused_for_an_int_field_and_a_numpy_number_taken():
    with pytest.raises(ParamsError, match=r"^width = True is invalid: must be an integer > 0$"):
        parse(Inner, {"width": True})
    with pytest.raises(ParamsError, match=r"^width = False is invalid"):
        parse(Inner, {"width": False})
    config = parse(Inner, {"width": np.int64(3), "rate": np.float32(0.25)})
    assert config.width == 3 and type(config.width) is int and config.rate == 0.25
    with pytest.raises(ParamsError, match=r"width = 3.0 is invalid"):
        parse(Inner, {"width": np.float64(3.0)})


def test_top_level_unknown_keys_empty_sections_and_assignments():
    with pytest.raises(ParamsError, match=r"^unknown top-level key\(s\) \['zz'\]; allowed: \['inner', 'named'\]$"):
        parse(Outer, {"zz": 1})
    assert parse(Outer, None) == parse(Outer, {"inner": None}) == Outer()  # `section:` with nothing: the defaults
    config = parse(Inner, {})
    config.sizes.append(9)
    assert Inner().sizes == [1, 2]  # a list default is each instance's own
    with pytest.raises(ValidationError):
        config.width = 0  # assignments are checked too
    assert config.model_copy(update={"width": 5}).width == 5
    assert parse(Inner, config.model_dump()) == config  # the configure stage's JSON round trip
