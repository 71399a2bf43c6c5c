//! The report's charts, drawn with plotters' SVG backend (text as SVG `<text>` elements, no
//! font files): accuracy vs training time, a confusion-matrix heatmap per pipeline and per-class
//! F1 bars grouped by pipeline, and a CNN's per-epoch training curves. Each function returns one
//! `<svg>` element as a string.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{CompareReport, PipelineResult};
use crate::error::{Error, Result};

/// Colours of the pipelines, in report order (cycled).
pub const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// The colour of pipeline `i`.
pub fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn err(what: &str) -> impl Fn(Box<dyn std::fmt::Display>) -> Error + '_ {
    move |e| Error::Render {
        what: what.to_string(),
        reason: e.to_string(),
    }
}

/// Draw on a `w x h` SVG canvas with `f`; return the `<svg>` text.
fn svg<F>(what: &str, w: u32, h: u32, f: F) -> Result<String>
where
    F: FnOnce(
        &DrawingArea<SVGBackend<'_>, Shift>,
    ) -> std::result::Result<(), Box<dyn std::fmt::Display>>,
{
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, (w, h)).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| err(what)(Box::new(e.to_string())))?;
        f(&root).map_err(err(what))?;
        root.present()
            .map_err(|e| err(what)(Box::new(e.to_string())))?;
    }
    Ok(s)
}

fn boxed<E: std::fmt::Display + 'static>(e: E) -> Box<dyn std::fmt::Display> {
    Box::new(e.to_string())
}

/// The series legend, lower right: labels of `font` pixels on a white panel of opacity `alpha`.
fn legend<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    font: u32,
    alpha: f64,
) -> Result<(), Box<dyn std::fmt::Display>>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    CT: CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", font))
        .background_style(WHITE.mix(alpha))
        .border_style(BLACK)
        .draw()
        .map_err(boxed)
}

fn text_style(size: u32, h: HPos, v: VPos) -> TextStyle<'static> {
    TextStyle::from(("sans-serif", size).into_font())
        .color(&BLACK)
        .pos(Pos::new(h, v))
}

/// [`text_style`], turned by `turn` (vertical axis titles and class labels).
fn turned_style(size: u32, turn: FontTransform, h: HPos, v: VPos) -> TextStyle<'static> {
    TextStyle::from(("sans-serif", size).into_font().transform(turn))
        .color(&BLACK)
        .pos(Pos::new(h, v))
}

/// Accuracy (y) against training seconds (x, log scale), one labelled point per pipeline.
pub fn accuracy_vs_time(r: &CompareReport) -> Result<String> {
    let pts: Vec<(f64, f64, String, RGBColor)> = r
        .pipelines
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (x, y) = (p.training.seconds.max(1e-3), p.accuracy);
            (x, y, format!("{} ({y:.4}, {x:.1} s)", p.name), color(i))
        })
        .collect();
    labelled_scatter(
        "accuracy vs training time chart",
        "Test accuracy vs training time",
        "training time, seconds (log scale)",
        &pts,
    )
}

/// Accuracy (y) against model-file megabytes (x, log scale): every pipeline as trained and
/// every deployment variant (`compare --deploy`), in its pipeline's colour.
pub fn accuracy_vs_size(r: &CompareReport) -> Result<String> {
    let mut pts: Vec<(f64, f64, String, RGBColor)> = Vec::new();
    for (i, p) in r.pipelines.iter().enumerate() {
        let mb = (p.model_bytes as f64 / 1e6).max(1e-4);
        pts.push((
            mb,
            p.accuracy,
            format!("{} ({:.4}, {mb:.2} MB)", p.name, p.accuracy),
            color(i),
        ));
        for v in &p.variants {
            let mb = (v.model_bytes as f64 / 1e6).max(1e-4);
            pts.push((
                mb,
                v.accuracy,
                format!("{} {} ({:.4}, {mb:.2} MB)", p.name, v.name, v.accuracy),
                color(i),
            ));
        }
    }
    labelled_scatter(
        "accuracy vs model size chart",
        "Test accuracy vs model size",
        "model file, MB (log scale)",
        &pts,
    )
}

