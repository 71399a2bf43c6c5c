//! Sweep the SVM's C for one Nystroem configuration, computing the features once.
//!
//! The pipeline is `hogsvm train`'s default HOG (3x3-pixel cells, 3x3 blocks, sqrt) plus the
//! same with 4x4 and 7x7 cells, PCA 256, a k-means Nystroem map with M landmarks, optionally
//! the mirrored training images, then a linear SVM (squared hinge, tolerance 0.01) per C. Each
//! accuracy equals what `hogsvm train --extra-cell 4 --extra-cell 7 --pca 256 --nystroem M
//! [--flip] --c C` reports (same seed 0), without redoing HOG, PCA and the map for every C.
//!
//! usage: [EXTRA4=4/2] cargo run --release --example nystroem_sweep -- DATA_DIR M flip|noflip C1,C2,...
//! (EXTRA4 is the 4x4-pixel scale as `--extra-cell` takes it: `4`, the default, or `4/2`).

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
    let extra4 = std::env::var("EXTRA4").unwrap_or_else(|_| "4".into());
    let base = HogParams::default()
        .cell(3, 3)
        .block(3, 3)
        .transform_sqrt(true);
    let cfg = ClassicalConfig {
        hog: base,
        hog_extra: vec![base.extra_scale(&extra4)?, base.cell(7, 7)],
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
    // The pipeline's stages one by one (as `ClassicalConfig::fit` runs them), so that the
    // features are computed once for every C.
    let t = Instant::now();
    let mut x = cfg.hog_features(&train)?;
    let mut labels = train.labels.clone();
    if flip {
        let f = cfg.hog_features(&train.mirrored())?;
        x = ndarray::concatenate(ndarray::Axis(0), &[x.view(), f.view()])?;
        labels.extend_from_slice(&train.labels);
    }
    let pca = cfg.pca.as_ref().ok_or("no PCA")?.fit(x.view())?;
    let x = pca.transform(x.view())?;
    let map = cfg.nystroem.as_ref().ok_or("no map")?.fit(x.view())?;
    let z_train = map.transform(x.view())?;
    let z_test = map.transform(pca.transform(cfg.hog_features(&test)?.view())?.view())?;
    println!("features: {:.1} s", t.elapsed().as_secs_f64());
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
