//! The console table and `report.md`, rendered from a [`CompareReport`]. Every number is
//! formatted by the functions here, so the console, the Markdown and the HTML show the JSON's
//! numbers rounded the same way (the `compare` test parses them back).

use std::fmt::Write;

use super::{CompareReport, DataInfo, LearningCurve, PipelineResult};
use crate::metrics::Report;

/// Items joined by `, ` (`100, 1000, 10000`).
pub fn list<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Accuracy, F1, precision, recall: 4 decimals.
pub fn score(x: f64) -> String {
    format!("{x:.4}")
}
/// Seconds: 2 decimals.
pub fn secs(x: f64) -> String {
    format!("{x:.2}")
}
/// Images per second: whole numbers.
pub fn rate(x: f64) -> String {
    format!("{x:.0}")
}
/// Milliseconds: 3 decimals.
pub fn ms(x: f64) -> String {
    format!("{x:.3}")
}
/// Bytes as megabytes (10^6): 2 decimals.
pub fn mb(bytes: u64) -> String {
    format!("{:.2}", bytes as f64 / 1e6)
}
/// Optional bytes as megabytes, `-` when absent.
pub fn mb_opt(bytes: Option<u64>) -> String {
    bytes.map_or("-".into(), mb)
}

/// Classifier input dimension: the last stage before the scores / logits.
pub fn classifier_dim(p: &PipelineResult) -> usize {
    let n = p.dims.len();
    if n >= 2 {
        p.dims[n - 2].dim
    } else {
        p.dims.last().map_or(0, |d| d.dim)
    }
}

/// Headline columns shared by the console, Markdown and HTML tables.
pub const SUMMARY_HEADER: [&str; 12] = [
    "pipeline",
    "kind",
    "accuracy",
    "95% CI",
    "macro-F1",
    "train s",
    "images/s",
    "latency ms",
    "model MB",
    "peak RSS MB",
    "params",
    "features",
];

/// One pipeline's headline cells, in [`SUMMARY_HEADER`] order.
pub fn summary_cells(p: &PipelineResult) -> [String; 12] {
    [
        p.name.clone(),
        p.kind.clone(),
        score(p.accuracy),
        format!(
            "{}-{}",
            score(p.accuracy_ci95[0]),
            score(p.accuracy_ci95[1])
        ),
        score(p.macro_f1),
        secs(p.training.seconds),
        rate(p.inference.images_per_s),
        ms(p.inference.latency_ms_median),
        mb(p.model_bytes),
        mb_opt(p.memory.peak_rss_bytes),
        p.params.to_string(),
        classifier_dim(p).to_string(),
    ]
}

/// Columns of the pairwise significance table (Markdown and HTML).
pub const PAIR_HEADER: [&str; 6] = [
    "pipeline A",
    "pipeline B",
    "accuracy A - B",
    "only A right",
    "only B right",
    "McNemar exact p",
];

/// What the pairwise table means.
pub const PAIR_NOTE: &str = "*only A right* / *only B right*: test images one pipeline classifies correctly and the other does not; the accuracy difference is their difference over the test images. *McNemar exact p*: two-sided exact McNemar test (a binomial test of the discordant images at 1/2): the chance of a split at least this uneven if the two pipelines were equally accurate on images like these. *95% CI* in the summary: Wilson score interval of each accuracy.";

/// A p-value as shown: 4 significant digits, scientific below 1e-4.
pub fn p_value(p: f64) -> String {
    if p >= 1e-4 {
        format!("{p:.4}")
    } else {
        format!("{p:.3e}")
    }
}

/// The rows of the pairwise table, in [`PAIR_HEADER`] order.
pub fn pair_rows(r: &CompareReport) -> Vec<Vec<String>> {
    let acc = |name: &str| {
        r.pipelines
            .iter()
            .find(|p| p.name == name)
            .map_or(0.0, |p| p.accuracy)
    };
    r.pairs
        .iter()
        .map(|t| {
            vec![
                t.a.clone(),
                t.b.clone(),
                format!("{:+.4}", acc(&t.a) - acc(&t.b)),
                t.a_only_right.to_string(),
                t.b_only_right.to_string(),
                p_value(t.p_value),
            ]
        })
        .collect()
}

/// Columns of the learning-curve table (Markdown and HTML).
pub const CURVE_HEADER: [&str; 8] = [
    "train images",
    "pipeline",
    "repeats",
    "mean accuracy",
    "std",
    "95% CI (pooled)",
    "train s (mean)",
    "subset sha256 (repeat 0)",
];

