#!/usr/bin/env python3
"""Write the statistics golden file computed by scipy to FIXTURES/stats-golden/stats.json.

Run through scripts/stats_golden.sh (which makes the venv). Never edit the output by hand.

* "mcnemar": McNemar's exact test of two classifiers on the same images, b = images A gets right
  and B wrong, c = the reverse: p_value = scipy.stats.binomtest(b, b + c, 0.5,
  alternative="two-sided").pvalue (for p = 1/2 that is min(1, 2 P(X <= min(b, c))),
  X ~ Binomial(b + c, 1/2)). scipy refuses b + c = 0; hogsvm defines p = 1 there (no image tells
  the two apart), listed under "mcnemar_defined", not computed by scipy.
  Beside scipy's value, "p_value_exact": the same p-value to 40 significant digits (mpmath:
  P(X = min(b, c)) from mpmath.binomial, the rest of the tail by the ratio of consecutive terms
  until a term is below 1e-35 of the sum), rounded to the nearest float64. scipy's own value is
  within about 2e-13 of it (relative) for n up to 10^6, so this is the sharper check.
* "wilson": the Wilson score interval of `correct` of `n` at 95 %:
  scipy.stats.binomtest(correct, n).proportion_ci(confidence_level=0.95, method="wilson"), and
  z = scipy.special.ndtri(0.975), the quantile it uses.
"""
import os
import sys

import mpmath
import numpy as np
import scipy
from scipy.special import ndtri
from scipy.stats import binomtest

from golden_json import write_golden

FIXTURES = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "fixtures")
OUT = os.path.join(FIXTURES, "stats-golden")

# (b, c): small (by hand: (1, 5) -> 14/64), one-sided zero, ties, and large n (1000, 20000, 10^6)
# with p-values from near 1 down to about 1e-301.
MCNEMAR = [
    (1, 5), (5, 1), (0, 1), (0, 6), (3, 3), (0, 30), (10, 20), (7, 0), (40, 60), (100, 101),
    (450, 550), (480, 520), (0, 1000), (9850, 10150), (9000, 11000), (499000, 501000),
    (497000, 503000),
]
WILSON = [
    (0, 1), (1, 1), (0, 10), (1, 10), (5, 10), (10, 10), (17, 20), (81, 100), (81, 263),
    (15, 148), (950, 1000), (9123, 10000), (59990, 60000), (123456, 1000000),
]
CONFIDENCE = 0.95


def exact_p(b, c):
    """min(1, 2 P(X <= min(b, c))), X ~ Binomial(b + c, 1/2), to 40 digits, as a float64."""
    n, k = b + c, min(b, c)
    if 2 * k == n:
        return 1.0
    with mpmath.workdps(40):
        term = mpmath.binomial(n, k) / mpmath.mpf(2) ** n
        total = term
        for i in range(k, 0, -1):
            term = term * i / (n - i + 1)
            total += term
            if term < total * mpmath.mpf(10) ** -35:
                break
        return float(min(mpmath.mpf(1), 2 * total))


def main():
    mcnemar = []
    for b, c in MCNEMAR:
        p = float(binomtest(b, b + c, 0.5, alternative="two-sided").pvalue)
        mcnemar.append({"b": b, "c": c, "p_value": p, "p_value_exact": exact_p(b, c)})
    wilson = []
    for k, n in WILSON:
        ci = binomtest(k, n).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
        wilson.append({"correct": k, "n": n, "low": float(ci.low), "high": float(ci.high)})
    out = {
        "scipy_version": scipy.__version__,
        "mpmath_version": mpmath.__version__,
        "numpy_version": np.__version__,
        "mcnemar": mcnemar,
        "mcnemar_defined": [{"b": 0, "c": 0, "p_value": 1.0, "p_value_exact": 1.0,
                             "why": "no discordant image; scipy refuses n = 0"}],
        "wilson_confidence": CONFIDENCE,
        "wilson_z": float(ndtri(0.5 + 0.5 * CONFIDENCE)),
        "wilson": wilson,
    }
    path = write_golden(OUT, "stats.json", out)
    print(f"wrote {path} (scipy {scipy.__version__}): "
          f"{len(mcnemar)} McNemar cases, {len(wilson)} Wilson intervals")


if __name__ == "__main__":
    main()
