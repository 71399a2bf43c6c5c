//! The statistics of a comparison on one test set: is one pipeline's accuracy different from
//! another's, how sure is one accuracy, and the nested training subsets of a learning curve.
//!
//! * [`mcnemar_exact`]: McNemar's test for two classifiers on the **same** test images, in its
//!   exact (binomial) form. Only the discordant images count: `b` that A gets right and B wrong,
//!   `c` the reverse. Under "same accuracy" each discordant image goes either way with
//!   probability 1/2, so `min(b, c)` is a Binomial(b + c, 1/2) draw, and the two-sided p-value is
//!   `min(1, 2 P(X <= min(b, c)))`. Exact rather than the chi-squared approximation because
//!   pipelines that agree on all but a few images (the common case) have small `b + c`, where
//!   the approximation is poor; the exact test is valid for every `b + c`. It is what
//!   `scipy.stats.binomtest(b, b + c, 0.5).pvalue` gives (two-sided; for p = 1/2 its "as likely
//!   or less likely" rule is the doubled tail), checked against scipy in
//!   fixtures/stats-golden/stats.json (scripts/make_stats_golden.py), and against the same
//!   p-values to 40 digits there (within 1e-14).
//!   The tail is computed without overflow or cancellation for `b + c` up to 10^6 and beyond:
//!   the largest term `P(X = min(b, c))` by Loader's saddle-point formula (as R's `dbinom`
//!   does), the rest by the ratio of consecutive terms.
//! * [`wilson_interval`]: the Wilson score interval for one accuracy, `correct` of `n`. Chosen
//!   over the Wald interval (`p ± z sqrt(p(1-p)/n)`), which collapses to a point at 0 % or
//!   100 % and undercovers near them, where good classifiers live; its coverage is close to
//!   nominal at every `n` (Newcombe 1998; Brown, Cai and DasGupta 2001). Same formula and
//!   endpoints as `scipy.stats.binomtest(correct, n).proportion_ci(method="wilson")`.
//! * [`nested_stratified_subsets`]: training subsets for a learning curve, each containing the
//!   previous one, each with the full set's class proportions to within one image per class.
//!   Each class is shuffled with a seeded ChaCha8 generator (the same draw as the stratified
//!   splits, [`crate::data::split::shuffled_by_class`]); the per-class counts grow one image at
//!   a time by Balinski and Young's quota method, the apportionment that keeps every count within
//!   one of its exact share at every size *and* never lowers a count when the size grows
//!   (largest remainders, by contrast, can take an image away from a class as the size grows —
//!   the Alabama paradox — which would break the nesting). [`parse_train_sizes`] reads the sizes
//!   from counts or fractions.

use rand::SeedableRng;

use crate::data::split::shuffled_by_class;
use crate::error::{Error, Result};

/// z of a two-sided 95 % interval: the 0.975 quantile of the standard normal
/// (`scipy.special.ndtri(0.975)`).
pub const Z_95: f64 = 1.959963984540054;

/// The outcome of McNemar's exact test on two classifiers' predictions of the same images.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct McNemar {
    /// Images classifier A gets right and B gets wrong.
    pub b: u64,
    /// Images classifier B gets right and A gets wrong.
    pub c: u64,
    /// The exact two-sided p-value, in [0, 1]; 1 when `b + c = 0` (no image tells them apart).
    /// Reads 0 only below the smallest `f64` (about 1e-308).
    pub p_value: f64,
}

impl McNemar {
    /// Count the discordant images of two classifiers' predictions (`pred_a`, `pred_b`) of the
    /// images whose true labels are `truth`, and test them ([`mcnemar_exact`]).
    ///
    /// Errors: [`Error::ShapeMismatch`] when the three lengths differ.
    pub fn from_predictions(truth: &[u32], pred_a: &[u32], pred_b: &[u32]) -> Result<McNemar> {
        for (what, pred) in [("pipeline A", pred_a), ("pipeline B", pred_b)] {
            if pred.len() != truth.len() {
                return Err(Error::ShapeMismatch {
                    what: format!("McNemar's test: predictions of {what}"),
                    expected: format!("{} (one per test image)", truth.len()),
                    got: pred.len().to_string(),
                });
            }
        }
        let (mut b, mut c) = (0u64, 0u64);
        for ((&t, &a), &p) in truth.iter().zip(pred_a).zip(pred_b) {
            match (a == t, p == t) {
                (true, false) => b += 1,
                (false, true) => c += 1,
                _ => {}
            }
        }
        Ok(mcnemar_exact(b, c))
    }
}