/// What the learning-curve table means.
pub const CURVE_NOTE: &str = "Every pipeline is trained again on each nested, stratified, seeded subset of the training split and tested on the same test images. *std*: sample standard deviation of the accuracy over the repeats (their subsets and training seeds), `-` for one repeat. *95% CI (pooled)*: Wilson interval of all repeats' correct test images over all their test images, the test set's sampling noise (the chart's bands). *subset sha256*: the fingerprint of the training images, the same for every pipeline at a size and repeat (report.json has every repeat's).";

/// The rows of the learning-curve table, in [`CURVE_HEADER`] order: one per size and
/// pipeline.
pub fn curve_rows(c: &LearningCurve) -> Vec<Vec<String>> {
    c.summary
        .iter()
        .map(|s| {
            let sha = c
                .points
                .iter()
                .find(|p| p.size == s.size && p.repeat == 0 && p.pipeline == s.pipeline)
                .map_or("-".to_string(), |p| p.train_sha256[..16].to_string());
            vec![
                s.size.to_string(),
                s.pipeline.clone(),
                s.repeats.to_string(),
                score(s.mean_accuracy),
                s.std_accuracy.map_or("-".into(), score),
                format!(
                    "{}-{}",
                    score(s.accuracy_ci95[0]),
                    score(s.accuracy_ci95[1])
                ),
                secs(s.mean_train_seconds),
                sha,
            ]
        })
        .collect()
}

/// Columns of the per-size McNemar table.
pub const CURVE_PAIR_HEADER: [&str; 6] = [
    "train images",
    "pipeline A",
    "pipeline B",
    "only A right",
    "only B right",
    "McNemar exact p",
];

/// The rows of the per-size McNemar table ([`CURVE_PAIR_HEADER`]): repeat 0 at every size.
pub fn curve_pair_rows(c: &LearningCurve) -> Vec<Vec<String>> {
    c.pairs
        .iter()
        .flat_map(|sp| {
            sp.pairs.iter().map(move |t| {
                vec![
                    sp.size.to_string(),
                    t.a.clone(),
                    t.b.clone(),
                    t.a_only_right.to_string(),
                    t.b_only_right.to_string(),
                    p_value(t.p_value),
                ]
            })
        })
        .collect()
}

/// The learning curve in the console: one line per size, then the crossover sentences.
fn curve_lines(c: &LearningCurve) -> Vec<String> {
    let several = c.repeats.iter().any(|&k| k > 1);
    let mut out = vec![format!(
        "learning curve (repeats per size: {}; mean test accuracy{}):",
        list(&c.repeats),
        if several { ", ± std over repeats" } else { "" }
    )];
    for &size in &c.sizes {
        let cells: Vec<String> = c
            .summary
            .iter()
            .filter(|s| s.size == size)
            .map(|s| match s.std_accuracy {
                Some(sd) => format!("{} {} ± {}", s.pipeline, score(s.mean_accuracy), score(sd)),
                None => format!("{} {}", s.pipeline, score(s.mean_accuracy)),
            })
            .collect();
        out.push(format!("  {size:>7}: {}", cells.join(", ")));
    }
    out.extend(c.crossovers.iter().map(|x| x.statement.clone()));
    out
}

/// Columns of the deployment table (`compare --deploy`).
pub const DEPLOY_HEADER: [&str; 10] = [
    "pipeline",
    "variant",
    "accuracy",
    "vs pipeline (points)",
    "params",
    "model MB",
    "images/s",
    "x pipeline",
    "latency ms",
    "prepare s",
];

/// What the deployment table means.
pub const DEPLOY_NOTE: &str = "Every pipeline as trained, and each smaller variant of a CNN, measured on the same test images, batch size, latency samples and threads in the same run: *int8 static* (batch norm folded, int8 weights per output channel, u8 activations calibrated by min/max on the first training images, i32 sums) and *int8 dynamic* (activation codes from each image at run time); *pruned* (structured pruning of the conv filters by L1 norm, then fine-tuning on the same training split with the CNN's own recipe). *prepare s*: quantising, or pruning and fine-tuning.";

/// Whether any pipeline has deployment variants.
pub fn has_variants(r: &CompareReport) -> bool {
    r.pipelines.iter().any(|p| !p.variants.is_empty())
}

