//! Classification metrics: accuracy, confusion matrix, per-class precision / recall / F1 /
//! support with macro and weighted averages, printed like scikit-learn's
//! `classification_report` and serialisable as JSON.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Scores of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScores {
    /// Class name.
    pub name: String,
    /// TP / (TP + FP); 0 when nothing was predicted as this class (scikit-learn's default).
    pub precision: f64,
    /// TP / (TP + FN); 0 when the class has no samples.
    pub recall: f64,
    /// Harmonic mean of precision and recall; 0 when both are 0.
    pub f1: f64,
    /// Number of true samples of the class.
    pub support: usize,
}

/// Averages over classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Averages {
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1.
    pub f1: f64,
}

/// Everything about one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Fraction of correct predictions.
    pub accuracy: f64,
    /// Number of samples.
    pub samples: usize,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
    /// One entry per class, in label order.
    pub per_class: Vec<ClassScores>,
    /// Unweighted mean over classes.
    pub macro_avg: Averages,
    /// Mean over classes weighted by support.
    pub weighted_avg: Averages,
}

impl Report {
    /// Compare `predicted` with `truth` (labels index `class_names`).
    pub fn new(truth: &[u32], predicted: &[u32], class_names: &[String]) -> Result<Report> {
        if truth.len() != predicted.len() {
            return Err(Error::ShapeMismatch {
                what: "predictions".into(),
                expected: format!("{} labels", truth.len()),
                got: format!("{} predictions", predicted.len()),
            });
        }
        let k = class_names.len();
        let mut confusion = vec![vec![0usize; k]; k];
        for (i, (&t, &p)) in truth.iter().zip(predicted).enumerate() {
            if t as usize >= k || p as usize >= k {
                return Err(Error::ShapeMismatch {
                    what: format!("label of sample {i}"),
                    expected: format!("< {k} classes"),
                    got: format!("true {t}, predicted {p}"),
                });
            }
            confusion[t as usize][p as usize] += 1;
        }
        let n = truth.len();
        let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
        let per_class: Vec<ClassScores> = (0..k)
            .map(|c| {
                let tp = confusion[c][c] as f64;
                let support: usize = confusion[c].iter().sum();
                let predicted_c: usize = (0..k).map(|t| confusion[t][c]).sum();
                let precision = if predicted_c > 0 {
                    tp / predicted_c as f64
                } else {
                    0.0
                };
                let recall = if support > 0 {
                    tp / support as f64
                } else {
                    0.0
                };
                let f1 = if precision + recall > 0.0 {
                    2.0 * precision * recall / (precision + recall)
                } else {
                    0.0
                };
                ClassScores {
                    name: class_names[c].clone(),
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect();
        // Macro averages run over the classes that occur in the labels or the predictions, as
        // scikit-learn's do by default: a model's class absent from a test subset and never
        // predicted is not a class of this evaluation.
        let present: Vec<&ClassScores> = (0..k)
            .filter(|&c| per_class[c].support > 0 || (0..k).any(|t| confusion[t][c] > 0))
            .map(|c| &per_class[c])
            .collect();
        let mean = |f: &dyn Fn(&ClassScores) -> f64| {
            if present.is_empty() {
                0.0
            } else {
                present.iter().map(|c| f(c)).sum::<f64>() / present.len() as f64
            }
        };
        let wmean = |f: &dyn Fn(&ClassScores) -> f64| {
            if n == 0 {
                0.0
            } else {
                per_class
                    .iter()
                    .map(|c| f(c) * c.support as f64)
                    .sum::<f64>()
                    / n as f64
            }
        };
        Ok(Report {
            accuracy: fraction(correct, n),
            samples: n,
            macro_avg: Averages {
                precision: mean(&|c| c.precision),
                recall: mean(&|c| c.recall),
                f1: mean(&|c| c.f1),
            },
            weighted_avg: Averages {
                precision: wmean(&|c| c.precision),
                recall: wmean(&|c| c.recall),
                f1: wmean(&|c| c.f1),
            },
            confusion,
            per_class,
        })
    }

    /// The report as scikit-learn's `classification_report` prints it (4 decimals).
    pub fn classification_report(&self) -> String {
        let width = self
            .per_class
            .iter()
            .map(|c| c.name.chars().count())
            .chain(["weighted avg".len()])
            .max()
            .unwrap_or(12);
        let mut s = format!(
            "{:>w$} {:>9} {:>9} {:>9} {:>9}\n\n",
            "",
            "precision",
            "recall",
            "f1-score",
            "support",
            w = width
        );
        for c in &self.per_class {
            s += &format!(
                "{:>w$} {:>9.4} {:>9.4} {:>9.4} {:>9}\n",
                c.name,
                c.precision,
                c.recall,
                c.f1,
                c.support,
                w = width
            );
        }
        s += &format!(
            "\n{:>w$} {:>9} {:>9} {:>9.4} {:>9}\n",
            "accuracy",
            "",
            "",
            self.accuracy,
            self.samples,
            w = width
        );
        for (name, a) in [
            ("macro avg", &self.macro_avg),
            ("weighted avg", &self.weighted_avg),
        ] {
            s += &format!(
                "{:>w$} {:>9.4} {:>9.4} {:>9.4} {:>9}\n",
                name,
                a.precision,
                a.recall,
                a.f1,
                self.samples,
                w = width
            );
        }
        s
    }
}

/// `part / whole`, 0 for an empty whole.
fn fraction(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Fraction of `predicted` equal to `truth`, position by position (0 for none).
pub fn accuracy(predicted: &[u32], truth: &[u32]) -> f64 {
    let correct = predicted.iter().zip(truth).filter(|(a, b)| a == b).count();
    fraction(correct, predicted.len())
}

/// Median of `values` (any order; the mean of the two middle values for an even count, 0 for
/// none).
pub fn median(values: &[f64]) -> f64 {
    let mut s = values.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => s[n / 2],
        _ => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Nearest-rank percentile `q` (in [0, 1]) of `sorted` (ascending; 0 for none).
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_percentile_and_accuracy() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 3.0, 4.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.9), 9.0);
        assert_eq!(percentile(&v, 1.0), 10.0);
        assert_eq!(accuracy(&[1, 2, 3, 4], &[1, 2, 0, 4]), 0.75);
        assert_eq!(accuracy(&[], &[]), 0.0);
    }

    fn names(k: usize) -> Vec<String> {
        (0..k).map(|i| format!("c{i}")).collect()
    }

    #[test]
    fn matches_hand_computed_values() {
        // truth: 0 0 1 1 2 ; pred: 0 1 1 1 0
        let r = Report::new(&[0, 0, 1, 1, 2], &[0, 1, 1, 1, 0], &names(3)).unwrap();
        assert!((r.accuracy - 0.6).abs() < 1e-12);
        assert_eq!(
            r.confusion,
            vec![vec![1, 1, 0], vec![0, 2, 0], vec![1, 0, 0]]
        );
        let c0 = &r.per_class[0];
        assert!((c0.precision - 0.5).abs() < 1e-12 && (c0.recall - 0.5).abs() < 1e-12);
        let c1 = &r.per_class[1];
        assert!((c1.precision - 2.0 / 3.0).abs() < 1e-12 && (c1.recall - 1.0).abs() < 1e-12);
        assert!((c1.f1 - 0.8).abs() < 1e-12);
        assert_eq!(r.per_class[2].f1, 0.0);
        assert!((r.macro_avg.f1 - (0.5 + 0.8 + 0.0) / 3.0).abs() < 1e-12);
        assert!((r.weighted_avg.f1 - (0.5 * 2.0 + 0.8 * 2.0) / 5.0).abs() < 1e-12);
        let text = r.classification_report();
        assert!(
            text.contains("accuracy") && text.contains("0.6000"),
            "{text}"
        );
    }

    /// Defect class: macro averages counted classes absent from both the labels and the
    /// predictions (scikit-learn's default leaves them out).
    #[test]
    fn macro_averages_skip_classes_absent_from_labels_and_predictions() {
        // Class 2 of 4 occurs nowhere; class 3 only as a prediction.
        let r = Report::new(&[0, 0, 1, 1], &[0, 1, 1, 3], &names(4)).unwrap();
        let f1 = [2.0 / 3.0, 0.5, 0.0]; // classes 0, 1, 3
        let want = f1.iter().sum::<f64>() / 3.0;
        assert!((r.macro_avg.f1 - want).abs() < 1e-12, "{}", r.macro_avg.f1);
        assert_eq!(r.per_class.len(), 4);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(Report::new(&[0, 1], &[0], &names(2)).is_err());
        assert!(Report::new(&[0, 5], &[0, 1], &names(2)).is_err());
    }
}
