//! `compare --grid`: k-fold stratified cross-validation over the SVM's C (and, if asked, the
//! HOG cell size) on the training split only; the best mean accuracy wins (ties: the earlier
//! candidate, i.e. the smaller C and cell as listed) and the pipeline is then refitted on the
//! whole training split.

use std::time::Instant;

use crate::classifier::Classifier;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::pipeline::ClassicalConfig;

/// What to search.
#[derive(Debug, Clone, PartialEq)]
pub struct GridOptions {
    /// Number of folds (at least 2).
    pub folds: usize,
    /// Values of C.
    pub cs: Vec<f64>,
    /// HOG cell sizes (square); empty = the pipeline's own.
    pub cells: Vec<usize>,
    /// Seed of the fold assignment.
    pub seed: u64,
}

impl Default for GridOptions {
    fn default() -> Self {
        GridOptions {
            folds: 3,
            cs: vec![0.01, 0.1, 1.0],
            cells: Vec::new(),
            seed: 0,
        }
    }
}

pub use crate::report::{GridReport, GridRow};

pub use crate::data::split::stratified_folds;

/// Cross-validate `base` with every (cell, C) candidate on `train`; return the best
/// configuration and the report.
pub fn search(
    base: &ClassicalConfig,
    train: &Dataset,
    opts: &GridOptions,
    log: &mut dyn FnMut(&str),
) -> Result<(ClassicalConfig, GridReport)> {
    if opts.cs.is_empty() || opts.cs.iter().any(|c| !(c.is_finite() && *c > 0.0)) {
        return Err(Error::param(
            "grid_c",
            "needs one or more positive values",
            format!("{:?}", opts.cs),
        ));
    }
    let t0 = Instant::now();
    let folds = stratified_folds(&train.labels, opts.folds, opts.seed)?;
    let cells = if opts.cells.is_empty() {
        vec![base.hog.cell_rows]
    } else {
        opts.cells.clone()
    };
    let mut rows = Vec::new();
    for &cell in &cells {
        let mut cfg = base.clone();
        cfg.hog = cfg.hog.cell(cell, cell);
        cfg.validate()?;
        for &c in &opts.cs {
            cfg.svm.c = c;
            let mut accs = Vec::with_capacity(folds.len());
            for (f, val_idx) in folds.iter().enumerate() {
                let mut in_val = vec![false; train.len()];
                for &i in val_idx {
                    in_val[i] = true;
                }
                let tr: Vec<usize> = (0..train.len()).filter(|&i| !in_val[i]).collect();
                let (model, _) = cfg.fit(&train.subset(&tr))?;
                let acc = model.evaluate(&train.subset(val_idx))?.accuracy;
                log(&format!(
                    "grid: cell {cell}, C {c}: fold {}/{} accuracy {acc:.4}",
                    f + 1,
                    folds.len()
                ));
                accs.push(acc);
            }
            let mean = accs.iter().sum::<f64>() / accs.len() as f64;
            let var = accs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / accs.len() as f64;
            rows.push(GridRow {
                cell,
                c,
                fold_accuracy: accs,
                mean_accuracy: mean,
                std_accuracy: var.sqrt(),
            });
        }
    }
    let best = rows.iter().enumerate().fold(0, |b, (i, r)| {
        if r.mean_accuracy > rows[b].mean_accuracy {
            i
        } else {
            b
        }
    });
    let (chosen_cell, chosen_c) = (rows[best].cell, rows[best].c);
    let mut cfg = base.clone();
    cfg.hog = cfg.hog.cell(chosen_cell, chosen_cell);
    cfg.svm.c = chosen_c;
    Ok((
        cfg,
        GridReport {
            folds: folds.len(),
            train_images: train.len(),
            seconds: t0.elapsed().as_secs_f64(),
            rows,
            chosen_cell,
            chosen_c,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_are_a_stratified_partition() {
        let labels: Vec<u32> = (0..30).map(|i| (i % 3) as u32).collect();
        let folds = stratified_folds(&labels, 3, 7).unwrap();
        let mut all: Vec<usize> = folds.concat();
        all.sort_unstable();
        assert_eq!(all, (0..30).collect::<Vec<_>>());
        for f in &folds {
            assert_eq!(f.len(), 10);
            // Each fold holds 3 or 4 images of each class.
            for c in 0..3u32 {
                let n = f.iter().filter(|&&i| labels[i] == c).count();
                assert!((3..=4).contains(&n), "{n}");
            }
        }
        assert_eq!(folds, stratified_folds(&labels, 3, 7).unwrap());
        assert!(stratified_folds(&labels, 1, 0).is_err());
        assert!(stratified_folds(&labels[..2], 3, 0).is_err());
    }
}
