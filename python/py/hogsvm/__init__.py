"""hogsvm from Python: scikit-image's HOG, computed in Rust.

``hogsvm.hog`` takes scikit-image 0.26's ``skimage.feature.hog`` arguments and returns the same
numbers (within 1e-5), shapes and dtypes; ``hogsvm.hog_batch`` computes a stack of images in
parallel with the GIL released. One difference: NaN or infinite pixels are a ``ValueError`` here
(scikit-image returns NaN features).

``hogsvm.sklearn.HogTransformer`` (needs scikit-learn) puts it in scikit-learn pipelines.
"""
import numpy as np

from . import _hogsvm

__all__ = ["hog", "hog_batch", "load", "Model"]

_NORMS = ("L1", "L1-sqrt", "L2", "L2-Hys")


def _pair(name, v):
    try:
        a, b = (int(x) for x in v)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair of integers, got {v!r}") from None
    return a, b


def _as_supported(image):
    """scikit-image's dtype rule: float32 (and float16) stay float32, uint8 is used as it is
    (scikit-image's float64 of it gives the same numbers), every other type becomes float64.
    Returns the array and the output dtype."""
    a = np.asarray(image)
    if not a.dtype.isnative:
        # A big-endian float32 is float32: native byte order first, then the rule.
        a = a.astype(a.dtype.newbyteorder("="))
    if a.dtype == np.uint8:
        return a, np.float64
    if a.dtype in (np.float32, np.float16):
        return a.astype(np.float32, copy=False), np.float32
    if a.dtype.kind in "biuf":
        return a.astype(np.float64, copy=False), np.float64
    raise ValueError(f"unsupported image dtype {a.dtype}")


def _check_finite(a):
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ValueError("image holds NaN or infinite values (hogsvm refuses them; "
                         "scikit-image would return NaN features)")


_ARGS = {}


def _hog_args(orientations, pixels_per_cell, cells_per_block, block_norm, transform_sqrt):
    """The checked parameter tuple the extension takes, remembered for hashable arguments (a
    loop over images checks them once)."""
    key = (orientations, pixels_per_cell, cells_per_block, block_norm, transform_sqrt)
    try:
        return _ARGS[key]
    except (KeyError, TypeError):  # TypeError: a list for a pair, not hashable
        pass
    _check_args(orientations, block_norm)
    args = (int(orientations), _pair("pixels_per_cell", pixels_per_cell),
            _pair("cells_per_block", cells_per_block), block_norm, bool(transform_sqrt))
    try:
        if len(_ARGS) >= 64:
            _ARGS.clear()
        _ARGS[key] = args
    except TypeError:
        pass
    return args


def _check_args(orientations, block_norm):
    if block_norm not in _NORMS:
        raise ValueError(f"block_norm must be one of {', '.join(_NORMS)}, got {block_norm!r}")
    if int(orientations) != orientations or orientations < 1:
        raise ValueError(f"orientations must be a positive integer, got {orientations!r}")


