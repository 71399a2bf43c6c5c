#!/usr/bin/env python3
"""Write the linear SVM golden file computed by scikit-learn to FIXTURES/svm-golden/linearsvc.json.

Run through scripts/svm_golden.sh (which makes the venv). Never edit the output by hand.

Data: fixtures/fashion-mnist (all 2000 train and 500 test images). Features: scikit-image HOG per
image, 9 orientations, 4x4-pixel cells, 2x2-cell blocks, L2-Hys, on the uint8 images as they are.
Classifier: sklearn.svm.LinearSVC (liblinear, one-vs-rest, dual coordinate descent, intercept as an
extra regularised feature of value intercept_scaling = 1), for loss squared_hinge and hinge.

For each loss the file holds C, tol, max_iter, train and test accuracy, and for each of the 10
one-vs-rest problems k the primal objective, in float64 on the training HOG features:
    0.5 * (||coef_k||^2 + intercept_k^2) + C * sum_i loss_i,
    loss_i = max(0, 1 - y_ik * (coef_k . x_i + intercept_k))   (squared for squared_hinge),
    y_ik = +1 if label_i == k else -1.
"""
import os
import sys
import warnings

import numpy as np
import skimage
import sklearn
from skimage.feature import hog
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_json import write_golden  # noqa: E402
from idxio import read_idx  # noqa: E402

FIXTURES = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "fixtures")
OUT = os.path.join(FIXTURES, "svm-golden")
HOG = dict(orientations=9, pixels_per_cell=(4, 4), cells_per_block=(2, 2), block_norm="L2-Hys")
C, TOL, MAX_ITER = 1.0, 1e-4, 10000


def hog_all(images):
    return np.stack([np.asarray(hog(im, feature_vector=True, **HOG), np.float64) for im in images])


def main():
    d = os.path.join(FIXTURES, "fashion-mnist")
    xtr = read_idx(os.path.join(d, "train-images-idx3-ubyte.gz"))
    ytr = read_idx(os.path.join(d, "train-labels-idx1-ubyte.gz")).astype(np.int64)
    xte = read_idx(os.path.join(d, "t10k-images-idx3-ubyte.gz"))
    yte = read_idx(os.path.join(d, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
    ftr, fte = hog_all(xtr), hog_all(xte)
    classes = np.unique(ytr)
    out = {
        "sklearn_version": sklearn.__version__,
        "skimage_version": skimage.__version__,
        "numpy_version": np.__version__,
        "data": "fixtures/fashion-mnist",
        "train_images": int(len(xtr)),
        "test_images": int(len(xte)),
        "features": int(ftr.shape[1]),
        "hog": {"orientations": 9, "cell": 4, "block": 2, "block_norm": "L2-Hys",
                "transform_sqrt": False, "input": "uint8 as is"},
        "classes": [int(k) for k in classes],
        "losses": {},
    }
    for loss in ["squared_hinge", "hinge"]:
        clf = LinearSVC(C=C, loss=loss, tol=TOL, max_iter=MAX_ITER, dual=True,
                        intercept_scaling=1.0, random_state=0)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            clf.fit(ftr, ytr)
        converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
        coef = np.asarray(clf.coef_, np.float64)
        icpt = np.asarray(clf.intercept_, np.float64)
        objectives = []
        for k, cls in enumerate(clf.classes_):
            y = np.where(ytr == cls, 1.0, -1.0)
            xi = np.maximum(0.0, 1.0 - y * (ftr @ coef[k] + icpt[k]))
            if loss == "squared_hinge":
                xi = xi * xi
            objectives.append(float(0.5 * (coef[k] @ coef[k] + icpt[k] ** 2) + C * xi.sum()))
        out["losses"][loss] = {
            "C": C,
            "tol": TOL,
            "max_iter": MAX_ITER,
            "intercept_scaling": 1.0,
            "n_iter": int(np.max(clf.n_iter_)),
            "converged": converged,
            "train_accuracy": float(np.mean(clf.predict(ftr) == ytr)),
            "test_accuracy": float(np.mean(clf.predict(fte) == yte)),
            "primal_objective": objectives,
        }
    # PCA of the same training features: explained-variance ratios (full SVD, exact).
    from sklearn.decomposition import PCA
    pca = PCA(n_components=32, svd_solver="full").fit(ftr)
    out["pca"] = {"n_components": 32,
                  "explained_variance_ratio": [float(v) for v in pca.explained_variance_ratio_],
                  "explained_variance": [float(v) for v in pca.explained_variance_]}
    path = write_golden(OUT, "linearsvc.json", out)
    print(f"wrote {path} (scikit-learn {sklearn.__version__}, "
          f"scikit-image {skimage.__version__}): " + ", ".join(
              f"{l} test {v['test_accuracy']:.4f}" for l, v in out["losses"].items()))


if __name__ == "__main__":
    main()