/// Labelled points (x log scale, y accuracy), labels moved down a line where they would
/// overlap an earlier one.
fn labelled_scatter(
    what: &str,
    caption: &str,
    x_desc: &str,
    pts: &[(f64, f64, String, RGBColor)],
) -> Result<String> {
    let (mut x0, mut x1) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    x0 /= 2.0;
    x1 *= 2.0;
    let (mut y0, mut y1) = pts
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    y0 = (y0 - 0.05).max(0.0);
    y1 = (y1 + 0.03).min(1.0);
    if y1 - y0 < 0.05 {
        y0 = (y1 - 0.05).max(0.0);
    }
    svg(what, 720, 420, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(caption, ("sans-serif", 24))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
            .map_err(boxed)?;
        chart
            .configure_mesh()
            .max_light_lines(2)
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16))
            .x_desc(x_desc)
            .y_desc("test accuracy")
            .x_label_formatter(&|v| {
                if *v >= 10.0 {
                    format!("{v:.0}")
                } else if *v >= 1.0 {
                    format!("{v:.1}")
                } else {
                    format!("{v:.2}")
                }
            })
            .y_label_formatter(&|v| format!("{v:.3}"))
            .draw()
            .map_err(boxed)?;
        let mid = (x0 * x1).sqrt();
        // Points first, then labels in pixel space, moved down a line where they would
        // overlap an earlier one (close pipelines otherwise print on top of each other).
        let mut labels = Vec::new();
        for (x, y, text, ink) in pts {
            let (x, y) = (*x, *y);
            chart
                .draw_series(std::iter::once(Circle::new((x, y), 7, ink.filled())))
                .map_err(boxed)?;
            let (px, py) = chart.backend_coord(&(x, y));
            // Labels of points in the right half go to their left, so they stay inside.
            let h = if x > mid { HPos::Right } else { HPos::Left };
            let dx = if x > mid { -10 } else { 10 };
            labels.push((px + dx, py, h, text.clone(), *ink));
        }
        labels.sort_by_key(|l| l.1);
        let mut placed: Vec<(i32, i32, i32)> = Vec::new(); // (left, right, y)
        for (lx, py, h, text, ink) in labels {
            let w = 9 * text.chars().count() as i32;
            let (l, r) = if matches!(h, HPos::Left) {
                (lx, lx + w)
            } else {
                (lx - w, lx)
            };
            let mut ly = py;
            while placed
                .iter()
                .any(|&(pl, pr, y)| pl < r && l < pr && (y - ly).abs() < 20)
            {
                ly += 20;
            }
            placed.push((l, r, ly));
            root.draw(&Text::new(
                text,
                (lx, ly),
                TextStyle::from(("sans-serif", 17).into_font())
                    .color(&ink)
                    .pos(Pos::new(h, VPos::Center)),
            ))
            .map_err(boxed)?;
        }
        Ok(())
    })
}

