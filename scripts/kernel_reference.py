"""Exact RBF-kernel SVM (scikit-learn's SVC, libsvm) on hogsvm's HOG features: the reference a
kernel approximation (`hogsvm train --nystroem` / `--rff`) is measured against.

Reads .npy features written by `hogsvm extract` (one pair of files per HOG descriptor), stacks
them, fits PCA on the training rows (exact, by the covariance's eigenvectors), then SVC(rbf,
gamma="scale") and prints one JSON line: accuracy, seconds, support vectors.
"""
import argparse
import json
import time

import numpy as np
from sklearn.svm import SVC

ap = argparse.ArgumentParser()
ap.add_argument("--train", nargs="+", required=True, help="training feature .npy files")
ap.add_argument("--test", nargs="+", required=True, help="test feature .npy files, same order")
ap.add_argument("--train-labels", required=True)
ap.add_argument("--test-labels", required=True)
ap.add_argument("--pca", type=int, default=256)
ap.add_argument("--c", type=float, default=10.0)
a = ap.parse_args()

xtr = np.hstack([np.load(f) for f in a.train]).astype(np.float32)
xte = np.hstack([np.load(f) for f in a.test]).astype(np.float32)
ytr, yte = np.load(a.train_labels), np.load(a.test_labels)
t0 = time.time()
mu = xtr.mean(0)
cov = ((xtr - mu).T @ (xtr - mu)).astype(np.float64)
_, vecs = np.linalg.eigh(cov)
v = vecs[:, ::-1][:, : a.pca].astype(np.float32)
ptr, pte = (xtr - mu) @ v, (xte - mu) @ v
t1 = time.time()
svc = SVC(C=a.c, kernel="rbf", gamma="scale", cache_size=4000).fit(ptr, ytr)
t2 = time.time()
acc = float((svc.predict(pte) == yte).mean())
print(json.dumps({
    "features": int(xtr.shape[1]), "pca": a.pca, "c": a.c, "train": int(len(ytr)),
    "test_accuracy": acc, "pca_seconds": round(t1 - t0, 1), "svc_fit_seconds": round(t2 - t1, 1),
    "support_vectors": int(svc.n_support_.sum()),
}))
