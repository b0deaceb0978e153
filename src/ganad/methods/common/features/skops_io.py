"""scikit-learn detectors kept through skops: written canonically (the same bytes for the same model), loaded
trusting only the types listed here, so that a model file never runs code."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import skops.io

# skops refuses every type outside its trusted list; scikit-learn's tree nodes are the one extra type the
# Isolation Forest needs. skops warns that their node indices are not bounds-checked, so they are checked here.
TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


def canonical_skops(blob: bytes) -> bytes:
    """The same skops archive with the same bytes every time: skops names its entries and memo ids
    after memory addresses and stamps the time, so an unchanged model would look changed to DVC."""
    src = zipfile.ZipFile(io.BytesIO(blob))
    schema = json.loads(src.read("schema.json"))
    names, ids = set(src.namelist()), {}
    files: dict[str, str] = {}

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "__id__" and isinstance(value, int):
                    node[key] = ids.setdefault(value, len(ids))
                elif key == "file" and isinstance(value, str) and value in names:
                    node[key] = files.setdefault(value, f"{len(files)}{Path(value).suffix}")
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for old, new in files.items():
            dst.writestr(
                zipfile.ZipInfo(new, date_time=(1980, 1, 1, 0, 0, 0)),
                src.read(old),
                compress_type=src.getinfo(old).compress_type,
            )
        dst.writestr(
            zipfile.ZipInfo("schema.json", date_time=(1980, 1, 1, 0, 0, 0)),
            json.dumps(schema, indent=2),
            compress_type=src.getinfo("schema.json").compress_type,
        )
    return out.getvalue()


def load_skops(blob: bytes):
    """A model dict written by `FeatureDetector.state_dict`; refuses unknown types and malformed trees."""
    untrusted = sorted(set(skops.io.get_untrusted_types(data=blob)) - set(TRUSTED_TYPES))
    if untrusted:
        raise ValueError(f"the model holds types ganad does not load: {untrusted}")
    model = skops.io.loads(blob, trusted=TRUSTED_TYPES)
    for estimator in getattr(model.get("detector"), "estimators_", []) or []:
        _check_tree(estimator.tree_, estimator.n_features_in_)
    return model


def _check_tree(tree, n_features: int) -> None:
    n = tree.node_count
    for name in ("children_left", "children_right"):
        child = getattr(tree, name)
        if len(child) != n or child.min() < -1 or child.max() >= n:
            raise ValueError(f"a stored tree has {name} outside 0..{n - 1}")
    if tree.feature.max() >= n_features or tree.feature.min() < -2:
        raise ValueError(f"a stored tree splits on features outside 0..{n_features - 1}")