/// The rows of the deployment table ([`DEPLOY_HEADER`]): every pipeline as trained, each
/// followed by its variants.
pub fn deploy_rows(r: &CompareReport) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for p in &r.pipelines {
        rows.push(vec![
            p.name.clone(),
            "as trained".into(),
            score(p.accuracy),
            "-".into(),
            p.params.to_string(),
            mb(p.model_bytes),
            rate(p.inference.images_per_s),
            "-".into(),
            ms(p.inference.latency_ms_median),
            "-".into(),
        ]);
        for v in &p.variants {
            rows.push(vec![
                p.name.clone(),
                v.name.clone(),
                score(v.accuracy),
                format!("{:+.2}", 100.0 * (v.accuracy - p.accuracy)),
                v.params.to_string(),
                mb(v.model_bytes),
                rate(v.images_per_s),
                format!(
                    "{:.2}",
                    v.images_per_s / p.inference.images_per_s.max(1e-12)
                ),
                ms(v.latency_ms_median),
                secs(v.prepare_seconds),
            ]);
        }
    }
    rows
}

/// One console line per pair.
fn pair_lines(r: &CompareReport) -> Vec<String> {
    r.pairs
        .iter()
        .map(|t| {
            format!(
                "McNemar exact: {} vs {}: only {} right on {}, only {} right on {}: p = {}",
                t.a,
                t.b,
                t.a,
                t.a_only_right,
                t.b,
                t.b_only_right,
                p_value(t.p_value)
            )
        })
        .collect()
}

