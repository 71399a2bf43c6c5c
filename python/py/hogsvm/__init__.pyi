import os
from typing import Dict, Literal, Optional, Tuple, Union, overload

import numpy as np
import numpy.typing as npt

BlockNorm = Literal["L1", "L1-sqrt", "L2", "L2-Hys"]

@overload
def hog(image: npt.ArrayLike, orientations: int = ..., pixels_per_cell: Tuple[int, int] = ...,
        cells_per_block: Tuple[int, int] = ..., block_norm: BlockNorm = ...,
        visualize: Literal[False] = ..., transform_sqrt: bool = ..., feature_vector: bool = ...,
        *, channel_axis: Optional[int] = ...) -> np.ndarray: ...
@overload
def hog(image: npt.ArrayLike, orientations: int = ..., pixels_per_cell: Tuple[int, int] = ...,
        cells_per_block: Tuple[int, int] = ..., block_norm: BlockNorm = ...,
        visualize: Literal[True] = ..., transform_sqrt: bool = ..., feature_vector: bool = ...,
        *, channel_axis: Optional[int] = ...) -> Tuple[np.ndarray, np.ndarray]: ...
@overload
def hog_batch(images: npt.ArrayLike, orientations: int = ...,
              pixels_per_cell: Tuple[int, int] = ..., cells_per_block: Tuple[int, int] = ...,
              block_norm: BlockNorm = ..., visualize: Literal[False] = ...,
              transform_sqrt: bool = ..., feature_vector: bool = ..., *,
              channel_axis: Optional[int] = ..., n_jobs: Optional[int] = ...,
              dtype: Optional[npt.DTypeLike] = ..., out: Optional[np.ndarray] = ...) -> np.ndarray: ...
@overload
def hog_batch(images: npt.ArrayLike, orientations: int = ...,
              pixels_per_cell: Tuple[int, int] = ..., cells_per_block: Tuple[int, int] = ...,
              block_norm: BlockNorm = ..., visualize: Literal[True] = ...,
              transform_sqrt: bool = ..., feature_vector: bool = ..., *,
              channel_axis: Optional[int] = ..., n_jobs: Optional[int] = ...,
              dtype: Optional[npt.DTypeLike] = ...,
              out: None = ...) -> Tuple[np.ndarray, np.ndarray]: ...

class Model:
    @property
    def kind(self) -> str: ...
    @property
    def class_names(self) -> list[str]: ...
    @property
    def input_shape(self) -> Tuple[int, int]: ...
    @property
    def channels(self) -> int: ...
    def predict(self, images: npt.ArrayLike, resize: bool = ...) -> np.ndarray: ...
    def scores(self, images: npt.ArrayLike, resize: bool = ...) -> np.ndarray: ...
    def onnx_input(self, images: npt.ArrayLike) -> Dict[str, np.ndarray]: ...
    def export_onnx(
        self, path: Union[str, "os.PathLike[str]"], opset: int = 17, batch: Optional[int] = None
    ) -> None: ...
    def save(self, path: Union[str, "os.PathLike[str]"]) -> None: ...

def load(path: Union[str, "os.PathLike[str]"]) -> Model: ...
