//! Stratified splits, the one place they are drawn: a hold-out (the test set of `--test-split`,
//! the CNN's validation set) and k folds (`compare --grid`). Each class is shuffled on its own
//! by the caller's seeded generator ([`shuffled_by_class`], also behind the learning curve's
//! nested subsets in [`crate::stats`]), so the draw depends only on the labels and the seed.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::error::{Error, Result};

/// Each class's indices (`0..n_classes`, in that order), each list shuffled with `rng` in turn,
/// class 0 first; labels `>= n_classes` are left out. A class of fewer than two images draws
/// nothing from `rng`.
pub fn shuffled_by_class<R: Rng>(labels: &[u32], n_classes: usize, rng: &mut R) -> Vec<Vec<usize>> {
    let mut classes = vec![Vec::new(); n_classes];
    for (i, &l) in labels.iter().enumerate() {
        if let Some(c) = classes.get_mut(l as usize) {
            c.push(i);
        }
    }
    for c in &mut classes {
        c.shuffle(rng);
    }
    classes
}

/// (kept, held-out) indices, both in the original order: `fraction` of each class with at least
/// two images is held out (rounded, at least one, never all), the images of each class drawn
/// after shuffling them with `rng`.
pub fn stratified_indices<R: Rng>(
    labels: &[u32],
    n_classes: usize,
    fraction: f64,
    rng: &mut R,
) -> (Vec<usize>, Vec<usize>) {
    let mut held = vec![false; labels.len()];
    for idx in shuffled_by_class(labels, n_classes, rng) {
        if idx.len() < 2 {
            continue;
        }
        let k = ((idx.len() as f64 * fraction).round() as usize).clamp(1, idx.len() - 1);
        for &i in &idx[..k] {
            held[i] = true;
        }
    }
    (
        (0..labels.len()).filter(|&i| !held[i]).collect(),
        (0..labels.len()).filter(|&i| held[i]).collect(),
    )
}

/// Assign every image to one of `k` folds, class by class (shuffled with `seed`, then dealt
/// round-robin), so each fold has about the same class mix. Returns each fold's indices,
/// sorted.
pub fn stratified_folds(labels: &[u32], k: usize, seed: u64) -> Result<Vec<Vec<usize>>> {
    if k < 2 || k > labels.len() {
        return Err(Error::param(
            "grid_folds",
            format!(
                "must be between 2 and the number of training images ({})",
                labels.len()
            ),
            k,
        ));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n_classes = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let mut folds = vec![Vec::new(); k];
    let mut next = 0;
    for idx in shuffled_by_class(labels, n_classes, &mut rng) {
        for i in idx {
            folds[next % k].push(i);
            next += 1;
        }
    }
    for f in &mut folds {
        f.sort_unstable();
    }
    Ok(folds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_out_is_stratified_and_partitions() {
        let labels: Vec<u32> = (0..30).map(|i| i % 3).chain([3]).collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let (kept, held) = stratified_indices(&labels, 4, 0.2, &mut rng);
        assert_eq!(kept.len() + held.len(), labels.len());
        for c in 0..3 {
            assert_eq!(held.iter().filter(|&&i| labels[i] == c).count(), 2);
        }
        assert!(kept.contains(&30), "a class of one image is never held out");
        assert!(kept.windows(2).all(|w| w[0] < w[1]) && held.windows(2).all(|w| w[0] < w[1]));
    }
}
