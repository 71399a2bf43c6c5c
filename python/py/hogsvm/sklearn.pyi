from typing import Optional, Tuple

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin

class HogTransformer(TransformerMixin, BaseEstimator):
    orientations: int
    pixels_per_cell: Tuple[int, int]
    cells_per_block: Tuple[int, int]
    block_norm: str
    transform_sqrt: bool
    image_shape: Optional[Tuple[int, int]]
    n_jobs: Optional[int]
    n_features_out_: int
    def __init__(self, orientations: int = ..., pixels_per_cell: Tuple[int, int] = ...,
                 cells_per_block: Tuple[int, int] = ..., block_norm: str = ...,
                 transform_sqrt: bool = ..., image_shape: Optional[Tuple[int, int]] = ...,
                 n_jobs: Optional[int] = ...) -> None: ...
    def fit(self, X: npt.ArrayLike, y: object = ...) -> "HogTransformer": ...
    def transform(self, X: npt.ArrayLike) -> np.ndarray: ...

class HogSvmClassifier(ClassifierMixin, BaseEstimator):
    classes_: np.ndarray
    def __init__(self, cell: Optional[int] = ..., block: Optional[int] = ...,
                 orientations: Optional[int] = ..., block_norm: Optional[str] = ...,
                 sqrt: Optional[bool] = ..., extra_cell: Optional[object] = ...,
                 resize: Optional[str] = ..., feature_map: Optional[str] = ...,
                 normalize: Optional[str] = ..., standardize: Optional[bool] = ...,
                 pca: Optional[object] = ..., whiten: Optional[bool] = ...,
                 pca_iterations: Optional[int] = ...,
                 rff: Optional[int] = ..., nystroem: Optional[int] = ...,
                 kmeans: Optional[int] = ..., gamma: Optional[object] = ...,
                 flip: Optional[bool] = ..., c: Optional[float] = ..., loss: Optional[str] = ...,
                 tol: Optional[float] = ..., max_iter: Optional[int] = ...,
                 class_weight: Optional[object] = ..., seed: int = ...) -> None: ...
    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike) -> "HogSvmClassifier": ...
    def predict(self, X: npt.ArrayLike) -> np.ndarray: ...
    def decision_function(self, X: npt.ArrayLike) -> np.ndarray: ...
    def save(self, path: object) -> None: ...
