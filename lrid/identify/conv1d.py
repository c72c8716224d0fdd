"""Nayebi et al.'s Conv1D classifier: one temporal convolution over the trajectory, then a linear readout.

The feature row (see :class:`lrid.identify.features.FeatureSet`) is folded back into a [time, channel]
array: each observable is a channel, and the static columns (the depth one-hot) are repeated at every time
point as extra channels, as in the paper. NaN statistics are replaced by the training median of their
channel and every channel is standardised with training statistics, so the network sees comparable scales.

The model: Conv1D (``filters``, ``kernel_size``, ``strides``, ReLU, 'valid' padding) -> global average or
max pooling over time, or flattening -> Dense softmax; L2 ``weight_decay`` on both kernels; Adam;
full training for ``epochs`` epochs. Keras is imported on first fit, so building the estimator is cheap.

Determinism: Keras' seed is set from ``random_state`` and TensorFlow's deterministic ops are enabled before
every fit, so the same data and ``random_state`` give the same model. ``lrid classify`` saves a fitted
estimator as a ``.keras`` network plus a skops file for the rest (:mod:`lrid.identify.model_files`); it also
pickles, with the network in ``.keras`` format inside the pickle (which is how the ``.joblib`` models of older
lrid versions hold it).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import unique_labels
from sklearn.utils.validation import check_is_fitted

from lrid.errors import LridError
from lrid.lazy_import import keras, tf


class Conv1DClassifier(ClassifierMixin, BaseEstimator):
    """A one-layer temporal convolution + linear readout over trajectory features (scikit-learn API).

    Args:
        n_points: the trajectory length T; the first ``n_features - n_static`` columns are channel-major
            trajectories of T points each.
        n_static: trailing columns that are not trajectories (repeated over time as channels).
        filters, kernel_size, strides: the convolution; ``kernel_size`` is capped at ``n_points``.
        pooling: ``avg`` or ``max`` (global, over time) or ``flatten``.
        learning_rate, weight_decay, epochs, batch_size: Adam's training.
        random_state: seeds the initialisation and the batch order.
    """

    def __init__(
        self,
        n_points: int = 21,
        n_static: int = 3,
        filters: int = 20,
        kernel_size: int = 6,
        strides: int = 1,
        pooling: str = "avg",
        learning_rate: float = 3e-3,
        weight_decay: float = 1e-4,
        epochs: int = 150,
        batch_size: int = 64,
        random_state: int = 0,
    ) -> None:
        self.n_points = n_points
        self.n_static = n_static
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.pooling = pooling
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.random_state = random_state

    def _fold(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        n_trajectory = X.shape[1] - self.n_static
        if n_trajectory <= 0 or n_trajectory % self.n_points:
            raise LridError(
                f"conv1d got {X.shape[1]} features, which is not channels x {self.n_points} points "
                f"+ {self.n_static} static columns; build the features with the same time selection"
            )
        series = X[:, :n_trajectory].reshape(len(X), -1, self.n_points).transpose(0, 2, 1)
        static = np.repeat(X[:, None, n_trajectory:], self.n_points, axis=1)
        return np.concatenate([series, static], axis=2)

    def _standardise(self, folded: np.ndarray) -> np.ndarray:
        filled = np.where(np.isnan(folded), self.channel_median_[None, None, :], folded)
        return ((filled - self.channel_mean_) / self.channel_scale_).astype(np.float32)

    def fit(self, X: np.ndarray, y: np.ndarray) -> Conv1DClassifier:
        """Fit on features ``X`` [n_samples, n_features] and integer or string labels ``y``."""
        if self.pooling not in ("avg", "max", "flatten"):
            raise LridError(f"conv1d pooling must be avg, max or flatten, not {self.pooling!r}")
        folded = self._fold(X)
        self.classes_ = unique_labels(y)
        labels = np.searchsorted(self.classes_, np.asarray(y))
        with warnings.catch_warnings():  # an all-NaN channel gets median 0, without a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(folded.reshape(-1, folded.shape[2]), axis=0)
        self.channel_median_ = np.nan_to_num(median)
        filled = np.where(np.isnan(folded), self.channel_median_[None, None, :], folded)
        flat = filled.reshape(-1, folded.shape[2])
        self.channel_mean_ = flat.mean(axis=0)
        scale = flat.std(axis=0)
        self.channel_scale_ = np.where(scale > 0, scale, 1.0)
        inputs = self._standardise(folded)

        tf.config.experimental.enable_op_determinism()
        keras.utils.set_random_seed(int(self.random_state))
        regulariser = keras.regularizers.L2(self.weight_decay) if self.weight_decay else None
        layers = [
            keras.Input(shape=inputs.shape[1:]),
            keras.layers.Conv1D(
                self.filters,
                min(self.kernel_size, self.n_points),
                strides=self.strides,
                activation="relu",
                padding="valid",
                kernel_regularizer=regulariser,
            ),
            {
                "avg": keras.layers.GlobalAveragePooling1D,
                "max": keras.layers.GlobalMaxPooling1D,
                "flatten": keras.layers.Flatten,
            }[self.pooling](),
            keras.layers.Dense(len(self.classes_), activation="softmax", kernel_regularizer=regulariser),
        ]
        model = keras.Sequential(layers)
        model.compile(optimizer=keras.optimizers.Adam(self.learning_rate), loss="sparse_categorical_crossentropy")
        model.fit(inputs, labels, epochs=self.epochs, batch_size=self.batch_size, shuffle=True, verbose=0)
        self.model_ = model
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities [n_samples, n_classes], columns in the order of ``classes_``."""
        check_is_fitted(self, "model_")
        inputs = self._standardise(self._fold(X))
        return np.asarray(self.model_(inputs, training=False), dtype=np.float64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The most probable class of each sample."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        model = state.pop("model_", None)
        if model is not None:
            with tempfile.TemporaryDirectory() as directory:
                path = os.path.join(directory, "model.keras")
                model.save(path)
                with open(path, "rb") as handle:
                    state["model_keras_bytes_"] = handle.read()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        data = state.pop("model_keras_bytes_", None)
        self.__dict__.update(state)
        if data is not None:
            with tempfile.TemporaryDirectory() as directory:
                path = os.path.join(directory, "model.keras")
                with open(path, "wb") as handle:
                    handle.write(data)
                self.model_ = keras.models.load_model(path, safe_mode=True)
