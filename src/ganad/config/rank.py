"""The `rank` section of params: ranking folders of images by anomaly (ganad.studies.ranking runs it)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from ganad.data.folders import CHANNEL_CHOICES
from ganad.methods import REGISTRY
from ganad.schema import Fraction, Int, Invalid, NonEmptyText, NotBool, Section

NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]+")  # a collection's name is a folder and a DVC stage name


class RankParams(Section):
    normal: NonEmptyText = Field(description="a folder of normal training images")
    collections: dict[str, NonEmptyText] = Field(
        min_length=1, description="a non-empty mapping of names to folders of images to rank"
    )
    # a YAML number (`normal_label: 1`) means the subfolder of that name
    normal_label: NonEmptyText | Int | None = Field(
        None, description="null or the name of the subfolder that holds normal images"
    )
    method: Literal[tuple(sorted(REGISTRY))] = "adgan"
    val_fraction: Fraction = 0.1
    grid_count: Int = Field(8, gt=0)
    channels: Annotated[Literal[CHANNEL_CHOICES], NotBool] = "auto"

    @field_validator("collections")
    @classmethod
    def _names(cls, collections: dict) -> dict:
        for name in collections:
            if not NAME_PATTERN.fullmatch(name):
                raise Invalid(
                    "",
                    f": the name {name!r} is invalid: use letters, digits, '_' and '-' "
                    "only, since it names the folder reports/ranking/<name> and the "
                    "stage rank_score@<name>",
                )
        return collections

    @field_validator("normal_label")
    @classmethod
    def _label_text(cls, label):
        return None if label is None else str(label)
