"""PCA alone on one features matrix, hogsvm against scikit-learn, in the same run.

hogsvm: examples/pca_bench.rs (its randomized solver: on the covariance when d <= n or d <= 4096,
else on the centred data matrix); scikit-learn: PCA(K, svd_solver="randomized", random_state=0),
fit only. Both at the same thread count (BLAS threads for scikit-learn, rayon threads for
hogsvm). Reports the median fit time of --rounds fits and the largest difference between the two
explained-variance ratios (per component, and of their sum).

usage: python peer_pca.py --features F.npy --bench target/release/examples/pca_bench
         [--k 256] [--threads 2] [--rounds 3] [--iterations N] [--json OUT]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--features", required=True)
    ap.add_argument("--bench", required=True, help="the pca_bench example binary")
    ap.add_argument("--k", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iterations", type=int, help="hogsvm's power iterations (default: its own, "
                    "10; `train --pca-iterations`)")
    ap.add_argument("--json")
    a = ap.parse_args()
    t = str(a.threads)
    env = dict(os.environ, RAYON_NUM_THREADS=t)
    cmd = [a.bench, a.features, str(a.k), str(a.rounds)]
    if a.iterations is not None:
        cmd.append(str(a.iterations))
    ours = json.loads(subprocess.run(cmd, env=env,
                                     check=True, capture_output=True, text=True).stdout)
    # BLAS threads are fixed when NumPy loads: set them before importing it.
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = t
    import numpy as np
    from sklearn.decomposition import PCA
    x = np.load(a.features).astype(np.float32, copy=False)
    times, pca = [], None
    for _ in range(a.rounds):
        s = time.perf_counter()
        pca = PCA(a.k, svd_solver="randomized", random_state=0).fit(x)
        times.append(time.perf_counter() - s)
    sk = pca.explained_variance_ratio_.astype(np.float64)
    mine = np.asarray(ours["explained_variance_ratio"])
    out = {
        "n": int(x.shape[0]), "d": int(x.shape[1]), "k": a.k, "threads": a.threads,
        "hogsvm_solver": ours["solver"], "hogsvm_power_iterations": ours["power_iterations"],
        "hogsvm_seconds": ours["median_seconds"],
        "sklearn_seconds": statistics.median(times),
        "speedup": statistics.median(times) / ours["median_seconds"],
        "max_ratio_difference": float(np.abs(sk - mine).max()),
        "sum_ratio_hogsvm": float(mine.sum()), "sum_ratio_sklearn": float(sk.sum()),
        "sum_ratio_difference": float(abs(sk.sum() - mine.sum())),
    }
    print(json.dumps(out, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
