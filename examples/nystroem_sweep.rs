//! Sweep the SVM's C for one Nystroem configuration, computing the features once.
//!
//! The pipeline is `hogsvm train`'s default HOG (3x3-pixel cells, 3x3 blocks, sqrt) plus the
//! same with 4x4 and 7x7 cells, PCA 256, a k-means Nystroem map with M landmarks, optionally
//! the mirrored training images, then a linear SVM (squared hinge, tolerance 0.01) per C. Each
//! accuracy equals what `hogsvm train --extra-cell 4 --extra-cell 7 --pca 256 --nystroem M
//! [--flip] --c C` reports (same seed 0), without redoing HOG, PCA and the map for every C.
//!
//! usage: cargo run --release --example nystroem_sweep -- DATA_DIR M flip|noflip C1,C2,...

use std::error::Error;
use std::time::Instant;

use hogsvm::data::{load, LoadOptions, Split};
use hogsvm::featmap::NystroemParams;
use hogsvm::hog::HogParams;
use hogsvm::pipeline::ClassicalConfig;
use hogsvm::reduce::{Components, PcaParams};
use hogsvm::svm::{LinearSvm, SvmParams};

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 4 {
        return Err("usage: nystroem_sweep DATA_DIR M flip|noflip C1,C2,...".into());
    }
    let data = std::path::Path::new(&args[0]);
    let m: usize = args[1].parse()?;
    let flip = args[2] == "flip";
    let cs = args[3]
        .split(',')
        .map(|v| v.parse::<f64>())
        .collect::<Result<Vec<_>, _>>()?;
    let opts = |split| LoadOptions {
        split,
        ..Default::default()
    };
    let (train, test) = (
        load(data, &opts(Split::Train))?.0,
        load(data, &opts(Split::Test))?.0,
    );
    let base = HogParams::default()
        .cell(3, 3)
        .block(3, 3)
        .transform_sqrt(true);
    let mut cfg = ClassicalConfig {
        hog: base,
        hog_extra: vec![base.cell(4, 4), base.cell(7, 7)],
        pca: Some(PcaParams {
            components: Components::Count(256),
            ..Default::default()
        }),
        nystroem: Some(NystroemParams {
            dim: m,
            ..Default::default()
        }),
        augment_flip: flip,
        ..Default::default()
    };
    cfg.svm = cfg.svm.c(cs[0]);
    let t = Instant::now();
    let (model, times) = cfg.fit(&train)?;
    println!(
        "fit (C {}): {:.1} s, {times:?}",
        cs[0],
        t.elapsed().as_secs_f64()
    );
    // The features the SVM saw, again, through the fitted model.
    let mut x = cfg.hog_features(&train)?;
    let mut labels = train.labels.clone();
    if flip {
        let f = cfg.hog_features(&train.mirrored())?;
        x = ndarray::concatenate(ndarray::Axis(0), &[x.view(), f.view()])?;
        labels.extend_from_slice(&train.labels);
    }
    let z_train = model.transform_hog(x)?;
    let z_test = model.transform_hog(cfg.hog_features(&test)?)?;
    let classes = train.class_names.len();
    for c in cs {
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
            "M {m} flip {flip} C {c}: test accuracy {:.4}, SVM {:.1} s, passes {:?}",
            right as f64 / test.len() as f64,
            t.elapsed().as_secs_f64(),
            svm.iterations
        );
    }
    Ok(())
}