/// The short table `compare` prints.
pub fn console(r: &CompareReport) -> String {
    let rows: Vec<[String; 12]> = r.pipelines.iter().map(summary_cells).collect();
    let width = |j: usize| {
        rows.iter()
            .map(|row| row[j].chars().count())
            .chain([SUMMARY_HEADER[j].len()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..SUMMARY_HEADER.len()).map(width).collect();
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (j, c) in cells.iter().enumerate() {
            if j > 0 {
                s.push_str("  ");
            }
            if j < 2 {
                let _ = write!(s, "{:<w$}", c, w = widths[j]);
            } else {
                let _ = write!(s, "{:>w$}", c, w = widths[j]);
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(&SUMMARY_HEADER.map(String::from));
    for row in &rows {
        out += &line(row);
    }
    let d = &r.data;
    let _ = writeln!(
        out,
        "test: {} images, sha256 {} | train: {} images | seed {} | {} threads | images/s at batch {}, latency = median of {} single-image calls",
        d.test.images,
        &d.test.sha256[..16],
        d.train.images,
        r.run.seed,
        r.run.threads,
        r.pipelines.first().map_or(0, |p| p.inference.batch_size),
        r.pipelines.first().map_or(0, |p| p.inference.latency_samples),
    );
    for line in pair_lines(r) {
        let _ = writeln!(out, "{line}");
    }
    for line in r.learning_curve.iter().flat_map(curve_lines) {
        let _ = writeln!(out, "{line}");
    }
    for p in &r.pipelines {
        for v in &p.variants {
            let _ = writeln!(
                out,
                "{} {}: accuracy {} ({:+.2} points), {} params, {} MB, {} images/s ({:.2}x), latency {} ms",
                p.name,
                v.name,
                score(v.accuracy),
                100.0 * (v.accuracy - p.accuracy),
                v.params,
                mb(v.model_bytes),
                rate(v.images_per_s),
                v.images_per_s / p.inference.images_per_s.max(1e-12),
                ms(v.latency_ms_median)
            );
        }
    }
    out
}

fn md_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('\n', " ")
}

fn md_table(out: &mut String, header: &[&str], rows: &[Vec<String>], right_from: usize) {
    let _ = writeln!(
        out,
        "| {} |",
        header
            .iter()
            .map(|h| md_escape(h))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let seps: Vec<&str> = (0..header.len())
        .map(|j| if j >= right_from { "---:" } else { "---" })
        .collect();
    let _ = writeln!(out, "| {} |", seps.join(" | "));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| md_escape(c)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out.push('\n');
}

/// `report.md`.
pub fn markdown(r: &CompareReport) -> String {
    let mut o = String::new();
    let d = &r.data;
    let _ = writeln!(o, "# hogsvm compare: classical pipeline vs CNN\n");
    let _ = writeln!(
        o,
        "{} {} on {} ({} threads, {} CPUs, {}), seed {}. Train: {} images from `{}`; test: {} images ({}). Every pipeline was trained on the same training set and evaluated on the same test images (SHA-256 `{}`).\n",
        r.generator.name,
        r.generator.version,
        r.run.date_utc,
        r.run.threads,
        r.run.cpus,
        r.run.platform,
        r.run.seed,
        d.train.images,
        d.train_path,
        d.test.images,
        d.test_source,
        d.test.sha256
    );
    let _ = writeln!(o, "## Summary\n");
    let rows: Vec<Vec<String>> = r
        .pipelines
        .iter()
        .map(|p| summary_cells(p).to_vec())
        .collect();
    md_table(&mut o, &SUMMARY_HEADER, &rows, 2);
    let _ = writeln!(
        o,
        "*train s*: training time (sum of the stages below; a `--grid` search is not included). *images/s*: the test set predicted in batches of {} images. *latency ms*: median of {} single-image predictions. *model MB*: bytes of the saved model file / 10^6. *peak RSS MB*: peak resident memory of the whole process during the pipeline (see notes). *params*: numbers stored in the model. *features*: the classifier's input dimension. docs/REPORT.md defines each number.\n",
        r.pipelines.first().map_or(0, |p| p.inference.batch_size),
        r.pipelines.first().map_or(0, |p| p.inference.latency_samples),
    );
    if !r.pairs.is_empty() {
        let _ = writeln!(o, "## Is the difference real?\n");
        md_table(&mut o, &PAIR_HEADER, &pair_rows(r), 2);
        let _ = writeln!(o, "{}\n", PAIR_NOTE);
    }
    if has_variants(r) {
        let _ = writeln!(o, "## Deployment: smaller CNNs\n");
        md_table(&mut o, &DEPLOY_HEADER, &deploy_rows(r), 2);
        let _ = writeln!(o, "{}\n", DEPLOY_NOTE);
    }
    if let Some(c) = &r.learning_curve {
        let _ = writeln!(o, "## Learning curve: when does the CNN pay?\n");
        for x in &c.crossovers {
            let _ = writeln!(o, "* {}", x.statement);
        }
        if !c.crossovers.is_empty() {
            o.push('\n');
        }
        md_table(&mut o, &CURVE_HEADER, &curve_rows(c), 2);
        let _ = writeln!(o, "{}\n", CURVE_NOTE);
        let _ = writeln!(o, "McNemar's exact test at each size (repeat 0):\n");
        md_table(&mut o, &CURVE_PAIR_HEADER, &curve_pair_rows(c), 3);
        let _ = writeln!(
            o,
            "Subsets: {}. The curve took {} s beyond the main run.\n",
            c.method,
            secs(c.seconds)
        );
    }
    let _ = writeln!(o, "## Reproduce\n");
    let _ = writeln!(o, "```\n{}\n```\n", r.run.command);
    let _ = writeln!(
        o,
        "hogsvm {}, seed {}, {} threads, {}; started {}; data loaded in {} s; whole run {} s.\n",
        r.generator.version,
        r.run.seed,
        r.run.threads,
        r.run.platform,
        r.run.date_utc,
        secs(r.run.load_seconds),
        secs(r.run.total_seconds)
    );
    let _ = writeln!(o, "## Data\n");
    let rows = data_rows(d, |sha| format!("`{sha}`"));
    md_table(&mut o, &DATA_HEADER, &rows, 99);
    let _ = writeln!(
        o,
        "Images {}x{}; classes: {}. The hash covers the image size, the pixels and the labels (docs/REPORT.md).\n",
        d.rows,
        d.cols,
        d.class_names.join(", ")
    );
    for p in &r.pipelines {
        pipeline_md(&mut o, p, &d.class_names);
    }
    if !r.notes.is_empty() {
        let _ = writeln!(o, "## Notes\n");
        for n in &r.notes {
            let _ = writeln!(o, "* {n}");
        }
        o.push('\n');
    }
    o
}

/// Header of the data table.
pub const DATA_HEADER: [&str; 4] = ["set", "images", "per class", "sha256"];

/// Rows of the data table ([`DATA_HEADER`]): the training and the test set, their hashes
/// written by `sha`.
pub fn data_rows(d: &DataInfo, sha: impl Fn(&str) -> String) -> Vec<Vec<String>> {
    [("train", &d.train), ("test", &d.test)]
        .iter()
        .map(|(name, f)| {
            vec![
                name.to_string(),
                f.images.to_string(),
                f.class_counts
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
                sha(&f.sha256),
            ]
        })
        .collect()
}

/// Header of the per-class table.
pub const PER_CLASS_HEADER: [&str; 5] = ["class", "precision", "recall", "F1", "support"];

/// Rows of the per-class table ([`PER_CLASS_HEADER`]): one per class, then the macro and the
/// weighted averages over all test images, their names written by `avg_name`.
pub fn per_class_rows(m: &Report, avg_name: impl Fn(&str) -> String) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = m
        .per_class
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                score(c.precision),
                score(c.recall),
                score(c.f1),
                c.support.to_string(),
            ]
        })
        .collect();
    for (name, a) in [
        ("macro avg", &m.macro_avg),
        ("weighted avg", &m.weighted_avg),
    ] {
        rows.push(vec![
            avg_name(name),
            score(a.precision),
            score(a.recall),
            score(a.f1),
            m.samples.to_string(),
        ]);
    }
    rows
}