/// McNemar's exact two-sided test: `b` images A gets right and B wrong, `c` the reverse;
/// `p = min(1, 2 P(X <= min(b, c)))` for `X ~ Binomial(b + c, 1/2)`, and `p = 1` when
/// `b + c = 0`. Relative error below 1e-14 for `b + c` up to 10^6 against 40-digit values
/// (fixtures/stats-golden; see the module docs).
pub fn mcnemar_exact(b: u64, c: u64) -> McNemar {
    let n = b + c;
    let k = b.min(c);
    let p_value = if 2 * k == n {
        // Also n = 0: the tail up to the middle is at least half.
        1.0
    } else {
        (2.0 * binomial_half_cdf(k, n)).min(1.0)
    };
    McNemar { b, c, p_value }
}

/// `P(X <= k)` for `X ~ Binomial(n, 1/2)` and `k < n / 2`: the largest term `P(X = k)` times
/// `sum_{i <= k} P(X = i) / P(X = k)`, the ratios by the recurrence
/// `P(X = i - 1) / P(X = i) = i / (n - i + 1)` (below 1, so the terms fall and the sum stops once
/// they no longer change it).
fn binomial_half_cdf(k: u64, n: u64) -> f64 {
    debug_assert!(2 * k < n);
    let mut sum = 1.0f64;
    let mut term = 1.0f64;
    let nf = n as f64;
    for i in (1..=k).rev() {
        term *= i as f64 / (nf - i as f64 + 1.0);
        let next = sum + term;
        if next == sum {
            break;
        }
        sum = next;
    }
    binomial_half_pmf(k, n) * sum
}

/// `P(X = x)` for `X ~ Binomial(n, 1/2)`, by Loader's saddle-point form (C. Loader, "Fast and
/// accurate computation of binomial probabilities", 2000; R's `dbinom_raw`):
/// `exp(-stirlerr terms - bd0 terms) / sqrt(2 pi x (n - x) / n)`, with no large quantity
/// subtracted from another, so the relative error stays near machine precision for any `n`.
fn binomial_half_pmf(x: u64, n: u64) -> f64 {
    if x == 0 || x == n {
        // 2^-n, exactly (the smallest subnormal is 2^-1074; 2^-1075 and below round to 0).
        return if n <= 1074 {
            0.5f64.powi(n as i32)
        } else {
            0.0
        };
    }
    let (xf, nf) = (x as f64, n as f64);
    let half = nf / 2.0;
    let lc = stirlerr(n) - stirlerr(x) - stirlerr(n - x) - bd0(xf, half) - bd0(nf - xf, half);
    let lf = (2.0 * std::f64::consts::PI).ln() + xf.ln() + (-xf / nf).ln_1p();
    (lc - 0.5 * lf).exp()
}

/// `ln(n!) - [(n + 1/2) ln n - n + ln sqrt(2 pi)]`, the error of Stirling's formula: exact sums
/// of logarithms for `n <= 15` (a few ulps of ln 15! ≈ 28, so an absolute error near 1e-14), the
/// asymptotic series beyond (its first omitted term below 1e-16 at every cut-off).
fn stirlerr(n: u64) -> f64 {
    const S0: f64 = 1.0 / 12.0;
    const S1: f64 = 1.0 / 360.0;
    const S2: f64 = 1.0 / 1260.0;
    const S3: f64 = 1.0 / 1680.0;
    const S4: f64 = 1.0 / 1188.0;
    let nf = n as f64;
    if n <= 15 {
        let ln_fact: f64 = (2..=n).map(|i| (i as f64).ln()).sum();
        let ln_sqrt_2pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
        return ln_fact - (nf + 0.5) * nf.ln() + nf - ln_sqrt_2pi;
    }
    let nn = nf * nf;
    if n > 500 {
        (S0 - S1 / nn) / nf
    } else if n > 80 {
        (S0 - (S1 - S2 / nn) / nn) / nf
    } else if n > 35 {
        (S0 - (S1 - (S2 - S3 / nn) / nn) / nn) / nf
    } else {
        (S0 - (S1 - (S2 - (S3 - S4 / nn) / nn) / nn) / nn) / nf
    }
}

