"""Ranking folders of images: train on a folder of normal images, rank other folders by anomaly.

ADGAN Section 4.4 trains a generator on LSUN bedrooms and ranks each scene's 300
validation images, showing the most and least anomalous (Figs. 4-6), and scores the
bedrooms against the other scenes pooled (AUROC 0.641). This module does the same for
any folders, with any method of the registry, as the `rank_train` and `rank_score`
stages run it (the `rank` section of params):

- `train`: read `rank.normal` (flat or classed; labels ignored), carve a seeded
  normal validation slice for the method's model selection, fit, save the model.
  The checkpoint lives outside every DVC output, so an interrupted run resumes.
- `rank_collection`: read one collection with the model's channel count, score it,
  and sort it (score descending, then path ascending, so ties keep one order on every
  machine; rank 1 = most anomalous). A classed collection (subfolders are labels)
  whose labels hold both `rank.normal_label` and another label also gets the AUROC of
  normal against the rest.
- `publish`: write scores.csv, the grid and metrics.json of one collection, each to a
  temporary file first and renamed only when all three are written, so a failure
  leaves the previous outputs of that collection (and every other's) as they were.

Everything that can be checked is checked before any work: the params (`rank_params`)
and, before training, every collection's folder and size (`check_collections`), so a
bad collection stops in seconds rather than after hours of training.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ganad.config.rank import RankParams
from ganad.data.folders import FolderImages, read_collection
from ganad.data.images import ImageSet, to_nchw, to_unit_range
from ganad.engine.code import code_version
from ganad.engine.conformal import calibration_sample, flagged, p_values, threshold
from ganad.engine.jobs import load_trained, train_model
from ganad.errors import DataError, ParamsError
from ganad.files import read_json, write_json
from ganad.methods import method_class
from ganad.runtime import layout
from ganad.runtime.device import resolve_device, seed_everything

VAL_STREAM = 15  # the normal folder's validation slice draws from its own stream of the params seed


def rank_params(params) -> RankParams:
    """The `rank` section of params, checked with the rest by `load_params` (`ganad.config.rank`); the rank
    stages need it."""
    if params.rank is None:
        raise ParamsError(
            "rank is missing: the rank stages need a `rank` section in params.yaml with rank.normal "
            "(a folder of normal training images) and rank.collections (names -> folders to rank)"
        )
    return params.rank


def collection_folder(rank: RankParams, name: str) -> Path:
    if name not in rank.collections:
        raise ParamsError(
            f"collection {name!r} is not in rank.collections {sorted(rank.collections)}; "
            "add it there or pick one of those"
        )
    return Path(rank.collections[name])


def _read(folder: Path, channels, key: str) -> FolderImages:
    """A folder as `read_collection` reads it; its errors name the params key that points at the folder."""
    try:
        return read_collection(folder, channels)
    except DataError as exc:
        raise DataError(f"{key}: {exc}") from exc


def _require_grid(images: FolderImages, rank: RankParams, name: str) -> None:
    needed, found = 2 * rank.grid_count, len(images.paths)
    if found < needed:
        lower = f" or lower rank.grid_count to at most {found // 2}" if found >= 2 else ""
        raise DataError(
            f"rank.collections.{name}: '{rank.collections[name]}' holds {found} decodable image(s), fewer than "
            f"the {needed} that the grid shows (2 rows of rank.grid_count = {rank.grid_count}); add images to the "
            f"folder{lower}"
        )


def check_collections(rank: RankParams) -> None:
    """Every collection exists, is readable and fills the grid; run before training. Undecodable files are
    reported when the collection is scored, not here."""
    for name, folder in rank.collections.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            images = _read(Path(folder), rank.channels, f"rank.collections.{name}")
        _require_grid(images, rank, name)


# --- training -----------------------------------------------------------------------------------


def _as_set(images: FolderImages, rows: np.ndarray) -> ImageSet:
    labels = images.labels[rows] if images.labels is not None else np.zeros(len(rows), dtype=np.int64)
    return ImageSet(to_unit_range(to_nchw(images.x[rows])), labels, rows)


def split_normal(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows) of the normal folder: a seeded `val_fraction` slice for validation."""
    order = np.random.default_rng([seed, VAL_STREAM]).permutation(n)
    n_val = int(round(val_fraction * n))
    if n - n_val < 1:
        raise DataError(
            f"rank.normal holds {n} image(s): none would be left for training after the "
            f"validation slice (rank.val_fraction = {val_fraction}); add images or lower it"
        )
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def train(params, rank: RankParams) -> dict:
    """Fit `rank.method` on the normal folder and save it to `layout.ranking_model`; resumes from a
    checkpoint of the same method, settings, images, seed and code."""
    device = resolve_device(params.device)
    normal = _read(Path(rank.normal), rank.channels, "rank.normal")
    channels = 1 if normal.x.ndim == 3 else 3
    config = params.method_config(rank.method, channels)
    method_class(rank.method).prepare(config)  # a method that cannot run here stops before any training
    train_rows, val_rows = split_normal(len(normal.paths), rank.val_fraction, params.seed)
    train_set, val_set = _as_set(normal, train_rows), _as_set(normal, val_rows)
    # the images themselves, not their paths, identify the data: replaced files must not resume an old run;
    # and the method's code and this module's, as the main pipeline's checkpoints do
    code = code_version(rank.method, __name__)
    fingerprint = params.fingerprint(
        "ranking",
        rank.method,
        config.model_dump(),
        channels,
        params.seed,
        _digest(normal.x[train_rows]),
        _digest(normal.x[val_rows]),
        code,
    )
    method, _ = train_model(
        rank.method,
        config,
        channels,
        device,
        train_set,
        val_set,
        seed=params.seed,
        fingerprint=fingerprint,
        checkpoint=layout.ranking_checkpoint(rank.method),
        log_dir=layout.ranking_log(rank.method),
        out=layout.ranking_model(rank.method),
    )
    # the p-values' calibration: the model's scores of (a seeded sample of) the held-out normal images
    pick = calibration_sample(len(val_rows), params.decision.calibration_max, params.seed)
    seed_everything(params.seed)  # methods that sample while scoring (VAE) repeat
    calibration = method.score(_as_set(normal, val_rows[pick])) if len(pick) else np.zeros(0)
    if not np.all(np.isfinite(calibration)):
        raise FloatingPointError(
            f"rank.normal: {rank.method} gave NaN or infinite scores to validation images; the model has likely "
            f"diverged: retrain it with a lower learning rate (methods.{rank.method})"
        )
    write_json(
        layout.ranking_calibration(rank.method),
        {"method": rank.method, "images": len(calibration), "scores": [float(v) for v in calibration]},
    )
    return {
        "method": rank.method,
        "channels": channels,
        "train": len(train_set),
        "val": len(val_set),
        "calibration": len(calibration),
        **method.selected(),
    }