/// Confusion matrix heatmap of one pipeline: counts in the cells, colour = share of the true
/// class (row-normalised, i.e. recall on the diagonal).
pub fn confusion(p: &PipelineResult, classes: &[String]) -> Result<String> {
    let k = classes.len().max(1);
    let cell = (440 / k as u32).clamp(14, 48);
    let left = 130;
    let top = 48;
    let bottom = 130;
    let w = left + cell * k as u32 + 20;
    let h = top + cell * k as u32 + bottom;
    let m = &p.metrics.confusion;
    svg("confusion matrix chart", w, h, |root| {
        root.draw(&Text::new(
            format!("{}: confusion matrix", p.name),
            ((w / 2) as i32, 8),
            text_style(22, HPos::Center, VPos::Top),
        ))
        .map_err(boxed)?;
        let font = (cell as f64 * 0.4).clamp(9.0, 17.0) as u32;
        for (r, row) in m.iter().enumerate() {
            let total: usize = row.iter().sum();
            for (c, &v) in row.iter().enumerate() {
                let share = if total > 0 {
                    v as f64 / total as f64
                } else {
                    0.0
                };
                // White to dark blue.
                let mix = |lo: f64, hi: f64| (lo + (hi - lo) * share).round() as u8;
                let fill = RGBColor(mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0));
                let x = (left + c as u32 * cell) as i32;
                let y = (top + r as u32 * cell) as i32;
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell as i32, y + cell as i32)],
                    fill.filled(),
                ))
                .map_err(boxed)?;
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell as i32, y + cell as i32)],
                    RGBColor(220, 220, 220).stroke_width(1),
                ))
                .map_err(boxed)?;
                let ink = if share > 0.5 { WHITE } else { BLACK };
                root.draw(&Text::new(
                    v.to_string(),
                    (x + cell as i32 / 2, y + cell as i32 / 2),
                    TextStyle::from(("sans-serif", font).into_font())
                        .color(&ink)
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                ))
                .map_err(boxed)?;
            }
        }
        for (i, name) in classes.iter().enumerate() {
            let mid = (i as u32 * cell + cell / 2) as i32;
            root.draw(&Text::new(
                name.clone(),
                (left as i32 - 6, top as i32 + mid),
                text_style(15, HPos::Right, VPos::Center),
            ))
            .map_err(boxed)?;
            root.draw(&Text::new(
                name.clone(),
                (left as i32 + mid, (top + cell * k as u32) as i32 + 6),
                turned_style(15, FontTransform::Rotate90, HPos::Left, VPos::Center),
            ))
            .map_err(boxed)?;
        }
        root.draw(&Text::new(
            "rows: true class, columns: predicted class".to_string(),
            (8, (h - 14) as i32),
            text_style(15, HPos::Left, VPos::Center),
        ))
        .map_err(boxed)?;
        Ok(())
    })
}

/// Per-class F1, one bar per pipeline in each class group, with a legend.
pub fn f1_bars(r: &CompareReport) -> Result<String> {
    let classes = &r.data.class_names;
    let k = classes.len().max(1);
    let n = r.pipelines.len().max(1);
    let (left, right, top, bottom) = (56i32, 16i32, 70i32, 120i32);
    let group = ((760 - left - right) / k as i32).max(12 * n as i32 + 8);
    let w = left + group * k as i32 + right;
    let h = 460i32;
    let plot_h = h - top - bottom;
    svg("per-class F1 chart", w as u32, h as u32, |root| {
        root.draw(&Text::new(
            "Per-class F1 on the test set".to_string(),
            (w / 2, 8),
            text_style(24, HPos::Center, VPos::Top),
        ))
        .map_err(boxed)?;
        let y_of = |v: f64| top + plot_h - (v.clamp(0.0, 1.0) * plot_h as f64).round() as i32;
        for t in 0..=5 {
            let v = t as f64 / 5.0;
            let y = y_of(v);
            root.draw(&PathElement::new(
                vec![(left, y), (w - right, y)],
                RGBColor(225, 225, 225).stroke_width(1),
            ))
            .map_err(boxed)?;
            root.draw(&Text::new(
                format!("{v:.1}"),
                (left - 6, y),
                text_style(15, HPos::Right, VPos::Center),
            ))
            .map_err(boxed)?;
        }
        root.draw(&Text::new(
            "F1".to_string(),
            (14, top + plot_h / 2),
            turned_style(17, FontTransform::Rotate270, HPos::Center, VPos::Center),
        ))
        .map_err(boxed)?;
        let bar = ((group - 8) / n as i32).max(2);
        for (ci, name) in classes.iter().enumerate() {
            let gx = left + ci as i32 * group + 4;
            for (pi, p) in r.pipelines.iter().enumerate() {
                let f1 = p.metrics.per_class.get(ci).map_or(0.0, |c| c.f1);
                let x = gx + pi as i32 * bar;
                root.draw(&Rectangle::new(
                    [(x, y_of(f1)), (x + bar - 1, y_of(0.0))],
                    color(pi).filled(),
                ))
                .map_err(boxed)?;
            }
            root.draw(&Text::new(
                name.clone(),
                (left + ci as i32 * group + group / 2, y_of(0.0) + 6),
                turned_style(15, FontTransform::Rotate90, HPos::Left, VPos::Center),
            ))
            .map_err(boxed)?;
        }
        root.draw(&PathElement::new(
            vec![(left, y_of(0.0)), (w - right, y_of(0.0))],
            BLACK.stroke_width(1),
        ))
        .map_err(boxed)?;
        // Legend.
        let mut x = left;
        for (pi, p) in r.pipelines.iter().enumerate() {
            root.draw(&Rectangle::new([(x, 38), (x + 14, 52)], color(pi).filled()))
                .map_err(boxed)?;
            let label = format!("{} (macro-F1 {:.4})", p.name, p.macro_f1);
            let width = 36 + 8 * label.chars().count() as i32;
            root.draw(&Text::new(
                label,
                (x + 20, 45),
                text_style(16, HPos::Left, VPos::Center),
            ))
            .map_err(boxed)?;
            x += width;
        }
        Ok(())
    })
}

