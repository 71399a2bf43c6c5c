"""hogsvm.sklearn.HogTransformer in scikit-learn pipelines and searches, on the bundled fixture."""
import gzip
import os
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

import hogsvm
from hogsvm.sklearn import HogSvmClassifier, HogTransformer

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "fashion-mnist")


def idx(name, images):
    with gzip.open(os.path.join(FIXTURE, name), "rb") as f:
        data = f.read()
    if images:
        rows, cols = int.from_bytes(data[8:12], "big"), int.from_bytes(data[12:16], "big")
        return np.frombuffer(data, np.uint8, offset=16).reshape(-1, rows, cols)
    return np.frombuffer(data, np.uint8, offset=8).astype(np.int64)


def data(n_train=600, n_test=200):
    x = idx("train-images-idx3-ubyte.gz", True)[:n_train]
    y = idx("train-labels-idx1-ubyte.gz", False)[:n_train]
    xt = idx("t10k-images-idx3-ubyte.gz", True)[:n_test]
    yt = idx("t10k-labels-idx1-ubyte.gz", False)[:n_test]
    return x, y, xt, yt


def test_transformer_equals_hog_and_takes_flat_images():
    x, _, _, _ = data(20)
    t = HogTransformer(pixels_per_cell=(4, 4), cells_per_block=(2, 2))
    want = np.stack([hogsvm.hog(im, pixels_per_cell=(4, 4), cells_per_block=(2, 2)) for im in x])
    assert np.array_equal(t.fit_transform(x), want)
    flat = HogTransformer(pixels_per_cell=(4, 4), cells_per_block=(2, 2), image_shape=(28, 28))
    assert np.array_equal(flat.fit_transform(x.reshape(len(x), -1)), want)


def test_pipeline_and_grid_search():
    x, y, xt, yt = data()
    pipe = Pipeline([("hog", HogTransformer(cells_per_block=(2, 2))), ("pca", PCA(32, random_state=0)),
                     ("svm", LinearSVC(C=1.0))])
    search = GridSearchCV(pipe, {"hog__pixels_per_cell": [(4, 4), (7, 7)]}, cv=3)
    search.fit(x, y)
    assert search.best_params_["hog__pixels_per_cell"] in [(4, 4), (7, 7)]
    acc = search.score(xt, yt)
    assert acc > 0.6, acc  # ten classes: chance is 0.1


def test_clone_and_pickle():
    t = HogTransformer(orientations=12, pixels_per_cell=(4, 4), n_jobs=1)
    c = clone(t)
    assert c.get_params() == t.get_params()
    c.set_params(orientations=6)
    assert c.orientations == 6 and t.orientations == 12
    x, _, _, _ = data(5)
    back = pickle.loads(pickle.dumps(t.fit(x)))
    assert np.array_equal(back.transform(x), t.transform(x))


def test_nan_labels_are_refused():
    """Defect class: a NaN label became a class named "nan"."""
    x, y, _, _ = data(40)
    yf = y.astype(float)
    yf[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        HogSvmClassifier().fit(x, yf)
    yo = y.astype(object)
    yo[5] = None
    with pytest.raises(ValueError, match="None"):
        HogSvmClassifier().fit(x, yo)


def test_pca_iterations_reach_the_pca():
    x, y, xt, yt = data(300, 100)
    clf = HogSvmClassifier(cell=4, block=2, pca=16, pca_iterations=1).fit(x, y)
    assert clf.get_params()["pca_iterations"] == 1
    assert clf.score(xt, yt) > 0.5  # ten classes: chance is 0.1
    with pytest.raises(ValueError, match="pca-iterations"):
        HogSvmClassifier(pca=16, pca_iterations=1000).fit(x, y)
    with pytest.raises(ValueError, match="needs"):
        HogSvmClassifier(pca_iterations=4).fit(x, y)