/// `x ln(x / m) + m - x`, the deviance term of Loader's formula, by a series in
/// `v = (x - m) / (x + m)` when `x` is near `m` (where the direct form cancels).
fn bd0(x: f64, m: f64) -> f64 {
    if (x - m).abs() < 0.1 * (x + m) {
        let mut v = (x - m) / (x + m);
        let mut s = (x - m) * v;
        let mut ej = 2.0 * x * v;
        v *= v;
        for j in 1..1000 {
            ej *= v;
            let s1 = s + ej / (2 * j + 1) as f64;
            if s1 == s {
                return s1;
            }
            s = s1;
        }
        s
    } else {
        x * (x / m).ln() + m - x
    }
}

/// The Wilson score interval `(low, high)` for a proportion of `correct` out of `n`, at the
/// normal quantile `z` ([`Z_95`] for 95 %): the proportions `p` with
/// `|correct/n - p| <= z sqrt(p (1 - p) / n)`,
/// `center ± z / (2 (n + z²)) sqrt(4 n p̂ q̂ + z²)`, `center = (2 n p̂ + z²) / (2 (n + z²))`,
/// with `low = 0` when `correct = 0` and `high = 1` when `correct = n` (scipy's
/// `proportion_ci(method="wilson")`, term for term).
///
/// `n = 0` gives `(0, 1)`: with no image every accuracy is consistent with the data (scipy
/// refuses it; a report row for an empty test set then reads "anything", not an error).
///
/// # Panics
/// When `correct > n`, or `z` is not finite and positive: both are caller bugs (counts of the
/// same test set), not data errors.
pub fn wilson_interval(correct: u64, n: u64, z: f64) -> (f64, f64) {
    assert!(correct <= n, "wilson_interval: {correct} correct of {n}");
    assert!(z.is_finite() && z > 0.0, "wilson_interval: z = {z}");
    if n == 0 {
        return (0.0, 1.0);
    }
    let nf = n as f64;
    let p = correct as f64 / nf;
    let q = 1.0 - p;
    let denom = 2.0 * (nf + z * z);
    let center = ((2 * n) as f64 * p + z * z) / denom;
    let delta = z / denom * ((4 * n) as f64 * p * q + z * z).sqrt();
    let low = if correct == 0 { 0.0 } else { center - delta };
    let high = if correct == n { 1.0 } else { center + delta };
    (low, high)
}

/// Predictions scored against the truth: the count correct, the accuracy and its 95% Wilson
/// interval ([`wilson_interval`] with [`Z_95`]). Pairs are taken up to the shorter slice; an
/// empty one gives accuracy 0 and the interval `[0, 1]`.
pub fn accuracy_ci95(pred: &[u32], truth: &[u32]) -> (u64, f64, [f64; 2]) {
    let n = pred.len().min(truth.len()) as u64;
    let correct = pred.iter().zip(truth).filter(|(p, t)| p == t).count() as u64;
    let (lo, hi) = wilson_interval(correct, n, Z_95);
    (correct, correct as f64 / n.max(1) as f64, [lo, hi])
}