/// A CNN's per-epoch curves, three panels side by side: training loss; training and validation
/// accuracy; learning rate. The epoch whose weights were kept is marked by a dashed line on each
/// (the HTML's caption says so).
/// `None` for a pipeline without an epoch history (classical).
pub fn training_curves(p: &PipelineResult) -> Result<Option<String>> {
    let Some(h) = p.training.history.as_ref().filter(|h| !h.is_empty()) else {
        return Ok(None);
    };
    let best = p.training.best_epoch;
    let last = h.len() as f64 + 0.5;
    let range = |v: &mut dyn Iterator<Item = f64>| {
        let (lo, hi) = v.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
        let pad = ((hi - lo) * 0.08).max(1e-9);
        (lo - pad, hi + pad)
    };
    let loss = range(&mut h.iter().map(|e| e.loss));
    let acc = range(
        &mut h
            .iter()
            .flat_map(|e| std::iter::once(e.train_acc).chain(e.val_acc)),
    );
    let lr = range(&mut h.iter().map(|e| e.lr));
    let lr = (lr.0.max(0.0), lr.1);
    svg("training curves chart", 960, 320, |root| {
        let panels = root.split_evenly((1, 3));
        let specs: [(&str, (f64, f64)); 3] = [
            ("training loss", loss),
            ("accuracy (train, validation)", acc),
            ("learning rate", lr),
        ];
        for (k, (title, (y0, y1))) in specs.into_iter().enumerate() {
            let mut chart = ChartBuilder::on(&panels[k])
                .caption(title, ("sans-serif", 17))
                .margin(10)
                .x_label_area_size(36)
                .y_label_area_size(58)
                .build_cartesian_2d(0.5..last, y0..y1)
                .map_err(boxed)?;
            chart
                .configure_mesh()
                .max_light_lines(1)
                .label_style(("sans-serif", 12))
                .axis_desc_style(("sans-serif", 13))
                .x_desc("epoch")
                .x_label_formatter(&|v| format!("{v:.0}"))
                .y_label_formatter(&|v| {
                    if k == 2 {
                        format!("{v:.1e}")
                    } else {
                        format!("{v:.3}")
                    }
                })
                .draw()
                .map_err(boxed)?;
            if let Some(b) = best {
                chart
                    .draw_series(DashedLineSeries::new(
                        [(b as f64, y0), (b as f64, y1)],
                        4,
                        3,
                        RGBColor(120, 120, 120).into(),
                    ))
                    .map_err(boxed)?;
            }
            let mut line = |pts: Vec<(f64, f64)>, c: RGBColor, name: &str| {
                chart
                    .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                    .map_err(boxed)?
                    .label(name.to_string())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                    });
                chart
                    .draw_series(pts.into_iter().map(|q| Circle::new(q, 3, c.filled())))
                    .map_err(boxed)?;
                Ok::<(), Box<dyn std::fmt::Display>>(())
            };
            match k {
                0 => line(
                    h.iter().map(|e| (e.epoch as f64, e.loss)).collect(),
                    color(0),
                    "loss",
                )?,
                1 => {
                    line(
                        h.iter().map(|e| (e.epoch as f64, e.train_acc)).collect(),
                        color(0),
                        "train",
                    )?;
                    let val: Vec<(f64, f64)> = h
                        .iter()
                        .filter_map(|e| e.val_acc.map(|v| (e.epoch as f64, v)))
                        .collect();
                    if !val.is_empty() {
                        line(val, color(1), "validation")?;
                    }
                }
                _ => line(
                    h.iter().map(|e| (e.epoch as f64, e.lr)).collect(),
                    color(2),
                    "lr",
                )?,
            }
            if k == 1 {
                legend(&mut chart, 12, 0.8)?;
            }
        }
        Ok(())
    })
    .map(Some)
}

