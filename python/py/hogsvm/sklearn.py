"""scikit-learn estimators over hogsvm (needs scikit-learn, which hogsvm itself does not).

``HogSvmClassifier`` trains hogsvm's classical pipeline (the one ``hogsvm train`` trains) from
NumPy images. ``HogTransformer`` turns images into HOG features inside a scikit-learn ``Pipeline``,
so that

    Pipeline([("hog", HogTransformer()), ("pca", PCA(128)), ("svm", LinearSVC())])

and ``GridSearchCV`` over ``hog__pixels_per_cell`` work unchanged.
"""
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from sklearn.base import ClassifierMixin

from . import Model, _hogsvm, _uint8_images, hog_batch

__all__ = ["HogTransformer", "HogSvmClassifier"]


class HogTransformer(TransformerMixin, BaseEstimator):
    """HOG features of images, as ``hogsvm.hog_batch`` computes them (``skimage.feature.hog``'s
    numbers).

    Images come as ``(n, H, W)`` (or ``(n, H, W, C)``, channels last) or flat ``(n, H * W)``
    with ``image_shape=(H, W)``. Nothing is learned: ``fit`` only checks the parameters.
    """

    def __init__(self, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(3, 3),
                 block_norm="L2-Hys", transform_sqrt=False, image_shape=None, n_jobs=None):
        self.orientations = orientations
        self.pixels_per_cell = pixels_per_cell
        self.cells_per_block = cells_per_block
        self.block_norm = block_norm
        self.transform_sqrt = transform_sqrt
        self.image_shape = image_shape
        self.n_jobs = n_jobs

    def _images(self, X):
        X = np.asarray(X)
        if X.ndim == 2:
            if self.image_shape is None:
                raise ValueError("flat images (n, H*W) need image_shape=(H, W)")
            X = X.reshape((X.shape[0],) + tuple(self.image_shape))
        if X.ndim not in (3, 4):
            raise ValueError(f"expected images (n, H, W), (n, H, W, C) or (n, H*W), got {X.shape}")
        return X

    def fit(self, X, y=None):
        """Check the parameters on the first image; nothing is learned."""
        self.n_features_out_ = self.transform(self._images(X)[:1]).shape[1]
        return self

    def transform(self, X):
        """HOG of every image, ``(n, D)``."""
        return hog_batch(self._images(X), orientations=self.orientations,
                         pixels_per_cell=self.pixels_per_cell,
                         cells_per_block=self.cells_per_block, block_norm=self.block_norm,
                         transform_sqrt=self.transform_sqrt, n_jobs=self.n_jobs)


_SETTINGS = ("cell", "block", "orientations", "block_norm", "sqrt", "extra_cell", "resize",
             "feature_map", "normalize", "standardize", "pca", "whiten", "pca_iterations", "rff",
             "nystroem", "kmeans", "gamma", "flip", "c", "loss", "tol", "max_iter", "class_weight",
             "seed")


def _setting(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "+".join(str(x) for x in v)
    return str(v)


class HogSvmClassifier(ClassifierMixin, BaseEstimator):
    """hogsvm's classical pipeline (HOG → feature map → PCA → kernel map → linear SVM) as a
    scikit-learn classifier, on uint8 images of shape (n, H, W) or (n, H, W, 3) (colour HOG:
    the channel with the strongest gradient per pixel). With no ``cell``, the HOG cell follows
    the image size as ``hogsvm train``'s does.

    Every keyword is a ``hogsvm train`` setting, passed through the same entry point as the
    command line (``ClassicalConfig::set``); ``None`` keeps the best measured default. For
    example ``HogSvmClassifier(cell=4, block=2, pca=128, c=1.0)`` is ``hogsvm train --cell 4
    --block 2 --pca 128 --c 1``. ``extra_cell`` takes a list (``[4, 7]``), ``class_weight`` a list
    or ``"balanced"``.
    """

    def __init__(self, cell=None, block=None, orientations=None, block_norm=None, sqrt=None,
                 extra_cell=None, resize=None, feature_map=None, normalize=None, standardize=None,
                 pca=None, whiten=None, pca_iterations=None, rff=None, nystroem=None, kmeans=None,
                 gamma=None,
                 flip=None, c=None, loss=None, tol=None, max_iter=None, class_weight=None,
                 seed=0):
        for k in _SETTINGS:
            setattr(self, k, locals()[k])

    def _settings(self):
        return [(k.replace("_", "-"), _setting(getattr(self, k)))
                for k in _SETTINGS if getattr(self, k) is not None]

    def fit(self, X, y):
        """Train on images ``X`` (n, H, W) uint8 and labels ``y`` (any values)."""
        X = _uint8_images(X)
        y = np.asarray(y)
        if y.dtype.kind in "fc" and np.isnan(y).any() or (
                y.dtype == object and any(v is None or (isinstance(v, float) and v != v) for v in y)):
            raise ValueError("y holds NaN or None labels: every image needs a class")
        self.classes_, idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError("need at least two classes")
        names = [str(c) for c in self.classes_]
        self.model_ = Model(_hogsvm.train_classical(X, idx.astype(np.uint32).tolist(), names,
                                                    self._settings()))
        return self

    def decision_function(self, X):
        """SVM decision values, (n, classes), or (n,) for two classes."""
        s = self.model_.scores(X)
        return s[:, 0] if s.shape[1] == 1 else s

    def predict(self, X):
        """Predicted labels (values of ``classes_``)."""
        return self.classes_[self.model_.predict(X)]

    def save(self, path):
        """Write the model file, which ``hogsvm eval`` / ``predict`` and ``hogsvm.load`` read
        (its class names are ``str`` of ``classes_``)."""
        self.model_.save(path)
