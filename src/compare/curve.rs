//! The learning curve (`compare --train-sizes`): every pipeline trained on the same nested,
//! stratified, seeded subsets of the training split ([`crate::stats::nested_stratified_subsets`])
//! and evaluated on the same test set; the repeats summarised; McNemar's test per size; and
//! where each CNN overtakes each classical pipeline.
//!
//! Repeat `r` uses the seed `seed + r` twice: to draw its subsets and to train every pipeline
//! (the caller builds the pipelines for that seed; a spec that sets its own `seed` keeps it).
//! The point at the whole training split, repeat 0, is the main run's own model: the subset is
//! then the training split itself, in its order, and the seed is the run's, so training it again
//! would give the same model (training is deterministic for a seed, whatever the threads).

use std::time::Instant;

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::report::{
    Crossover, CurvePoint, CurveSubset, CurveSummary, DatasetFingerprint, LearningCurve,
    PipelineResult, SizePairs,
};
use crate::stats::{accuracy_ci95, nested_stratified_subsets, wilson_interval, Z_95};

use super::fingerprint::sha256_hex;
use super::run::{predict_batched, train};
use super::significance::pairwise;
use super::spec::PipelineSpec;

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct CurveOptions {
    /// Training-set sizes, strictly increasing, each at most the training split's size.
    pub sizes: Vec<usize>,
    /// Seeds per size (each at least 1), aligned with `sizes`.
    pub repeats: Vec<usize>,
    /// Seed of repeat 0 (the run's seed).
    pub seed: u64,
    /// Images per predict call when evaluating.
    pub batch_size: usize,
}

/// The main run of one pipeline: its result and its test predictions.
pub type MainRun<'a> = (&'a PipelineResult, &'a [u32]);

/// How the subsets are drawn, as the report states it.
pub const METHOD: &str =
    "nested stratified subsets of the training split: each class shuffled once \
     (ChaCha8, seed + repeat), per-class counts by the quota method, each size containing the \
     smaller ones; every pipeline of a repeat trains on the same subsets with the same seed";

/// Sizes and their repeats from `--train-sizes`: comma-separated items `SIZE` or `SIZE:K`, a
/// size being a count or a fraction of the `n_train` training images as
/// [`crate::stats::parse_train_sizes`] reads it, `K` that size's repeats (`default_repeats`
/// when absent). Sorted by size.
///
/// Errors: [`Error::InvalidParameter`] (`train_sizes`) for what `parse_train_sizes` refuses, a
/// `K` that is not a count of at least 1, or one size given twice.
pub fn parse_sizes(
    spec: &str,
    n_train: usize,
    default_repeats: usize,
) -> Result<(Vec<usize>, Vec<usize>)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for item in spec.split(',').map(str::trim) {
        let (size, k) = match item.split_once(':') {
            Some((size, k)) => {
                let k = k
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|&k| k >= 1)
                    .ok_or_else(|| {
                        Error::param(
                            "train_sizes",
                            "SIZE:K needs K, the repeats at that size, a count of at least 1",
                            format!("{item:?}"),
                        )
                    })?;
                (size, k)
            }
            None => (item, default_repeats),
        };
        let size = crate::stats::parse_train_sizes(size, n_train)?[0];
        if out.iter().any(|&(s, _)| s == size) {
            return Err(Error::param(
                "train_sizes",
                "each size once",
                format!("{size} twice (from {item:?})"),
            ));
        }
        out.push((size, k));
    }
    out.sort_unstable();
    Ok(out.into_iter().unzip())
}