/// Format an image count for an axis: `600`, `3k`, `60k`.
fn count_label(v: f64) -> String {
    if v >= 1000.0 {
        let k = v / 1000.0;
        if (k - k.round()).abs() < 1e-9 {
            format!("{k:.0}k")
        } else {
            format!("{k:.1}k")
        }
    } else {
        format!("{v:.0}")
    }
}

/// One series per pipeline of a learning curve: (pipeline index in the report, name, points
/// (size, value, low, high)).
type CurveSeries<'a> = Vec<(usize, &'a str, Vec<(f64, f64, f64, f64)>)>;

fn curve_series<'a>(
    r: &'a CompareReport,
    value: impl Fn(&super::CurveSummary) -> [f64; 3],
) -> CurveSeries<'a> {
    let Some(c) = &r.learning_curve else {
        return Vec::new();
    };
    r.pipelines
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let pts = c
                .summary
                .iter()
                .filter(|s| s.pipeline == p.name)
                .map(|s| {
                    let [v, lo, hi] = value(s);
                    (s.size as f64, v, lo, hi)
                })
                .collect();
            (i, p.name.as_str(), pts)
        })
        .collect()
}

/// Draw `series` on log-scale sizes: a band from low to high (when `bands`), the line and its
/// points, a legend; `marks` are dashed vertical lines (crossover estimates).
fn size_chart(
    what: &str,
    caption: &str,
    y_desc: &str,
    series: &CurveSeries<'_>,
    log_y: bool,
    bands: bool,
    marks: &[(f64, String)],
) -> Result<String> {
    let all = || series.iter().flat_map(|s| s.2.iter());
    let (x0, x1) = all().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (x0, x1) = (x0 / 1.3, x1 * 1.3);
    let (mut y0, mut y1) = all().fold((f64::MAX, f64::MIN), |(a, b), p| {
        if bands {
            (a.min(p.2), b.max(p.3))
        } else {
            (a.min(p.1), b.max(p.1))
        }
    });
    if log_y {
        y0 = (y0 / 2.0).max(1e-3);
        y1 = (y1 * 2.0).max(y0 * 10.0);
    } else {
        let pad = ((y1 - y0) * 0.1).max(0.01);
        y0 = (y0 - pad).max(0.0);
        y1 = (y1 + pad).min(1.0);
    }
    svg(what, 720, 420, |root| {
        macro_rules! body {
            ($chart:ident, $fmt:expr) => {{
                $chart
                    .configure_mesh()
                    .max_light_lines(2)
                    .label_style(("sans-serif", 15))
                    .axis_desc_style(("sans-serif", 16))
                    .x_desc("training images (log scale)")
                    .y_desc(y_desc)
                    .x_label_formatter(&|v| count_label(*v))
                    .y_label_formatter(&$fmt)
                    .draw()
                    .map_err(boxed)?;
                for (x, label) in marks {
                    $chart
                        .draw_series(DashedLineSeries::new(
                            [(*x, y0), (*x, y1)],
                            5,
                            4,
                            RGBColor(120, 120, 120).into(),
                        ))
                        .map_err(boxed)?;
                    let (px, py) = $chart.backend_coord(&(*x, y1));
                    root.draw(&Text::new(
                        label.clone(),
                        (px + 4, py + 4),
                        text_style(13, HPos::Left, VPos::Top),
                    ))
                    .map_err(boxed)?;
                }
                for (i, name, pts) in series {
                    let c = color(*i);
                    if bands && pts.len() > 1 {
                        let poly: Vec<(f64, f64)> = pts
                            .iter()
                            .map(|p| (p.0, p.3))
                            .chain(pts.iter().rev().map(|p| (p.0, p.2)))
                            .collect();
                        $chart
                            .draw_series(std::iter::once(Polygon::new(poly, c.mix(0.18).filled())))
                            .map_err(boxed)?;
                    }
                    $chart
                        .draw_series(LineSeries::new(
                            pts.iter().map(|p| (p.0, p.1)),
                            c.stroke_width(2),
                        ))
                        .map_err(boxed)?
                        .label(name.to_string())
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                        });
                    $chart
                        .draw_series(pts.iter().map(|p| Circle::new((p.0, p.1), 4, c.filled())))
                        .map_err(boxed)?;
                }
                legend(&mut $chart, 14, 0.85)?;
            }};
        }
        let builder = |root| {
            let mut b = ChartBuilder::on(root);
            b.caption(caption, ("sans-serif", 22))
                .margin(16)
                .x_label_area_size(48)
                .y_label_area_size(70);
            b
        };
        if log_y {
            let mut chart = builder(root)
                .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
                .map_err(boxed)?;
            body!(chart, |v: &f64| if *v >= 10.0 {
                format!("{v:.0}")
            } else if *v >= 1.0 {
                format!("{v:.1}")
            } else {
                format!("{v:.2}")
            });
        } else {
            let mut chart = builder(root)
                .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
                .map_err(boxed)?;
            body!(chart, |v: &f64| format!("{v:.3}"));
        }
        Ok(())
    })
}