/// Training subsets for a learning curve: for each of `sizes` (strictly increasing, each in
/// `1..=labels.len()`), that many indices into `labels`, sorted. The sets are
///
/// * **nested**: each contains the one before;
/// * **stratified**: every class has its share `size * n_class / n` of the images to within one
///   (never below its floor, never above its ceiling): the per-class counts of Balinski and
///   Young's quota method, raised one image at a time (ties to the lower class);
/// * **seeded**: each class is shuffled once by a ChaCha8 generator seeded with `seed`
///   ([`shuffled_by_class`]) and each subset takes its count of a class from the front of that
///   class's order, so the sets depend only on the labels, the sizes and the seed (no threads).
///
/// The subset of a size does not depend on the other sizes asked for (a curve can be extended
/// later). A small size may leave a rare class out (its share below one image). Classes are the
/// labels `0..=max(labels)`. No sizes give no subsets. Cost: O(max size × classes).
///
/// Errors: [`Error::InvalidParameter`] (`train_sizes`) for a size of 0, one above
/// `labels.len()`, or sizes not strictly increasing.
pub fn nested_stratified_subsets(
    labels: &[u32],
    sizes: &[usize],
    seed: u64,
) -> Result<Vec<Vec<usize>>> {
    let n = labels.len();
    for (i, &s) in sizes.iter().enumerate() {
        if s == 0 || s > n {
            return Err(Error::param(
                "train_sizes",
                format!("each size must be between 1 and the number of training images ({n})"),
                s,
            ));
        }
        if i > 0 && s <= sizes[i - 1] {
            return Err(Error::param(
                "train_sizes",
                "sizes must be strictly increasing",
                format!("{} after {}", s, sizes[i - 1]),
            ));
        }
    }
    let n_classes = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let classes = shuffled_by_class(labels, n_classes, &mut rng);
    let totals: Vec<u64> = classes.iter().map(|c| c.len() as u64).collect();
    let mut counts = vec![0u64; n_classes];
    let mut size = 0usize;
    let mut out = Vec::with_capacity(sizes.len());
    for &target in sizes {
        while size < target {
            let class = quota_step(&counts, &totals, size as u64, n as u64);
            counts[class] += 1;
            size += 1;
        }
        let mut subset: Vec<usize> = classes
            .iter()
            .zip(&counts)
            .flat_map(|(c, &k)| c[..k as usize].iter().copied())
            .collect();
        subset.sort_unstable();
        out.push(subset);
    }
    Ok(out)
}

/// One step of the quota method, from `size` to `size + 1` images of `n`: among the classes
/// still under their upper quota at the new size (`counts[c] < totals[c] (size + 1) / n`), the
/// one with the largest D'Hondt priority `totals[c] / (counts[c] + 1)`; the lowest index on a
/// tie. Integer arithmetic throughout, so no rounding decides a step.
fn quota_step(counts: &[u64], totals: &[u64], size: u64, n: u64) -> usize {
    let mut best: Option<usize> = None;
    for c in 0..counts.len() {
        let eligible =
            u128::from(counts[c]) * u128::from(n) < u128::from(totals[c]) * u128::from(size + 1);
        if !eligible {
            continue;
        }
        // totals[c] / (counts[c] + 1) > totals[b] / (counts[b] + 1), cross-multiplied.
        let better = match best {
            None => true,
            Some(b) => {
                u128::from(totals[c]) * u128::from(counts[b] + 1)
                    > u128::from(totals[b]) * u128::from(counts[c] + 1)
            }
        };
        if better {
            best = Some(c);
        }
    }
    best.expect("the quota method always has an eligible class while size < n")
}

