"""Model files and checkpoints as tensors and plain data, never pickles.

A state is a tree of dicts, lists and tuples whose leaves are tensors, NumPy
arrays, bytes, numbers, strings, booleans or None. `save` writes it as one
safetensors file: every array leaf is a named tensor, and the rest of the tree is
JSON in the file's metadata. `load` reads it back with safetensors, which parses a
JSON header and raw buffers and so cannot run code, whatever the file holds.
The same tree always gives the same bytes, so a retrained or resumed model that
equals the old one leaves DVC nothing to rerun.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as save_bytes

from ganad.errors import StageError
from ganad.files import write_bytes

FORMAT = "ganad-store/1"


class StoreError(StageError, ValueError):
    """A file is not a readable ganad store (missing, truncated, a pickle, or another format)."""


def _encode(node, tensors: dict[str, torch.Tensor]):
    if isinstance(node, torch.Tensor):
        key = str(len(tensors))
        tensors[key] = node.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": key}
    if isinstance(node, np.ndarray):
        if node.dtype == object:
            raise TypeError("object arrays cannot be stored")
        key = str(len(tensors))
        tensors[key] = torch.from_numpy(np.ascontiguousarray(node).copy())
        return {"__ndarray__": key}
    if isinstance(node, (bytes, bytearray)):
        key = str(len(tensors))
        tensors[key] = (
            torch.frombuffer(bytearray(node), dtype=torch.uint8).clone() if node else torch.zeros(0, dtype=torch.uint8)
        )
        return {"__bytes__": key}
    if isinstance(node, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in node):
            return {k: _encode(v, tensors) for k, v in node.items()}
        return {"__items__": [[_encode(k, tensors), _encode(v, tensors)] for k, v in node.items()]}
    if isinstance(node, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in node]}
    if isinstance(node, list):
        return [_encode(v, tensors) for v in node]
    if isinstance(node, (np.integer, np.floating, np.bool_)):
        return node.item()
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    raise TypeError(f"cannot store a {type(node).__name__}; states hold tensors, arrays and plain data only")


def _decode(node, tensors: dict[str, torch.Tensor]):
    if isinstance(node, list):
        return [_decode(v, tensors) for v in node]
    if not isinstance(node, dict):
        return node
    if "__tensor__" in node:
        return tensors[node["__tensor__"]]
    if "__ndarray__" in node:
        return tensors[node["__ndarray__"]].numpy()
    if "__bytes__" in node:
        return tensors[node["__bytes__"]].numpy().tobytes()
    if "__tuple__" in node:
        return tuple(_decode(v, tensors) for v in node["__tuple__"])
    if "__items__" in node:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in node["__items__"]}
    return {k: _decode(v, tensors) for k, v in node.items()}


def save(path: str | Path, tree: dict) -> Path:
    """Write `tree` to `path` atomically (a crash leaves the old file or none, never half a file)."""
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _encode(tree, tensors)
    # one metadata entry: safetensors keeps metadata in a hash map, whose order is not fixed
    return write_bytes(path, save_bytes(tensors, metadata={"ganad": json.dumps({"format": FORMAT, "tree": skeleton})}))


def load(path: str | Path) -> dict:
    """Read a tree written by `save`; anything else raises StoreError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"'{path}' does not exist")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = json.loads((f.metadata() or {}).get("ganad", "{}"))
            if meta.get("format") != FORMAT:
                raise StoreError(
                    f"'{path}' is a safetensors file of another format ({meta.get('format')!r}, expected {FORMAT!r})"
                )
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (a safetensors handle)
        return _decode(meta["tree"], tensors)
    except StoreError:
        raise
    except (SafetensorError, OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise StoreError(
            f"'{path}' is not a ganad model or checkpoint file (safetensors with a JSON tree): "
            f"{exc}. It may be truncated, from an older ganad (which wrote pickles) or not ours; "
            "nothing in it was run"
        ) from exc
