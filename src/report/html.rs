//! `report.html`: one self-contained page. Charts are inline SVG from plotters ([`super::charts`]);
//! the HOG pictures and the misclassified images are PNGs inlined as `data:` URIs (enlarged with
//! nearest-neighbour so 28x28 pixels stay visible). No script, font, style sheet or image is
//! fetched from anywhere.

use std::fmt::Write;

use base64::Engine;

use super::render::{self, SUMMARY_HEADER};
use super::{charts, CompareReport, PipelineResult};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::hog::{Hog, HogParams};
use crate::pipeline::ClassicalConfig;

/// HOG sample images shown.
pub const HOG_SAMPLES: usize = 4;

/// Escape text for HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A grayscale image as a `data:image/png;base64,...` URI.
pub fn png_data_uri(img: &image::GrayImage) -> Result<String> {
    use image::ImageEncoder;
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::L8,
        )
        .map_err(|e| Error::Render {
            what: "PNG image".into(),
            reason: e.to_string(),
        })?;
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    ))
}

fn gray(ds: &Dataset, i: usize) -> image::GrayImage {
    image::GrayImage::from_raw(ds.cols as u32, ds.rows as u32, ds.image(i).to_vec())
        .expect("dataset images have rows * cols pixels")
}

fn enlarge(img: &image::GrayImage, factor: u32) -> image::GrayImage {
    image::imageops::resize(
        img,
        img.width() * factor,
        img.height() * factor,
        image::imageops::FilterType::Nearest,
    )
}

fn img_tag(uri: &str, w: u32, h: u32, alt: &str) -> String {
    format!(
        "<img src=\"{uri}\" width=\"{w}\" height=\"{h}\" alt=\"{}\">",
        esc(alt)
    )
}

/// Enlargement factor that brings an image to about 112 pixels wide.
fn factor_for(cols: usize, target: usize) -> u32 {
    (target / cols.max(1)).clamp(1, 8) as u32
}

/// The HOG parameters shown: the first classical pipeline's, else the default configuration's.
fn shown_hog(r: &CompareReport) -> (HogParams, String) {
    for p in &r.pipelines {
        if p.kind == "classical" {
            if let Ok(c) = serde_json::from_value::<ClassicalConfig>(p.config.clone()) {
                return (c.hog, p.name.clone());
            }
        }
    }
    (
        ClassicalConfig::default().hog,
        "default classical configuration".into(),
    )
}

/// HOG pictures of the first test image of each of the first [`HOG_SAMPLES`] classes: the image
/// and its HOG, drawn on the image enlarged (bilinear) by `f` with cells `f` times larger, so
/// the cell grid over the garment is the pipeline's and the lines are long enough to see.
fn hog_figures(r: &CompareReport, test: &Dataset) -> Result<String> {
    let (params, whose) = shown_hog(r);
    let mut picks = Vec::new();
    for class in 0..test.class_names.len() as u32 {
        if let Some(i) = (0..test.len()).find(|&i| test.labels[i] == class) {
            picks.push(i);
        }
        if picks.len() == HOG_SAMPLES {
            break;
        }
    }
    let f = factor_for(test.cols, 112);
    let big_params = params.cell(params.cell_rows * f as usize, params.cell_cols * f as usize);
    let hog = Hog::new(big_params)?;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "<p>HOG of {} (orientations {}, cells {}x{} px, blocks {}x{}, {}{}): for display it is computed on each image enlarged {f}x (bilinear) with cells {f}x larger, so the grid matches the pipeline's cells.</p><div class=\"gallery\" id=\"hog-samples\">",
        esc(&whose),
        params.orientations,
        params.cell_rows,
        params.cell_cols,
        params.block_rows,
        params.block_cols,
        params.block_norm,
        if params.transform_sqrt { ", square root" } else { "" },
    );
    for &i in &picks {
        let img = gray(test, i);
        let big = image::imageops::resize(
            &img,
            img.width() * f,
            img.height() * f,
            image::imageops::FilterType::Triangle,
        );
        let vis = crate::hog::visualize::hog_image(
            &hog,
            crate::hog::ImageRef::gray_u8(
                big.as_raw(),
                big.height() as usize,
                big.width() as usize,
            )?,
        )?
        .to_gray8();
        let name = &test.class_names[test.labels[i] as usize];
        let _ = writeln!(
            o,
            "<figure class=\"tile\">{}{}<figcaption>test #{i}: {}</figcaption></figure>",
            img_tag(
                &png_data_uri(&enlarge(&img, f))?,
                img.width() * f,
                img.height() * f,
                &format!("test image {i}")
            ),
            img_tag(
                &png_data_uri(&vis)?,
                vis.width(),
                vis.height(),
                &format!("HOG of test image {i}")
            ),
            esc(name)
        );
    }
    o.push_str("</div>\n");
    Ok(o)
}