/// The "speed, size, memory" rows of a pipeline, as the Markdown and HTML reports show them.
pub fn speed_size_memory(p: &PipelineResult) -> Vec<Vec<String>> {
    let mut rows = vec![
        vec![
            format!("throughput (batch {})", p.inference.batch_size),
            format!(
                "{} images/s ({} s for {} images)",
                rate(p.inference.images_per_s),
                secs(p.inference.batch_seconds),
                p.test_images
            ),
        ],
        vec![
            "latency (batch 1)".into(),
            format!(
                "median {} ms, p90 {} ms over {} calls",
                ms(p.inference.latency_ms_median),
                ms(p.inference.latency_ms_p90),
                p.inference.latency_samples
            ),
        ],
        vec![
            "model file".into(),
            format!("{} bytes ({} MB)", p.model_bytes, mb(p.model_bytes)),
        ],
    ];
    rows.extend(onnx_rows(p));
    rows.extend([
        vec![
            "peak RSS".into(),
            match p.memory.peak_rss_bytes {
                Some(b) => format!(
                    "{} MB (process at start of pipeline: {} MB)",
                    mb(b),
                    mb_opt(p.memory.start_rss_bytes)
                ),
                None => "not measured".into(),
            },
        ],
        vec!["parameters".into(), p.params.to_string()],
        vec![
            "dimensions".into(),
            p.dims
                .iter()
                .map(|d| format!("{} {}", d.stage, d.dim))
                .collect::<Vec<_>>()
                .join(" → "),
        ],
    ]);
    rows
}

/// The ONNX rows of [`speed_size_memory`]: the export's size, and onnxruntime's throughput,
/// latency and agreement with hogsvm beside hogsvm's own rows (or why it did not run).
fn onnx_rows(p: &PipelineResult) -> Vec<Vec<String>> {
    let Some(o) = &p.onnx else {
        return Vec::new();
    };
    let mut rows = vec![vec![
        "ONNX file".into(),
        match o.bytes {
            Some(b) => format!("{b} bytes ({} MB), opset {}", mb(b), o.opset),
            None => "not exported".into(),
        },
    ]];
    if let Some(t) = &o.runtime {
        let input = if o.input == "hog" {
            "hogsvm's HOG"
        } else {
            "the pixels as floats"
        };
        rows.push(vec![
            format!(
                "onnxruntime {} throughput (batch {}, {} threads)",
                t.version, t.batch_size, t.threads
            ),
            format!(
                "{} images/s for the graph ({} s); {} images/s with {input} ({} s) first",
                rate(t.images_per_s),
                secs(t.batch_seconds),
                rate(t.end_to_end_images_per_s),
                secs(t.input_seconds)
            ),
        ]);
        rows.push(vec![
            "onnxruntime latency (batch 1)".into(),
            format!(
                "median {} ms, p90 {} ms over {} calls for the graph; {} ms with {input}",
                ms(t.latency_ms_median),
                ms(t.latency_ms_p90),
                t.latency_samples,
                ms(t.end_to_end_latency_ms_median)
            ),
        ]);
        rows.push(vec![
            "onnxruntime vs hogsvm".into(),
            format!(
                "{} of {} labels equal; largest score difference {:.1e}",
                t.labels_agree, p.test_images, t.max_score_diff
            ),
        ]);
    }
    if let Some(n) = &o.note {
        rows.push(vec!["onnxruntime".into(), n.clone()]);
    }
    rows
}