/// The learning curve: mean test accuracy (y) against training images (x, log scale), one
/// line per pipeline with its pooled 95% Wilson band, and each crossover estimate dashed.
/// `None` without a curve.
pub fn learning_curve(r: &CompareReport) -> Result<Option<String>> {
    let Some(c) = &r.learning_curve else {
        return Ok(None);
    };
    let series = curve_series(r, |s| {
        [s.mean_accuracy, s.accuracy_ci95[0], s.accuracy_ci95[1]]
    });
    let marks: Vec<(f64, String)> = c
        .crossovers
        .iter()
        .filter_map(|x| {
            x.estimate.map(|e| {
                (
                    e as f64,
                    format!("{} > {} ≈ {}", x.cnn, x.classical, count_label(e as f64)),
                )
            })
        })
        .collect();
    size_chart(
        "learning curve chart",
        "Test accuracy vs training images",
        "test accuracy (mean over repeats)",
        &series,
        false,
        true,
        &marks,
    )
    .map(Some)
}

/// Training seconds (y, log scale) against training images (x, log scale), one line per
/// pipeline (mean over repeats). `None` without a curve.
pub fn time_vs_size(r: &CompareReport) -> Result<Option<String>> {
    if r.learning_curve.is_none() {
        return Ok(None);
    }
    let series = curve_series(r, |s| {
        let t = s.mean_train_seconds.max(1e-3);
        [t, t, t]
    });
    size_chart(
        "training time vs size chart",
        "Training time vs training images",
        "training seconds (log scale)",
        &series,
        true,
        false,
        &[],
    )
    .map(Some)
}