fn gallery(p: &PipelineResult, idx: usize, test: &Dataset) -> Result<String> {
    let f = factor_for(test.cols, 84);
    let mut o = format!("<div class=\"gallery\" id=\"gallery-{idx}\">\n");
    for m in &p.misclassified {
        if m.index >= test.len() {
            continue;
        }
        let img = enlarge(&gray(test, m.index), f);
        let _ = writeln!(
            o,
            "<figure class=\"tile\">{}<figcaption>#{}<br>true: {}<br>pred: <b>{}</b></figcaption></figure>",
            img_tag(&png_data_uri(&img)?, img.width(), img.height(), &format!("test image {}", m.index)),
            m.index,
            esc(&m.truth),
            esc(&m.predicted)
        );
    }
    o.push_str("</div>\n");
    Ok(o)
}

/// A muted paragraph of `text` (escaped).
fn muted(o: &mut String, text: &str) {
    let _ = writeln!(o, "<p class=\"muted\">{}</p>", esc(text));
}

fn table(header: &[&str], rows: &[Vec<String>], class: &str) -> String {
    let mut o = format!("<table class=\"{class}\"><thead><tr>");
    for h in header {
        let _ = write!(o, "<th>{}</th>", esc(h));
    }
    o.push_str("</tr></thead><tbody>\n");
    for r in rows {
        o.push_str("<tr>");
        for c in r {
            let _ = write!(o, "<td>{}</td>", esc(c));
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</tbody></table>\n");
    o
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}th,td{border:1px solid #ddd;padding:.25em .55em;text-align:right}
th:first-child,td:first-child,table.left td,table.left th{text-align:left}
thead th{background:#f4f6f8}code,pre{background:#f4f6f8;padding:.1em .3em;border-radius:3px;font-size:.9em}
pre{padding:.6em;overflow-x:auto;white-space:pre-wrap}
.charts{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}.chart svg{max-width:100%;height:auto}
.gallery{display:flex;flex-wrap:wrap;gap:.6em}.tile{margin:0;text-align:center;font-size:.8em}
.tile img{image-rendering:pixelated;border:1px solid #ccc;margin:1px}.muted{color:#666;font-size:.9em}";

/// The whole page (`test` is the test set the report was made on: the gallery and the HOG
/// pictures show its images).
pub fn html(r: &CompareReport, test: &Dataset) -> Result<String> {
    let d = &r.data;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>hogsvm compare report</title>\n<style>{STYLE}</style></head><body>"
    );
    let _ = writeln!(o, "<h1>hogsvm compare: classical pipeline vs CNN</h1>");
    let _ = writeln!(
        o,
        "<p>{} {} on {} ({} threads, {} CPUs, {}), seed {}. Train: {} images from <code>{}</code>; test: {} images ({}). Every pipeline was trained on the same training set and evaluated on the same test images (SHA-256 <code>{}</code>).</p>",
        esc(&r.generator.name),
        esc(&r.generator.version),
        esc(&r.run.date_utc),
        r.run.threads,
        r.run.cpus,
        esc(&r.run.platform),
        r.run.seed,
        d.train.images,
        esc(&d.train_path),
        d.test.images,
        esc(&d.test_source),
        esc(&d.test.sha256)
    );
    let _ = writeln!(o, "<h2 id=\"summary\">Summary</h2>");
    let rows: Vec<Vec<String>> = r
        .pipelines
        .iter()
        .map(|p| render::summary_cells(p).to_vec())
        .collect();
    o.push_str(&table(&SUMMARY_HEADER, &rows, "summary"));
    let _ = writeln!(
        o,
        "<p class=\"muted\">images/s: the test set predicted in batches of {} images; latency: median of {} single-image predictions; model MB: bytes of the saved model file / 10<sup>6</sup>; peak RSS: peak resident memory of the whole process during the pipeline; params: numbers stored in the model; features: the classifier's input dimension. docs/REPORT.md defines each number.</p>",
        r.pipelines.first().map_or(0, |p| p.inference.batch_size),
        r.pipelines.first().map_or(0, |p| p.inference.latency_samples)
    );
    if !r.pairs.is_empty() {
        let _ = writeln!(o, "<h3 id=\"significance\">Is the difference real?</h3>");
        o.push_str(&table(&render::PAIR_HEADER, &render::pair_rows(r), "pairs"));
        let note = render::PAIR_NOTE.replace('*', "");
        muted(&mut o, &note);
    }
    let _ = writeln!(o, "<div class=\"charts\">");
    let _ = writeln!(
        o,
        "<figure class=\"chart\" id=\"chart-accuracy-time\">{}</figure>",
        charts::accuracy_vs_time(r)?
    );
    let _ = writeln!(
        o,
        "<figure class=\"chart\" id=\"chart-f1\">{}</figure>",
        charts::f1_bars(r)?
    );
    let _ = writeln!(o, "</div>");
    if render::has_variants(r) {
        let _ = writeln!(o, "<h2 id=\"deploy\">Deployment: smaller CNNs</h2>");
        o.push_str(&table(
            &render::DEPLOY_HEADER,
            &render::deploy_rows(r),
            "deploy",
        ));
        muted(&mut o, &render::DEPLOY_NOTE.replace('*', ""));
        let _ = writeln!(
            o,
            "<div class=\"charts\"><figure class=\"chart\" id=\"chart-accuracy-size\">{}</figure></div>",
            charts::accuracy_vs_size(r)?
        );
    }
    if let Some(c) = &r.learning_curve {
        let _ = writeln!(
            o,
            "<h2 id=\"learning-curve\">Learning curve: when does the CNN pay?</h2>"
        );
        if !c.crossovers.is_empty() {
            let _ = writeln!(o, "<ul class=\"crossovers\">");
            for x in &c.crossovers {
                let _ = writeln!(o, "<li>{}</li>", esc(&x.statement));
            }
            let _ = writeln!(o, "</ul>");
        }
        let _ = writeln!(o, "<div class=\"charts\">");
        for (id, chart) in [
            ("chart-learning-curve", charts::learning_curve(r)?),
            ("chart-time-vs-size", charts::time_vs_size(r)?),
        ] {
            if let Some(svg) = chart {
                let _ = writeln!(o, "<figure class=\"chart\" id=\"{id}\">{svg}</figure>");
            }
        }
        let _ = writeln!(o, "</div>");
        o.push_str(&table(
            &render::CURVE_HEADER,
            &render::curve_rows(c),
            "curve",
        ));
        muted(&mut o, &render::CURVE_NOTE.replace(['*', '`'], ""));
        let _ = writeln!(o, "<h3>McNemar's exact test at each size (repeat 0)</h3>");
        o.push_str(&table(
            &render::CURVE_PAIR_HEADER,
            &render::curve_pair_rows(c),
            "curve-pairs",
        ));
        let _ = writeln!(
            o,
            "<p class=\"muted\">Subsets: {}. The curve took {} s beyond the main run.</p>",
            esc(&c.method),
            render::secs(c.seconds)
        );
    }
    let _ = writeln!(
        o,
        "<h2 id=\"reproduce\">Reproduce</h2><pre>{}</pre>",
        esc(&r.run.command)
    );
    let _ = writeln!(
        o,
        "<p>hogsvm {}, seed {}, {} threads, {}; started {}; data loaded in {} s; whole run {} s.</p>",
        esc(&r.generator.version),
        r.run.seed,
        r.run.threads,
        esc(&r.run.platform),
        esc(&r.run.date_utc),
        render::secs(r.run.load_seconds),
        render::secs(r.run.total_seconds)
    );
    let _ = writeln!(o, "<h2 id=\"data\">Data</h2>");
    let rows = render::data_rows(d, str::to_string);
    o.push_str(&table(&render::DATA_HEADER, &rows, "left"));
    let _ = writeln!(
        o,
        "<p>Images {}x{}; classes: {}.</p>",
        d.rows,
        d.cols,
        esc(&d.class_names.join(", "))
    );
    let _ = writeln!(o, "<h2 id=\"hog\">HOG visualisations</h2>");
    match hog_figures(r, test) {
        Ok(figs) => o.push_str(&figs),
        // A picture that cannot be drawn (odd image sizes) is no reason to lose the report.
        Err(e) => {
            let _ = writeln!(o, "<p>No HOG pictures: {}</p>", esc(&e.to_string()));
        }
    }
    for (i, p) in r.pipelines.iter().enumerate() {
        pipeline_section(&mut o, p, i, r, test)?;
    }
    if !r.notes.is_empty() {
        let _ = writeln!(o, "<h2 id=\"notes\">Notes</h2><ul>");
        for n in &r.notes {
            let _ = writeln!(o, "<li>{}</li>", esc(n));
        }
        let _ = writeln!(o, "</ul>");
    }
    let _ = writeln!(
        o,
        "<p class=\"muted\">Every number on this page is in report.json (schema version {}).</p></body></html>",
        r.schema_version
    );
    Ok(o)
}

fn pipeline_section(
    o: &mut String,
    p: &PipelineResult,
    i: usize,
    r: &CompareReport,
    test: &Dataset,
) -> Result<()> {
    let _ = writeln!(
        o,
        "<h2 id=\"pipeline-{i}\">{} <span class=\"muted\">({})</span></h2>",
        esc(&p.name),
        esc(&p.kind)
    );
    let _ = writeln!(
        o,
        "<p>Spec <code>{}</code>. Accuracy <b>{}</b>, macro-F1 <b>{}</b> on {} test images (sha256 <code>{}</code>); {} misclassified.</p>",
        esc(&p.spec),
        render::score(p.accuracy),
        render::score(p.macro_f1),
        p.test_images,
        esc(&p.test_fingerprint),
        p.misclassified_total
    );
    let _ = writeln!(o, "<div class=\"charts\">");
    let _ = writeln!(
        o,
        "<figure class=\"chart\" id=\"chart-confusion-{i}\">{}</figure>",
        charts::confusion(p, &r.data.class_names)?
    );
    if let Some(curves) = charts::training_curves(p)? {
        let kept = p.training.best_epoch.map_or(String::new(), |b| {
            format!(" Dashed: epoch {b}, whose weights were kept.")
        });
        let _ = writeln!(
            o,
            "<figure class=\"chart\" id=\"chart-training-{i}\">{curves}<figcaption class=\"muted\">Per-epoch training curves.{kept}</figcaption></figure>"
        );
    }
    let rows = render::per_class_rows(&p.metrics, str::to_string);
    let _ = writeln!(o, "<div>");
    o.push_str(&table(&render::PER_CLASS_HEADER, &rows, "per-class"));
    let mut rows: Vec<Vec<String>> = p
        .training
        .stages
        .iter()
        .map(|s| vec![s.name.clone(), render::secs(s.seconds)])
        .collect();
    rows.push(vec!["total".into(), render::secs(p.training.seconds)]);
    o.push_str(&table(&["training stage", "seconds"], &rows, "stages"));
    let _ = writeln!(o, "</div>");
    let mut facts = render::speed_size_memory(p);
    if let (Some(run), Some(best)) = (p.training.epochs_run, p.training.best_epoch) {
        facts.push(vec!["epochs".into(), format!("{run} run, best {best}")]);
    }
    let _ = writeln!(o, "<div>");
    o.push_str(&table(&["what", "value"], &facts, "left"));
    let _ = writeln!(o, "</div></div>");
    if let Some(g) = &p.grid {
        let _ = writeln!(
            o,
            "<h3>Cross-validated search: {} folds on the {} training images ({} s)</h3>",
            g.folds,
            g.train_images,
            render::secs(g.seconds)
        );
        let rows: Vec<Vec<String>> = g
            .rows
            .iter()
            .map(|row| {
                vec![
                    row.cell.to_string(),
                    row.c.to_string(),
                    render::score(row.mean_accuracy),
                    render::score(row.std_accuracy),
                    if row.cell == g.chosen_cell && row.c == g.chosen_c {
                        "chosen".into()
                    } else {
                        String::new()
                    },
                ]
            })
            .collect();
        o.push_str(&table(
            &["cell", "C", "mean CV accuracy", "std", ""],
            &rows,
            "grid",
        ));
    }
    let _ = writeln!(
        o,
        "<h3>Misclassified test images (first {} of {})</h3>",
        p.misclassified.len(),
        p.misclassified_total
    );
    o.push_str(&gallery(p, i, test)?);
    Ok(())
}