fn pipeline_md(o: &mut String, p: &PipelineResult, classes: &[String]) {
    let _ = writeln!(o, "## {} ({})\n", md_escape(&p.name), p.kind);
    let _ = writeln!(
        o,
        "Spec `{}`. Accuracy {}, macro-F1 {} on {} test images (sha256 `{}`); {} misclassified.\n",
        p.spec,
        score(p.accuracy),
        score(p.macro_f1),
        p.test_images,
        p.test_fingerprint,
        p.misclassified_total
    );
    let _ = writeln!(o, "### Training\n");
    let mut rows: Vec<Vec<String>> = p
        .training
        .stages
        .iter()
        .map(|s| vec![s.name.clone(), secs(s.seconds)])
        .collect();
    rows.push(vec!["total".into(), secs(p.training.seconds)]);
    md_table(o, &["stage", "seconds"], &rows, 1);
    if let (Some(run), Some(best)) = (p.training.epochs_run, p.training.best_epoch) {
        let _ = writeln!(
            o,
            "{run} epochs run, weights of epoch {best} kept{}.\n",
            if p.training.stopped_early == Some(true) {
                " (stopped early)"
            } else {
                ""
            }
        );
        if let Some(h) = &p.training.history {
            let rows: Vec<Vec<String>> = h
                .iter()
                .map(|e| {
                    vec![
                        e.epoch.to_string(),
                        score(e.loss),
                        score(e.train_acc),
                        e.val_acc.map_or("-".into(), score),
                        format!("{:.2e}", e.lr),
                        rate(e.images_per_sec),
                        secs(e.seconds),
                    ]
                })
                .collect();
            md_table(
                o,
                &[
                    "epoch",
                    "loss",
                    "train acc",
                    "val acc",
                    "lr",
                    "images/s",
                    "seconds",
                ],
                &rows,
                1,
            );
        }
    }
    if let Some(g) = &p.grid {
        let _ = writeln!(
            o,
            "### Cross-validated search ({} folds on the {} training images, {} s)\n",
            g.folds,
            g.train_images,
            secs(g.seconds)
        );
        let rows: Vec<Vec<String>> = g
            .rows
            .iter()
            .map(|r| {
                let chosen = r.cell == g.chosen_cell && r.c == g.chosen_c;
                vec![
                    r.cell.to_string(),
                    r.c.to_string(),
                    score(r.mean_accuracy),
                    score(r.std_accuracy),
                    r.fold_accuracy
                        .iter()
                        .map(|a| score(*a))
                        .collect::<Vec<_>>()
                        .join(" "),
                    if chosen {
                        "chosen".into()
                    } else {
                        String::new()
                    },
                ]
            })
            .collect();
        md_table(
            o,
            &["cell", "C", "mean CV accuracy", "std", "folds", ""],
            &rows,
            2,
        );
    }
    let _ = writeln!(o, "### Speed, size, memory\n");
    let rows = speed_size_memory(p);
    md_table(o, &["what", "value"], &rows, 99);
    let _ = writeln!(o, "### Per class\n");
    let rows = per_class_rows(&p.metrics, |name| format!("*{name}*"));
    md_table(o, &PER_CLASS_HEADER, &rows, 1);
    let _ = writeln!(
        o,
        "### Confusion matrix (rows: true class, columns: predicted)\n"
    );
    let mut header: Vec<&str> = vec!["true \\ predicted"];
    header.extend(classes.iter().map(String::as_str));
    let rows: Vec<Vec<String>> = p
        .metrics
        .confusion
        .iter()
        .zip(classes)
        .map(|(row, name)| {
            let mut v = vec![name.clone()];
            v.extend(row.iter().map(|c| c.to_string()));
            v
        })
        .collect();
    md_table(o, &header, &rows, 1);
    if !p.misclassified.is_empty() {
        let _ = writeln!(
            o,
            "### First {} of {} misclassified test images\n",
            p.misclassified.len(),
            p.misclassified_total
        );
        let rows: Vec<Vec<String>> = p
            .misclassified
            .iter()
            .map(|x| {
                vec![
                    x.index.to_string(),
                    x.truth.clone(),
                    x.predicted.clone(),
                    x.source.clone(),
                ]
            })
            .collect();
        md_table(o, &["test index", "true", "predicted", "source"], &rows, 99);
    }
}