/// Run the curve. `pipelines(seed)` builds the pipelines for a repeat's seed (the same names,
/// in the same order, as the main run's); `main` holds the main run of each, on the whole of
/// `train` with `opts.seed` and no grid search, reused for the point at the whole training
/// split, repeat 0. `log` receives progress lines.
pub fn learning_curve(
    pipelines: &dyn Fn(u64) -> Result<Vec<PipelineSpec>>,
    train_set: &Dataset,
    test: &Dataset,
    opts: &CurveOptions,
    main: &[MainRun<'_>],
    log: &mut dyn FnMut(&str),
) -> Result<LearningCurve> {
    if opts.repeats.len() != opts.sizes.len() || opts.repeats.contains(&0) {
        return Err(Error::param(
            "repeats",
            "one count of at least 1 per size",
            format!("{:?} for {} sizes", opts.repeats, opts.sizes.len()),
        ));
    }
    let t0 = Instant::now();
    let n_test = test.len() as u64;
    let mut subsets = Vec::new();
    let mut points = Vec::new();
    // Repeat 0's predictions per (size index, pipeline index), for McNemar.
    let mut preds0: Vec<Vec<Vec<u32>>> = vec![Vec::new(); opts.sizes.len()];
    let mut names: Vec<(String, String)> = Vec::new();
    let most = opts.repeats.iter().copied().max().unwrap_or(0);
    for r in 0..most {
        let seed = opts.seed.wrapping_add(r as u64);
        let specs = pipelines(seed)?;
        if r == 0 {
            names = specs
                .iter()
                .map(|s| (s.name.clone(), s.config.kind().to_string()))
                .collect();
        }
        // The sizes this repeat runs; a subset does not depend on the other sizes drawn with
        // it, so leaving sizes out changes none of the others.
        let (sis, sizes): (Vec<usize>, Vec<usize>) = (0..opts.sizes.len())
            .filter(|&i| r < opts.repeats[i])
            .map(|i| (i, opts.sizes[i]))
            .unzip();
        let idx = nested_stratified_subsets(&train_set.labels, &sizes, seed)?;
        for ((&si, &size), idx) in sis.iter().zip(&sizes).zip(&idx) {
            let whole = size == train_set.len();
            let sub = if whole {
                None
            } else {
                Some(train_set.subset(idx))
            };
            let ds = sub.as_ref().unwrap_or(train_set);
            subsets.push(CurveSubset {
                size,
                repeat: r,
                seed,
                fingerprint: DatasetFingerprint::of(ds),
            });
            for spec in &specs {
                let reused = main
                    .iter()
                    .find(|(m, _)| m.name == spec.name)
                    .filter(|_| whole && r == 0);
                let (pred, seconds, epochs_run, best_epoch) = match reused {
                    Some((m, p)) => (
                        p.to_vec(),
                        m.training.seconds,
                        m.training.epochs_run,
                        m.training.best_epoch,
                    ),
                    None => {
                        let mut tagged = |l: &str| log(&format!("curve {size} #{r}: {l}"));
                        let t = train(spec, ds, None, &mut tagged)?;
                        let (pred, _) =
                            predict_batched(t.model.classifier(), test, opts.batch_size)?;
                        (
                            pred,
                            t.training.seconds,
                            t.training.epochs_run,
                            t.training.best_epoch,
                        )
                    }
                };
                let (correct, accuracy, ci) = accuracy_ci95(&pred, &test.labels);
                log(&format!(
                    "curve {size} #{r}: {} accuracy {accuracy:.4} ({seconds:.1} s of training{})",
                    spec.name,
                    if reused.is_some() {
                        ", the main run's model"
                    } else {
                        ""
                    }
                ));
                points.push(CurvePoint {
                    pipeline: spec.name.clone(),
                    size,
                    repeat: r,
                    seed,
                    train_sha256: sha256_hex(ds),
                    correct,
                    accuracy,
                    accuracy_ci95: ci,
                    train_seconds: seconds,
                    epochs_run,
                    best_epoch,
                    from_main_run: reused.is_some(),
                });
                if r == 0 {
                    preds0[si].push(pred);
                }
            }
        }
    }
    let size_index = |s: usize| opts.sizes.iter().position(|&x| x == s).unwrap_or(0);
    let pipe_index = |p: &str| names.iter().position(|(n, _)| n == p).unwrap_or(0);
    subsets.sort_by_key(|s| (size_index(s.size), s.repeat));
    points.sort_by_key(|p| (size_index(p.size), p.repeat, pipe_index(&p.pipeline)));

    let mut summary = Vec::new();
    for &size in &opts.sizes {
        for (name, kind) in &names {
            let mine: Vec<&CurvePoint> = points
                .iter()
                .filter(|p| p.size == size && &p.pipeline == name)
                .collect();
            summary.push(summarise(name, kind, size, &mine, n_test));
        }
    }
    let mut pairs = Vec::new();
    for (si, &size) in opts.sizes.iter().enumerate() {
        let runs: Vec<(&str, &[u32])> = names
            .iter()
            .zip(&preds0[si])
            .map(|((n, _), p)| (n.as_str(), p.as_slice()))
            .collect();
        pairs.push(SizePairs {
            size,
            pairs: pairwise(&runs, &test.labels)?,
        });
    }
    let crossovers = crossovers(&names, &opts.sizes, &summary, &pairs);
    Ok(LearningCurve {
        sizes: opts.sizes.clone(),
        repeats: opts.repeats.clone(),
        method: METHOD.into(),
        subsets,
        points,
        summary,
        pairs,
        crossovers,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Mean, sample standard deviation, pooled Wilson interval and mean training time of one
/// pipeline's points at one size.
fn summarise(
    name: &str,
    kind: &str,
    size: usize,
    pts: &[&CurvePoint],
    n_test: u64,
) -> CurveSummary {
    let k = pts.len();
    let mean = pts.iter().map(|p| p.accuracy).sum::<f64>() / k.max(1) as f64;
    let std = (k > 1).then(|| {
        (pts.iter().map(|p| (p.accuracy - mean).powi(2)).sum::<f64>() / (k - 1) as f64).sqrt()
    });
    let correct: u64 = pts.iter().map(|p| p.correct).sum();
    let (lo, hi) = wilson_interval(correct, n_test * k as u64, Z_95);
    CurveSummary {
        pipeline: name.into(),
        kind: kind.into(),
        size,
        repeats: k,
        mean_accuracy: mean,
        std_accuracy: std,
        accuracy_ci95: [lo, hi],
        mean_train_seconds: pts.iter().map(|p| p.train_seconds).sum::<f64>() / k.max(1) as f64,
    }
}

/// For every CNN × classical pair of `names` (name, kind): the sizes where the CNN's mean
/// accuracy is strictly higher, the last crossing (classical ahead or level at `a`, CNN ahead
/// at `b` and at every size after), its log-linear estimate, and a sentence.
pub fn crossovers(
    names: &[(String, String)],
    sizes: &[usize],
    summary: &[CurveSummary],
    pairs: &[SizePairs],
) -> Vec<Crossover> {
    let mean = |p: &str, s: usize| {
        summary
            .iter()
            .find(|c| c.pipeline == p && c.size == s)
            .map_or(f64::NAN, |c| c.mean_accuracy)
    };
    let p_at = |a: &str, b: &str, s: usize| {
        pairs
            .iter()
            .find(|sp| sp.size == s)
            .and_then(|sp| {
                sp.pairs
                    .iter()
                    .find(|t| (t.a == a && t.b == b) || (t.a == b && t.b == a))
            })
            .map(|t| t.p_value)
    };
    let mut out = Vec::new();
    for (cnn, _) in names.iter().filter(|(_, k)| k == "cnn") {
        for (cls, _) in names.iter().filter(|(_, k)| k == "classical") {
            let diff: Vec<f64> = sizes.iter().map(|&s| mean(cnn, s) - mean(cls, s)).collect();
            let ahead: Vec<usize> = sizes
                .iter()
                .zip(&diff)
                .filter(|(_, &d)| d > 0.0)
                .map(|(&s, _)| s)
                .collect();
            let (Some(&first), Some(&last)) = (sizes.first(), sizes.last()) else {
                continue;
            };
            let pct = |s: usize| {
                format!(
                    "{cls} {:.4} vs {cnn} {:.4} at {s}",
                    mean(cls, s),
                    mean(cnn, s)
                )
            };
            let p_text = |s: usize| {
                p_at(cnn, cls, s).map_or(String::new(), |p| {
                    format!(
                        ", McNemar p = {} on repeat 0",
                        crate::report::render::p_value(p)
                    )
                })
            };
            let (between, estimate, statement) = if ahead.len() == sizes.len() {
                (
                    None,
                    None,
                    format!(
                        "{cnn} is ahead of {cls} at every size run, from {first} to {last} training images ({}{}; {}{}).",
                        pct(first),
                        p_text(first),
                        pct(last),
                        p_text(last)
                    ),
                )
            } else if diff.last().is_some_and(|&d| d > 0.0) {
                // The last size where the classical pipeline is ahead or level.
                let i = diff
                    .iter()
                    .rposition(|&d| d <= 0.0)
                    .expect("not ahead everywhere");
                let (a, b) = (sizes[i], sizes[i + 1]);
                let (da, db) = (diff[i], diff[i + 1]);
                let t = if db - da > 0.0 { -da / (db - da) } else { 0.0 };
                let est = ((a as f64).ln() + t * ((b as f64).ln() - (a as f64).ln()))
                    .exp()
                    .round() as usize;
                let earlier = ahead.iter().filter(|&&s| s < a).count();
                (
                    Some([a, b]),
                    Some(est),
                    format!(
                        "{cnn} overtakes {cls} between {a} and {b} training images (about {est} by log-linear interpolation): {}{}; {}{}{}.",
                        pct(a),
                        p_text(a),
                        pct(b),
                        p_text(b),
                        if earlier > 0 {
                            format!("; the curves also cross below {a}")
                        } else {
                            String::new()
                        }
                    ),
                )
            } else {
                (
                    None,
                    None,
                    format!(
                        "{cnn} does not overtake {cls} within the sizes run ({first} to {last} training images): {}{}{}.",
                        pct(last),
                        p_text(last),
                        if ahead.is_empty() {
                            String::new()
                        } else {
                            format!(
                                "; {cnn} is ahead only at {}",
                                crate::report::render::list(&ahead)
                            )
                        }
                    ),
                )
            };
            out.push(Crossover {
                cnn: cnn.clone(),
                classical: cls.clone(),
                cnn_ahead_at: ahead,
                overtakes_between: between,
                estimate,
                statement,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(rows: &[(&str, usize, f64)]) -> Vec<CurveSummary> {
        rows.iter()
            .map(|&(p, size, acc)| CurveSummary {
                pipeline: p.into(),
                kind: if p.starts_with("cnn") {
                    "cnn"
                } else {
                    "classical"
                }
                .into(),
                size,
                repeats: 1,
                mean_accuracy: acc,
                std_accuracy: None,
                accuracy_ci95: [acc - 0.01, acc + 0.01],
                mean_train_seconds: 1.0,
            })
            .collect()
    }

    /// `statement` contains `part`.
    fn says(statement: &str, part: &str) {
        assert!(statement.contains(part), "{statement}");
    }

    /// The summaries of `hog` and `cnn` at `sizes`, interleaved by size.
    fn hog_vs_cnn(sizes: &[usize], hog: &[f64], cnn: &[f64]) -> Vec<CurveSummary> {
        let rows: Vec<(&str, usize, f64)> = sizes
            .iter()
            .zip(hog.iter().zip(cnn))
            .flat_map(|(&n, (&h, &c))| [("hog", n, h), ("cnn", n, c)])
            .collect();
        summary(&rows)
    }

    fn names() -> Vec<(String, String)> {
        vec![
            ("hog".to_string(), "classical".to_string()),
            ("cnn".to_string(), "cnn".to_string()),
        ]
    }

    #[test]
    fn crossing_is_bracketed_and_interpolated_in_log_size() {
        let sizes = [100, 1000, 10000];
        let s = hog_vs_cnn(&sizes, &[0.80, 0.85, 0.88], &[0.70, 0.84, 0.91]);
        let c = crossovers(&names(), &sizes, &s, &[]);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].overtakes_between, Some([1000, 10000]));
        assert_eq!(c[0].cnn_ahead_at, vec![10000]);
        // diff -0.01 at 1000, +0.03 at 10000: a quarter of the way in log10, 10^3.25.
        assert_eq!(c[0].estimate, Some(1778));
        assert!(c[0]
            .statement
            .starts_with("cnn overtakes hog between 1000 and 10000"));
        assert!(!c[0].statement.contains("also cross"));
    }

    #[test]
    fn ahead_everywhere_nowhere_and_in_the_middle() {
        let sizes = [100, 1000, 10000];
        let everywhere = hog_vs_cnn(&sizes, &[0.5, 0.5, 0.5], &[0.6, 0.6, 0.6]);
        let c = &crossovers(&names(), &sizes, &everywhere, &[])[0];
        assert_eq!((c.overtakes_between, c.estimate), (None, None));
        assert!(c.statement.contains("ahead of hog at every size run"));
        // Level counts as not ahead; ahead only in the middle is not an overtaking.
        let middle = hog_vs_cnn(&sizes, &[0.5, 0.5, 0.7], &[0.5, 0.6, 0.6]);
        let c = &crossovers(&names(), &sizes, &middle, &[])[0];
        assert_eq!(c.cnn_ahead_at, vec![1000]);
        assert_eq!(c.overtakes_between, None);
        assert!(c.statement.contains("does not overtake"), "{}", c.statement);
        says(&c.statement, "ahead only at 1000");
        // Ahead, behind, ahead: the last crossing, and a word about the earlier one.
        let twice = hog_vs_cnn(&sizes, &[0.5, 0.6, 0.7], &[0.6, 0.6, 0.8]);
        let c = &crossovers(&names(), &sizes, &twice, &[])[0];
        assert_eq!(c.overtakes_between, Some([1000, 10000]));
        assert_eq!(c.estimate, Some(1000), "level at a: the crossing is a");
        says(&c.statement, "also cross below 1000");
    }

    #[test]
    fn p_values_come_from_the_size_pairs_in_either_order() {
        let sizes = [100, 1000];
        let s = hog_vs_cnn(&sizes, &[0.8, 0.8], &[0.7, 0.9]);
        let pairs: Vec<SizePairs> = sizes
            .iter()
            .map(|&size| SizePairs {
                size,
                pairs: vec![crate::report::PairTest {
                    a: "hog".into(),
                    b: "cnn".into(),
                    a_only_right: 1,
                    b_only_right: 2,
                    p_value: if size == 100 { 0.5 } else { 0.0123 },
                }],
            })
            .collect();
        let c = &crossovers(&names(), &sizes, &s, &pairs)[0];
        says(&c.statement, "p = 0.5000 on repeat 0");
        says(&c.statement, "p = 0.0123 on repeat 0");
    }

    #[test]
    fn sizes_with_their_repeats() {
        assert_eq!(
            parse_sizes("6000, 600:5,0.5:1", 60000, 3).unwrap(),
            (vec![600, 6000, 30000], vec![5, 3, 1])
        );
        for bad in ["600:0", "600:x", "600:", "600,0.01", "0", "600,70000"] {
            let e = parse_sizes(bad, 60000, 3).unwrap_err().to_string();
            assert!(e.contains("train_sizes"), "{bad}: {e}");
        }
    }

    #[test]
    fn summary_mean_sample_std_and_pooled_interval() {
        let pt = |acc: f64, correct: u64| CurvePoint {
            pipeline: "p".into(),
            size: 10,
            repeat: 0,
            seed: 0,
            train_sha256: String::new(),
            correct,
            accuracy: acc,
            accuracy_ci95: [0.0, 1.0],
            train_seconds: acc * 10.0,
            epochs_run: None,
            best_epoch: None,
            from_main_run: false,
        };
        let (a, b) = (pt(0.6, 6), pt(0.8, 8));
        let s = summarise("p", "classical", 10, &[&a, &b], 10);
        assert!((s.mean_accuracy - 0.7).abs() < 1e-12);
        assert!((s.std_accuracy.unwrap() - 0.02f64.sqrt()).abs() < 1e-12);
        assert_eq!(s.accuracy_ci95, {
            let (l, h) = wilson_interval(14, 20, Z_95);
            [l, h]
        });
        assert!((s.mean_train_seconds - 7.0).abs() < 1e-12);
        assert_eq!(
            summarise("p", "classical", 10, &[&a], 10).std_accuracy,
            None
        );
    }
}