def load_calibration(rank: RankParams) -> np.ndarray:
    """The ranking model's validation scores (`train`), for the collections' p-values."""
    path = layout.ranking_calibration(rank.method)
    rebuild = "dvc repro rank_train (or `python stages/rank_train.py`)"
    value = read_json(path, rebuild)
    scores = value.get("scores") if isinstance(value, dict) else None
    if not isinstance(scores, list) or not all(isinstance(v, (int, float)) for v in scores):
        raise DataError(f"'{path}' holds no list of validation scores under 'scores'; rebuild it with `{rebuild}`")
    return np.asarray(scores, dtype=np.float64)


def load_model(params, rank: RankParams):
    return load_trained(
        rank.method,
        layout.ranking_model(rank.method),
        params.device,
        "Train it with `dvc repro rank_train` (or `python stages/rank_train.py`)",
    )


# --- ranking a collection -----------------------------------------------------------------------


@dataclass
class Ranking:
    """One ranked collection: the table as scores.csv holds it, its images in table order, its metrics."""

    name: str
    table: pd.DataFrame  # path, score, rank (, label)
    x: np.ndarray  # [-1, 1] (N, C, 32, 32), row i is table row i
    metrics: dict


def rank_collection(params, rank: RankParams, name: str, model, calibration: np.ndarray | None = None) -> Ranking:
    """Score one collection with `model` and sort it: score descending, then path ascending. With the model's
    `calibration` scores (`load_calibration`), each image gets its conformal p-value and is flagged at
    decision.alpha (`ganad.engine.conformal`)."""
    folder = collection_folder(rank, name)
    images = _read(folder, model.channels, f"rank.collections.{name}")
    _require_grid(images, rank, name)
    image_set = _as_set(images, np.arange(len(images.paths)))
    seed_everything(params.seed)  # methods that sample while scoring (VAE) repeat
    scores = np.asarray(model.score(image_set), dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(scores))
    if len(bad):
        raise FloatingPointError(
            f"rank.collections.{name}: {rank.method} gave {len(bad)} NaN or infinite score(s), e.g. for "
            f"'{images.paths[bad[0]]}'; the model has likely diverged: retrain it with a lower learning rate "
            f"(methods.{rank.method}) and check those images"
        )
    table = pd.DataFrame({"path": images.paths, "score": scores})
    alpha = params.decision.alpha
    if calibration is not None:
        table["p_value"] = p_values(calibration, scores)
        table["flagged"] = flagged(table["p_value"].to_numpy(), alpha)
    if images.labels is not None:
        table["label"] = [images.classes[k] for k in images.labels]
    order = np.lexsort((np.asarray(images.paths, dtype=str), -scores))  # the last key sorts first
    table = table.iloc[order].reset_index(drop=True)
    table.insert(2, "rank", np.arange(1, len(table) + 1))
    metrics = collection_metrics(table, rank.normal_label)
    if calibration is not None:
        limit = threshold(calibration, alpha)
        metrics.update(
            alpha=alpha,
            calibration_images=len(calibration),
            threshold=limit if np.isfinite(limit) else None,
            flagged=int(table["flagged"].sum()),
        )
        if not np.isfinite(limit) and limit > 0:
            metrics["flag_note"] = (
                f"nothing can be flagged at alpha {alpha:g} with {len(calibration)} validation images: "
                f"it needs at least {int(np.ceil(1 / alpha - 1))} (raise rank.val_fraction or add normal images)"
            )
    return Ranking(name, table, image_set.x[order].numpy(), metrics)


