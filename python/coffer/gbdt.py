"""Gradient-boosted trees on a party's own tables, with models in XGBoost's JSON format.

Training and prediction run in Rust (``coffer-gbdt``, the trainer the enclave worker uses);
encrypted Parquet files are decrypted in memory with the party's keyring. A model saved here
loads in ``xgboost.Booster(model_file=...)`` and predicts the same::

    model = coffer.gbdt.train({"objective": "binary:logistic", "max_depth": 4}, df, "label",
                              num_boost_round=50)
    model.save_model("model.json")
    p = model.predict(df_test)          # numpy.ndarray
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence, Union

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import _coffer

if TYPE_CHECKING:  # pragma: no cover
    import pandas

    from . import Party

__all__ = ["Booster", "train"]

Data = Union[pa.Table, "pandas.DataFrame", str, "os.PathLike[str]"]


def _source(data: Data) -> bytes | Path:
    if isinstance(data, (str, os.PathLike)):
        return Path(data)
    if isinstance(data, pa.Table):
        table = data
    elif hasattr(data, "to_parquet") and hasattr(data, "columns"):
        table = pa.Table.from_pandas(data, preserve_index=False)
    else:
        from .errors import UsageError

        raise UsageError(
            "data must be a pandas DataFrame, a pyarrow Table or a path, "
            f"not {type(data).__name__}",
            "data",
        )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def _home(party: "Party | None") -> Path | None:
    return None if party is None else party.home


class Booster:
    """A gradient-boosted tree model (XGBoost JSON compatible).

    ``Booster()`` is empty until ``load_model``; ``Booster(model_file=path)`` loads one, as
    ``xgboost.Booster`` does.
    """

    def __init__(self, model_file: str | os.PathLike[str] | None = None) -> None:
        self._native: _coffer.NativeBooster | None = None
        if model_file is not None:
            self.load_model(model_file)

    @classmethod
    def _wrap(cls, native: _coffer.NativeBooster) -> "Booster":
        b = cls()
        b._native = native
        return b

    def _model(self) -> _coffer.NativeBooster:
        if self._native is None:
            from .errors import UsageError

            raise UsageError("the Booster is empty: load_model(path) first", "model")
        return self._native

    def load_model(self, path: str | os.PathLike[str]) -> None:
        """Load an XGBoost JSON model (saved here or by ``xgboost.Booster.save_model``).

        Raises ``Refused`` (``model``) for a malformed or unsupported model file.
        """
        self._native = _coffer.NativeBooster.from_json(Path(path).read_text())

    def save_model(self, path: str | os.PathLike[str]) -> None:
        """Write the model as XGBoost JSON (whole or not at all)."""
        self._model().save(Path(path))

    def save_raw(self) -> bytes:
        """The model as XGBoost JSON bytes."""
        return self._model().to_json().encode()

    def predict(self, data: Data, party: "Party | None" = None) -> np.ndarray[Any, Any]:
        """Predictions for every row of ``data``: shape ``(rows,)``, or ``(rows, classes)``
        for multi-class models. ``data`` is a DataFrame, a Table or a path (encrypted
        Parquet is decrypted with ``party``'s keyring). Columns are matched by the model's
        feature names."""
        model = self._model()
        raw = model.predict(_source(data), _home(party))
        preds = np.frombuffer(raw, dtype="<f4")
        k = model.n_groups
        return preds.reshape(-1, k) if k > 1 else preds

    @property
    def feature_names(self) -> list[str]:
        """The feature columns, in order."""
        return self._model().feature_names

    @property
    def best_iteration(self) -> int | None:
        """The round early stopping kept, if it stopped early."""
        return self._model().best_iteration

    def num_boosted_rounds(self) -> int:
        """Boosting rounds in the model."""
        return self._model().num_boosted_rounds


def train(
    params: Mapping[str, Any],
    data: Data,
    label: str,
    valid: Data | None = None,
    num_boost_round: int | None = None,
    early_stopping_rounds: int | None = None,
    party: "Party | None" = None,
    callback: Callable[[int, Sequence[tuple[str, float]]], None] | None = None,
) -> Booster:
    """Train a model on ``data``: column ``label`` is the label, every other column a
    feature.

    ``params`` are XGBoost's (``objective``, ``eta``, ``max_depth``, ``eval_metric``,
    ``lambda``, ``subsample``, …). ``valid`` is evaluated every round and drives early
    stopping. ``data`` and ``valid`` are DataFrames, Tables or paths (CSV or Parquet;
    encrypted Parquet is decrypted with ``party``'s keyring). ``callback(round, scores)``
    sees each round's scores, e.g. ``[("valid-logloss", 0.41)]``.

    Raises ``UsageError`` for an unknown parameter or a missing column.
    """
    merged = dict(params)
    if num_boost_round is not None:
        merged["num_boost_round"] = num_boost_round
    if early_stopping_rounds is not None:
        merged["early_stopping_rounds"] = early_stopping_rounds
    native = _coffer.NativeBooster.train(
        json.dumps(merged),
        _source(data),
        label,
        None if valid is None else _source(valid),
        _home(party),
        callback,
    )
    return Booster._wrap(native)