/// Learning-curve sizes from a comma-separated list of counts (`500`) and fractions of the
/// `n_train` training images (`0.5`, anything with a `.`, in (0, 1]; rounded, at least 1):
/// deduplicated and sorted increasing, ready for [`nested_stratified_subsets`]. `"1"` is one
/// image, `"1.0"` all of them.
///
/// Errors: [`Error::InvalidParameter`] (`train_sizes`) for an empty list or item, a number that
/// does not parse, a count of 0 or above `n_train`, a fraction outside (0, 1].
pub fn parse_train_sizes(spec: &str, n_train: usize) -> Result<Vec<usize>> {
    let mut sizes = Vec::new();
    for item in spec.split(',').map(str::trim) {
        let bad = |reason: String| Error::param("train_sizes", reason, format!("{item:?}"));
        if item.is_empty() {
            return Err(bad(
                "a comma-separated list of counts or fractions in (0, 1]".into(),
            ));
        }
        let size = if item.contains('.') {
            let f: f64 = item
                .parse()
                .map_err(|_| bad("not a number (a count or a fraction in (0, 1])".into()))?;
            if !(f > 0.0 && f <= 1.0) {
                return Err(bad("a fraction must be in (0, 1]".into()));
            }
            ((f * n_train as f64).round() as usize).max(1)
        } else {
            item.parse::<usize>()
                .map_err(|_| bad("not a count (a whole number) or a fraction in (0, 1]".into()))?
        };
        if size == 0 || size > n_train {
            return Err(bad(format!(
                "a size must be between 1 and the number of training images ({n_train})"
            )));
        }
        sizes.push(size);
    }
    sizes.sort_unstable();
    sizes.dedup();
    Ok(sizes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: f64, b: f64) -> f64 {
        if a == b {
            0.0
        } else {
            (a - b).abs() / b.abs().max(a.abs())
        }
    }

    /// Exact tail by big-integer-free rationals for small n: sum of C(n, i) for i <= k over 2^n.
    fn exact_p(b: u64, c: u64) -> f64 {
        let n = b + c;
        let k = b.min(c);
        if 2 * k == n {
            return 1.0;
        }
        let mut binom = 1u128;
        let mut sum = 0u128;
        for i in 0..=k {
            if i > 0 {
                binom = binom * u128::from(n - i + 1) / u128::from(i);
            }
            sum += binom;
        }
        (2.0 * sum as f64 / 2f64.powi(n as i32)).min(1.0)
    }

    #[test]
    fn mcnemar_by_hand() {
        // b = 1, c = 5: n = 6, P(X <= 1) = (C(6,0) + C(6,1)) / 2^6 = (1 + 6) / 64 = 7/64, so
        // p = 2 * 7/64 = 14/64 = 0.21875 (scipy.stats.binomtest(1, 6).pvalue = 0.21875).
        let m = mcnemar_exact(1, 5);
        assert_eq!((m.b, m.c), (1, 5));
        assert!(rel(m.p_value, 0.21875) < 1e-14, "{}", m.p_value);
        assert_eq!(mcnemar_exact(5, 1).p_value, m.p_value);
        // b = 0, c = 6: 2 / 64.
        assert!(rel(mcnemar_exact(0, 6).p_value, 2.0 / 64.0) < 1e-15);
        // Nothing discordant, or a tie: 1. One discordant image: 2 * 1/2 = 1.
        assert_eq!(mcnemar_exact(0, 0).p_value, 1.0);
        assert_eq!(mcnemar_exact(7, 7).p_value, 1.0);
        assert_eq!(mcnemar_exact(0, 1).p_value, 1.0);
    }

    #[test]
    fn mcnemar_matches_exact_sums() {
        for n in 1..=100u64 {
            for b in 0..=n {
                let p = mcnemar_exact(b, n - b).p_value;
                let e = exact_p(b, n - b);
                assert!(rel(p, e) < 1e-13, "b={b} c={}: {p} vs {e}", n - b);
            }
        }
    }

    #[test]
    fn mcnemar_large_n_is_finite_and_symmetric() {
        // n = 10^6: no overflow; a 2000-image gap (2 sd) gives p near 0.0455 (normal approx.).
        let p = mcnemar_exact(499_000, 501_000).p_value;
        assert!(p > 0.04 && p < 0.05, "{p}");
        assert_eq!(p, mcnemar_exact(501_000, 499_000).p_value);
        // 2^-1000 * 2 is still a normal f64; 2^-2000 underflows to 0.
        assert_eq!(mcnemar_exact(0, 1000).p_value, 2f64.powi(-999));
        // 2 * 2^-1074, the second-smallest subnormal.
        assert_eq!(mcnemar_exact(0, 1074).p_value, f64::from_bits(2));
        assert_eq!(mcnemar_exact(0, 2000).p_value, 0.0);
    }

    #[test]
    fn mcnemar_from_predictions() {
        let truth = [0, 1, 2, 0, 1, 2];
        let a = [0, 1, 2, 0, 0, 0]; // right on 0..4
        let b = [0, 0, 2, 1, 1, 0]; // right on 0, 2, 4
        let m = McNemar::from_predictions(&truth, &a, &b).unwrap();
        assert_eq!((m.b, m.c), (2, 1));
        let e = McNemar::from_predictions(&truth, &a, &b[..5]).unwrap_err();
        assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
        assert!(McNemar::from_predictions(&truth[..5], &a[..5], &b).is_err());
    }

    #[test]
    fn wilson_textbook() {
        // Newcombe (1998), Table I, method 3 (score interval without continuity correction).
        for (k, n, lo, hi) in [
            (81, 263, 0.2553, 0.3662),
            (15, 148, 0.0624, 0.1605),
            (0, 20, 0.0, 0.1611),
            (1, 29, 0.0061, 0.1718),
        ] {
            let (l, h) = wilson_interval(k, n, Z_95);
            assert!(
                (l - lo).abs() < 5e-5 && (h - hi).abs() < 5e-5,
                "{k}/{n}: {l} {h}"
            );
        }
        // 0 of n: high = z² / (n + z²).
        let (l, h) = wilson_interval(0, 20, Z_95);
        assert_eq!(l, 0.0);
        assert!(rel(h, Z_95 * Z_95 / (20.0 + Z_95 * Z_95)) < 1e-15);
        assert_eq!(wilson_interval(20, 20, Z_95).1, 1.0);
        assert_eq!(wilson_interval(0, 0, Z_95), (0.0, 1.0));
    }

    #[test]
    #[should_panic(expected = "correct of")]
    fn wilson_refuses_more_correct_than_images() {
        wilson_interval(3, 2, Z_95);
    }

    fn class_counts(labels: &[u32], subset: &[usize]) -> Vec<usize> {
        let k = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
        let mut c = vec![0; k];
        for &i in subset {
            c[labels[i] as usize] += 1;
        }
        c
    }

    fn check_subsets(labels: &[u32], sizes: &[usize], subsets: &[Vec<usize>]) {
        let full = class_counts(labels, &(0..labels.len()).collect::<Vec<_>>());
        assert_eq!(subsets.len(), sizes.len());
        for (j, (s, &size)) in subsets.iter().zip(sizes).enumerate() {
            assert_eq!(s.len(), size);
            assert!(s.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
            assert!(s.iter().all(|&i| i < labels.len()));
            if j > 0 {
                let prev = &subsets[j - 1];
                assert!(prev.iter().all(|i| s.binary_search(i).is_ok()), "nested");
            }
            for (got, &total) in class_counts(labels, s).iter().zip(&full) {
                let share = size as f64 * total as f64 / labels.len() as f64;
                assert!(
                    (*got as f64 - share).abs() < 1.0,
                    "size {size}: {got} images of a class whose share is {share}"
                );
            }
        }
    }

    #[test]
    fn subsets_nested_stratified_seeded() {
        // Unbalanced: 10 classes of 5 to 50 images, interleaved.
        let labels: Vec<u32> = (0..10u32)
            .flat_map(|c| std::iter::repeat_n(c, 5 + 5 * c as usize))
            .collect();
        let sizes = [1, 7, 30, 31, 100, 200, 275];
        let a = nested_stratified_subsets(&labels, &sizes, 3).unwrap();
        check_subsets(&labels, &sizes, &a);
        assert_eq!(a, nested_stratified_subsets(&labels, &sizes, 3).unwrap());
        assert_ne!(a, nested_stratified_subsets(&labels, &sizes, 4).unwrap());
        assert_eq!(a[6], (0..275).collect::<Vec<_>>(), "the full set");
        // The sets of a size do not depend on the other sizes asked for.
        let b = nested_stratified_subsets(&labels, &[100], 3).unwrap();
        assert_eq!(b[0], a[4]);
        assert!(nested_stratified_subsets(&labels, &[], 3)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn subsets_refuse_bad_sizes() {
        let labels = [0u32, 1, 0, 1];
        for sizes in [&[0][..], &[5], &[2, 2], &[3, 1]] {
            let e = nested_stratified_subsets(&labels, sizes, 0).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::InvalidParameter {
                        name: "train_sizes",
                        ..
                    }
                ),
                "{sizes:?}: {e}"
            );
        }
        assert!(nested_stratified_subsets(&[], &[1], 0).is_err());
    }

    #[test]
    fn train_sizes_parse() {
        assert_eq!(
            parse_train_sizes("500, 2000,0.5", 10_000).unwrap(),
            vec![500, 2000, 5000]
        );
        assert_eq!(
            parse_train_sizes("1.0,100,0.01", 100).unwrap(),
            vec![1, 100]
        );
        assert_eq!(parse_train_sizes("1", 100).unwrap(), vec![1]);
        assert_eq!(
            parse_train_sizes("0.001", 100).unwrap(),
            vec![1],
            "at least one"
        );
        for bad in [
            "", "10,", "abc", "0", "101", "1.5", "0.0", "-0.5", "-3", "nan",
        ] {
            let e = parse_train_sizes(bad, 100).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::InvalidParameter {
                        name: "train_sizes",
                        ..
                    }
                ),
                "{bad:?}: {e}"
            );
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

            #[test]
            fn subsets_always_nested_and_within_one(
                labels in proptest::collection::vec(0u32..6, 1..400),
                mut sizes in proptest::collection::vec(1usize..400, 1..8),
                seed in any::<u64>(),
            ) {
                for s in &mut sizes {
                    *s = (*s).min(labels.len());
                }
                sizes.sort_unstable();
                sizes.dedup();
                let subsets = nested_stratified_subsets(&labels, &sizes, seed).unwrap();
                check_subsets(&labels, &sizes, &subsets);
            }

            #[test]
            fn every_size_within_one(
                labels in proptest::collection::vec(0u32..12, 1..300),
                seed in any::<u64>(),
            ) {
                // Every size from 1 to n, so every step of the quota method is checked.
                let sizes: Vec<usize> = (1..=labels.len()).collect();
                let subsets = nested_stratified_subsets(&labels, &sizes, seed).unwrap();
                check_subsets(&labels, &sizes, &subsets);
            }

            #[test]
            fn mcnemar_symmetric_in_range(b in 0u64..5000, c in 0u64..5000) {
                let p = mcnemar_exact(b, c).p_value;
                prop_assert!((0.0..=1.0).contains(&p));
                prop_assert_eq!(p, mcnemar_exact(c, b).p_value);
                // Moving one image from the smaller count to the larger lowers p.
                if b < c && b > 0 && p > 1e-290 {
                    prop_assert!(mcnemar_exact(b - 1, c + 1).p_value < p);
                }
            }

            #[test]
            fn wilson_contains_the_estimate(n in 1u64..100_000, frac in 0.0f64..=1.0) {
                let k = ((n as f64) * frac).floor() as u64;
                let (lo, hi) = wilson_interval(k, n, Z_95);
                let p = k as f64 / n as f64;
                prop_assert!(0.0 <= lo && lo <= p && p <= hi && hi <= 1.0, "{} {} {}", lo, p, hi);
            }
        }
    }

    #[test]
    fn accuracy_with_its_interval() {
        let (c, a, ci) = accuracy_ci95(&[0, 1, 2, 2], &[0, 1, 2, 0]);
        assert_eq!((c, a), (3, 0.75));
        let (lo, hi) = wilson_interval(3, 4, Z_95);
        assert_eq!(ci, [lo, hi]);
        assert_eq!(accuracy_ci95(&[], &[]), (0, 0.0, [0.0, 1.0]));
    }
}