def collection_metrics(table: pd.DataFrame, normal_label: str | None) -> dict:
    """Image count; for a labelled collection, the count per label and, when it holds normal images and
    others, the AUROC of normal (low score) against every other label pooled and against each one."""
    metrics = {"images": len(table)}
    if "label" not in table:
        return metrics
    metrics["labels"] = {str(k): int(v) for k, v in table["label"].value_counts().sort_index().items()}
    if normal_label is None:
        metrics["note"] = "no AUROC: rank.normal_label is null"
        return metrics
    anomalous = (table["label"] != normal_label).to_numpy()
    if anomalous.all() or not anomalous.any():
        metrics["note"] = (
            f"no AUROC: the collection holds {'no' if anomalous.all() else 'only'} images "
            f"labelled {normal_label!r} (rank.normal_label)"
        )
        return metrics
    from sklearn.metrics import roc_auc_score

    scores = table["score"].to_numpy()
    metrics.update(
        normal=int((~anomalous).sum()), anomalous=int(anomalous.sum()), auroc=float(roc_auc_score(anomalous, scores))
    )
    normal = ~anomalous
    metrics["auroc_by_label"] = {
        str(label): float(
            roc_auc_score(
                np.r_[np.zeros(normal.sum()), np.ones(len(group))], np.r_[scores[normal], group["score"].to_numpy()]
            )
        )
        for label, group in table[anomalous].groupby("label", sort=True)
    }
    return metrics


def extremes(ranking: Ranking, count: int) -> tuple[list[tuple], list[tuple]]:
    """The `count` most anomalous (rank 1 first) and least anomalous (rank N first) as (image, caption)."""

    def cell(i: int) -> tuple:
        row = ranking.table.iloc[i]
        label = f" ({row['label']})" if "label" in ranking.table else ""
        p = f" p={row['p_value']:.2g}" if "p_value" in ranking.table else ""
        return ranking.x[i], f"#{row['rank']}{label}\n{row['score']:.4g}{p}", bool(row.get("flagged", False))

    n = len(ranking.table)
    return [cell(i) for i in range(count)], [cell(i) for i in range(n - 1, n - 1 - count, -1)]


def publish(ranking: Ranking, draw_grid) -> list[Path]:
    """scores.csv, the grid (drawn by `draw_grid(path)`) and metrics.json of one collection, all or none:
    each goes to a temporary file, and the three are renamed into place only once all are written."""
    targets = [
        layout.ranking_scores(ranking.name),
        layout.ranking_grid(ranking.name),
        layout.ranking_metrics(ranking.name),
    ]
    temps = [t.with_name(f".{t.name}.tmp") for t in targets]
    targets[0].parent.mkdir(parents=True, exist_ok=True)
    try:
        ranking.table.to_csv(temps[0], index=False)
        draw_grid(temps[1])
        temps[2].write_text(json.dumps(ranking.metrics, indent=2) + "\n")
    except BaseException:
        for temp in temps:
            temp.unlink(missing_ok=True)
        raise
    for temp, target in zip(temps, targets):
        os.replace(temp, target)
    return targets
