//! Whether the differences between pipelines are more than noise: McNemar's exact test for every
//! pair of pipelines evaluated on the same test images ([`crate::stats`] has the test and why it
//! is the exact form).

use crate::error::Result;
use crate::report::PairTest;
use crate::stats::McNemar;

/// McNemar's exact test for every pair of `(name, predictions)`, in order: (0, 1), (0, 2), ...,
/// (1, 2), ...; `truth` the test labels every prediction list is of.
pub fn pairwise(runs: &[(&str, &[u32])], truth: &[u32]) -> Result<Vec<PairTest>> {
    let mut out = Vec::new();
    for (i, (a, pa)) in runs.iter().enumerate() {
        for (b, pb) in &runs[i + 1..] {
            let t = McNemar::from_predictions(truth, pa, pb)?;
            out.push(PairTest {
                a: a.to_string(),
                b: b.to_string(),
                a_only_right: t.b,
                b_only_right: t.c,
                p_value: t.p_value,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_once_with_its_discordant_counts() {
        let truth = [0, 1, 2, 0, 1, 2];
        let a = [0, 1, 2, 0, 1, 0]; // 5 right
        let b = [0, 1, 0, 1, 1, 2]; // 4 right
        let c = [0, 1, 2, 0, 1, 2]; // 6 right
        let t = pairwise(&[("a", &a), ("b", &b), ("c", &c)], &truth).unwrap();
        let got: Vec<(&str, &str, u64, u64)> = t
            .iter()
            .map(|p| (p.a.as_str(), p.b.as_str(), p.a_only_right, p.b_only_right))
            .collect();
        assert_eq!(got, [("a", "b", 2, 1), ("a", "c", 0, 1), ("b", "c", 0, 2)]);
        // b = 2, c = 1: p = 2 P(X <= 1), X ~ Bin(3, 1/2) = 2 (1 + 3) / 8 = 1, capped.
        assert_eq!(t[0].p_value, 1.0);
        // b = 0, c = 2: p = 2 P(X = 0), X ~ Bin(2, 1/2) = 2 / 4.
        assert!((t[2].p_value - 0.5).abs() < 1e-15);
        assert!(pairwise(&[("a", &a), ("short", &b[..3])], &truth).is_err());
    }
}
