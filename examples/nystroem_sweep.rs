//! Sweep the SVM's C (and optionally the kernel width) for one Nystroem configuration,
//! computing HOG, PCA and the map once.
//!
//! By default the pipeline is `hogsvm train`'s default HOG (3x3-pixel cells, 3x3 blocks, sqrt)
//! plus the same with 4x4 and 7x7 cells, PCA 256, a k-means Nystroem map with M landmarks,
//! optionally the mirrored training images, then a linear SVM (squared hinge, tolerance 0.01)
//! per C. Each accuracy equals what `hogsvm train --extra-cell 4 --extra-cell 7 --pca 256
//! --nystroem M [--flip] --c C` reports (same seed 0), without redoing the features per C.
//!
//! usage: cargo run --release --example nystroem_sweep -- DATA_DIR M flip|noflip C1,C2,...
//!
//! Environment (all optional):
//! - `EXTRA`: the extra HOG scales, space-separated, each as `--extra-cell` takes it (`4 7`,
//!   the default; e.g. `4/2 7` for 4x4-pixel cells in 2x2 blocks).
//! - `MAP`: feature map after HOG, as `--feature-map` takes it (`none`, `hellinger`, ...).
//! - `ORIENT`: orientation bins of every scale (9).
//! - `PCA`: PCA components (256).
//! - `GAMMA`: comma-separated multiples K of the "scale" kernel width, as `--gamma scale*K`
//!   (`1`).
//! - `VAL=1`: model selection without the test set: hold out a stratified 1/6 of the training
//!   set (10,000 of 60,000, seed 0), fit on the rest and report accuracy on the held-out part.

use std::error::Error;
use std::time::Instant;

use hogsvm::data::{load, Dataset, LoadOptions, Split};
use hogsvm::featmap::{FeatureMap, NystroemParams};
use hogsvm::hog::HogParams;
use hogsvm::pipeline::ClassicalConfig;
use hogsvm::reduce::{Components, PcaParams};
use hogsvm::svm::{LinearSvm, SvmParams};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 4 {
        return Err("usage: nystroem_sweep DATA_DIR M flip|noflip C1,C2,...".into());
    }
    let data = std::path::Path::new(&args[0]);
    let m: usize = args[1].parse()?;
    let flip = args[2] == "flip";
    let parse_list = |s: &str| {
        s.split(',')
            .map(|v| v.parse::<f64>())
            .collect::<Result<Vec<_>, _>>()
    };
    let cs = parse_list(&args[3])?;
    let gammas = parse_list(&env_or("GAMMA", "1"))?;
    let opts = |split| LoadOptions {
        split,
        ..Default::default()
    };
    let (train, test): (Dataset, Dataset) = if env_or("VAL", "0") == "1" {
        load(data, &opts(Split::Train))?
            .0
            .stratified_split(1.0 / 6.0, 0)?
    } else {
        (
            load(data, &opts(Split::Train))?.0,
            load(data, &opts(Split::Test))?.0,
        )
    };
    let orient: usize = env_or("ORIENT", "9").parse()?;
    let base = HogParams::default()
        .cell(3, 3)
        .block(3, 3)
        .transform_sqrt(true)
        .orientations(orient);
    let cfg = ClassicalConfig {
        hog: base,
        hog_extra: env_or("EXTRA", "4 7")
            .split_whitespace()
            .map(|s| base.extra_scale(s))
            .collect::<Result<Vec<_>, _>>()?,
        feature_map: env_or("MAP", "none").parse::<FeatureMap>()?,
        pca: Some(PcaParams {
            components: Components::Count(env_or("PCA", "256").parse()?),
            ..Default::default()
        }),
        nystroem: Some(NystroemParams {
            dim: m,
            ..Default::default()
        }),
        augment_flip: flip,
        ..Default::default()
    };
    println!(
        "train {} rows, evaluate on {} rows ({}), map {}, orientations {orient}, scales {}",
        train.len(),
        test.len(),
        if env_or("VAL", "0") == "1" {
            "held-out part of the training set"
        } else {
            "test set"
        },
        cfg.feature_map,
        std::iter::once(&cfg.hog)
            .chain(&cfg.hog_extra)
            .map(|h| format!("{}/{}", h.cell_rows, h.block_rows))
            .collect::<Vec<_>>()
            .join(" + ")
    );
    // The pipeline's stages one by one (as `ClassicalConfig::fit` runs them), so that the
    // features are computed once for every C.
    let t = Instant::now();
    let features = |ds: &Dataset| -> Result<ndarray::Array2<f32>, Box<dyn Error>> {
        let x = cfg.hog_features(ds)?;
        Ok(match cfg.feature_map {
            FeatureMap::None => x,
            map => map.transform(x.view())?,
        })
    };
    let mut x = features(&train)?;
    let mut labels = train.labels.clone();
    if flip {
        let f = features(&train.mirrored())?;
        x = ndarray::concatenate(ndarray::Axis(0), &[x.view(), f.view()])?;
        labels.extend_from_slice(&train.labels);
    }
    let pca = cfg.pca.as_ref().ok_or("no PCA")?.fit(x.view())?;
    let x = pca.transform(x.view())?;
    let x_test = pca.transform(features(&test)?.view())?;
    println!("HOG + PCA: {:.1} s", t.elapsed().as_secs_f64());
    let classes = train.class_names.len();
    for g in gammas {
        let t = Instant::now();
        let params = NystroemParams {
            gamma_scale: g,
            ..*cfg.nystroem.as_ref().ok_or("no map")?
        };
        let map = params.fit(x.view())?;
        let z_train = map.transform(x.view())?;
        let z_test = map.transform(x_test.view())?;
        println!(
            "gamma {:.5} (scale*{g}): map {:.1} s",
            map.gamma,
            t.elapsed().as_secs_f64()
        );
        for &c in &cs {
            let t = Instant::now();
            let svm = SvmParams {
                c,
                ..cfg.svm.clone()
            }
            .fit(z_train.view(), &labels, classes)?;
            let scores = svm.decision_function(z_test.view())?;
            let pred = LinearSvm::labels_from_scores(scores.view(), classes);
            let right = pred
                .iter()
                .zip(&test.labels)
                .filter(|(a, b)| a == b)
                .count();
            println!(
                "M {m} flip {flip} gamma scale*{g} C {c}: accuracy {:.4} ({right}/{}), SVM {:.1} s, passes {:?}",
                right as f64 / test.len() as f64,
                test.len(),
                t.elapsed().as_secs_f64(),
                svm.iterations
            );
        }
    }
    Ok(())
}