def hog(image, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(3, 3),
        block_norm="L2-Hys", visualize=False, transform_sqrt=False, feature_vector=True, *,
        channel_axis=None):
    """Histogram of Oriented Gradients, as ``skimage.feature.hog`` computes it.

    Same arguments, defaults, output shapes and dtypes (float32 for float32 input, float64
    otherwise); ``visualize=True`` returns ``(features, hog_image)``.
    """
    args = _hog_args(orientations, pixels_per_cell, cells_per_block, block_norm, transform_sqrt)
    _, ppc, cpb, _, _ = args
    if (type(image) is np.ndarray and image.dtype == np.uint8 and image.ndim == 2
            and channel_axis is None):
        # The common call (a gray uint8 image) without the general checks below, which it
        # passes: nothing to convert, nothing non-finite.
        a, out_dtype = image[:, :, None], np.float64
    else:
        a, out_dtype = _as_supported(np.atleast_2d(image))
        if channel_axis is not None:
            a = np.moveaxis(a, channel_axis, -1)
        if a.ndim != (3 if channel_axis is not None else 2):
            raise ValueError("Only images with two spatial dimensions are supported. If using "
                             "with color/multichannel images, specify `channel_axis`.")
        if a.ndim == 2:
            a = a[:, :, None]
        _check_finite(a)
    a = np.ascontiguousarray(a)
    feats, vis = _hogsvm.hog(a, args, bool(visualize), out_dtype == np.float64)
    if not feature_vector:
        n_cells = (a.shape[0] // ppc[0], a.shape[1] // ppc[1])
        feats = feats.reshape(n_cells[0] - cpb[0] + 1, n_cells[1] - cpb[1] + 1, cpb[0], cpb[1],
                              int(orientations))
    if visualize:
        return feats, vis
    return feats


def hog_batch(images, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(3, 3),
              block_norm="L2-Hys", visualize=False, transform_sqrt=False, feature_vector=True,
              *, channel_axis=None, n_jobs=None, dtype=np.float32, out=None):
    """HOG of every image of ``images``, as ``hog`` gives it for each, with every keyword ``hog``
    takes: an array (B, D) (``feature_vector=False``: (B, blocks_row, blocks_col, cells_row,
    cells_col, orientations)); ``visualize=True`` returns ``(features, hog_images)``, the
    pictures stacked (B, H, W). ``images`` is (B, H, W) gray or (B, H, W, C) colour, channels
    last; ``channel_axis`` says where each image's channel axis is, as ``hog``'s does (an axis of
    one image: -1 or 2 is channels last; None is channels last for 4-D input, gray for 3-D).
    Computed in parallel on ``n_jobs`` threads (all cores when None) with the GIL released; the
    result is the same for any ``n_jobs``.

    ``dtype`` is float32 by default, the precision hogsvm computes in (the values are ``hog``'s
    exactly; half the memory of float64 for a large batch); ``dtype=None`` gives ``hog``'s dtype
    rule (float64 for anything but float32 input).

    ``out``: a C-contiguous, writeable float32 array of shape (B, D) to write the rows into (and
    return), instead of a new array: to reuse one buffer across calls, or to fill a larger array
    (a slice of ``np.lib.format.open_memmap``) chunk by chunk."""
    args = _hog_args(orientations, pixels_per_cell, cells_per_block, block_norm, transform_sqrt)
    _, ppc, cpb, _, _ = args
    a, out_dtype = _as_supported(images)
    if channel_axis is not None:
        if a.ndim != 4:
            raise ValueError(f"channel_axis needs images of shape (B, H, W, C) or (B, C, H, W), "
                             f"got {a.shape}")
        axis = channel_axis + 3 if channel_axis < 0 else channel_axis
        if axis not in (0, 1, 2):
            raise ValueError(f"channel_axis {channel_axis} is not an axis of a 3-D image")
        a = np.moveaxis(a, axis + 1, -1)
    if a.ndim == 3:
        a = a[..., None]
    if a.ndim != 4:
        raise ValueError(f"images must have shape (B, H, W) or (B, H, W, C), got {a.shape}")
    _check_finite(a)
    a = np.ascontiguousarray(a)
    if n_jobs is not None and int(n_jobs) < 1:
        raise ValueError(f"n_jobs must be at least 1, got {n_jobs!r}")
    jobs = None if n_jobs is None else int(n_jobs)
    if dtype is not None and np.dtype(dtype).kind != "f":
        # HOG values are in [0, 1]: an integer type would truncate every one to 0.
        raise ValueError(f"dtype must be a floating-point type (or None), got {np.dtype(dtype)}")
    if out is not None:
        if visualize or not feature_vector:
            raise ValueError("out takes the (B, D) features only (visualize=False, "
                             "feature_vector=True)")
        _check_out(out, a.shape[0], dtype)
        _hogsvm.hog_batch(a, args, jobs, out)
        return out
    res = _hogsvm.hog_batch(a, args, jobs).astype(out_dtype if dtype is None else dtype, copy=False)
    if not feature_vector:
        n_cells = (a.shape[1] // ppc[0], a.shape[2] // ppc[1])
        res = res.reshape(a.shape[0], n_cells[0] - cpb[0] + 1, n_cells[1] - cpb[1] + 1,
                          cpb[0], cpb[1], int(orientations))
    if visualize:
        pictures = np.stack([_hogsvm.hog(im, args, True, True)[1] for im in a])
        return res, pictures
    return res


def _check_out(out, n, dtype):
    """``out`` of ``hog_batch``: float32, 2-D with one row per image, C-contiguous, writeable
    (the feature length is checked by the core, which knows it)."""
    if not isinstance(out, np.ndarray):
        raise ValueError(f"out must be a NumPy array, got {type(out).__name__}")
    if out.dtype != np.float32 or (dtype is not None and np.dtype(dtype) != np.float32):
        raise ValueError(f"out must be float32 (hogsvm's precision), got out {out.dtype}"
                         f" with dtype={dtype!r}")
    if out.ndim != 2 or out.shape[0] != n:
        raise ValueError(f"out must have shape ({n}, features), got {out.shape}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be C-contiguous and writeable")


def _uint8_images(images):
    """uint8 images as the extension takes them: (n, H, W) gray or (n, H, W, 3) RGB (a single
    (H, W) image is one gray image; (n, H, W, 1) is gray)."""
    a = np.asarray(images)
    if a.dtype != np.uint8:
        raise ValueError(f"model inputs are uint8 images (as hogsvm reads image files), got {a.dtype}")
    if a.ndim == 2:
        a = a[None]
    if a.ndim == 4 and a.shape[3] == 1:
        a = a[..., 0]
    if not (a.ndim == 3 or (a.ndim == 4 and a.shape[3] == 3)):
        raise ValueError(f"images must have shape (n, H, W), (n, H, W, 3) or (H, W), got {a.shape}")
    return np.ascontiguousarray(a)


class Model:
    """A trained model of either kind (what ``hogsvm train`` writes): labels and scores for uint8
    images of shape (n, H, W) (gray) or (n, H, W, 3) (RGB), the ones ``hogsvm predict`` gives for
    the same pixels. The rules are the CLI's: images are read as the model's colour kind
    (``channels``: RGB to gray by BT.709 luma, gray to RGB by repeating the value); a CNN, or a
    classical model trained with ``resize``, brings them to its input size; any other model takes
    only its input size, unless ``resize=True`` (an error names both sizes)."""

    def __init__(self, inner):
        self._inner = inner

    @property
    def kind(self):
        """``"classical"`` or ``"cnn"``."""
        return self._inner.kind

    @property
    def class_names(self):
        """Class names, in label order."""
        return list(self._inner.class_names)

    @property
    def input_shape(self):
        """(rows, cols) of the images the model describes."""
        return tuple(self._inner.input_shape)

    @property
    def channels(self):
        """Values per pixel of the images it reads: 1 (gray) or 3 (RGB, colour HOG)."""
        return self._inner.channels

    def predict(self, images, resize=False):
        """Label index (into ``class_names``) of every image; ``resize=True`` brings images of
        another size to the model's (``hogsvm predict --resize``)."""
        return self._inner.predict(_uint8_images(images), bool(resize)).astype(np.int64)

    def scores(self, images, resize=False):
        """(n, classes) scores: SVM decision values (one column for two classes) or CNN
        probabilities."""
        return self._inner.scores(_uint8_images(images), bool(resize))

    def onnx_input(self, images):
        """The input of the model's ONNX graph (``export_onnx``) for uint8 images: a dict
        ``{name: float32 array}`` to pass to onnxruntime's ``InferenceSession.run``. A classical
        model's graph takes ``hog``, the (n, D) HOG features with the model's settings (HOG has
        no ONNX operator); a CNN's takes ``pixels``, (n, 1, rows, cols), grey levels 0-255."""
        name, x = self._inner.onnx_input(_uint8_images(images))
        if name == "pixels":
            rows, cols = self.input_shape
            x = x.reshape(x.shape[0], 1, rows, cols)
        return {name: x}

    def export_onnx(self, path, opset=17, batch=None):
        """Write the model as ONNX (what ``hogsvm export`` writes), atomically: ``batch`` None
        for a dynamic batch dimension, or a fixed count. docs/ONNX.md describes the graph."""
        self._inner.export_onnx(str(path), int(opset), None if batch is None else int(batch))

    def save(self, path):
        """Write the model file, atomically."""
        self._inner.save(str(path))


def load(path):
    """Open a model file of either kind."""
    return Model(_hogsvm.load(str(path)))
