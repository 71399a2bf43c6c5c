//! Test helpers shared by the CNN's unit tests: a small random model with non-trivial batch
//! norm, and deterministic images.

use std::collections::BTreeMap;

use super::aug;
use super::net::Net;
use super::{CnnConfig, CnnInfo, CnnModel};
use crate::data::Dataset;

/// A 16x16, 3-class model of the given shape, with batch-norm parameters and statistics away
/// from their initial values.
pub(crate) fn model(channels: Vec<usize>, se: Option<usize>, hidden: Vec<usize>) -> CnnModel {
    let cfg = CnnConfig {
        channels,
        se_reduction: se,
        hidden,
        ..Default::default()
    };
    let mut rng = aug::rng_for(&[7]);
    let mut net = Net::init(&cfg, 16, 16, 3, &mut rng).unwrap();
    // Non-trivial batch-norm parameters and statistics.
    let vals: BTreeMap<String, Vec<f32>> = net
        .export()
        .unwrap()
        .into_iter()
        .map(|(n, _, v)| {
            let v = if n.starts_with("bn") {
                v.iter()
                    .enumerate()
                    .map(|(j, _)| 0.5 + 0.1 * (j % 5) as f32)
                    .collect()
            } else if n.ends_with(".bias") {
                v.iter()
                    .enumerate()
                    .map(|(j, _)| 0.01 * (j % 3) as f32)
                    .collect()
            } else {
                v
            };
            (n, v)
        })
        .collect();
    net.import(&vals).unwrap();
    CnnModel {
        info: CnnInfo {
            config: cfg,
            class_names: vec!["a".into(), "b".into(), "c".into()],
            rows: 16,
            cols: 16,
            mean: 0.3,
            std: 0.2,
            best_epoch: 1,
            pruning: None,
        },
        net,
    }
}

/// `n` deterministic 16x16 images with labels 0, 1, 2, 0, ...
pub(crate) fn images(n: usize) -> Dataset {
    let pixels = (0..n * 256)
        .map(|i| ((i * 37 + i / 7) % 256) as u8)
        .collect();
    Dataset {
        rows: 16,
        cols: 16,
        channels: 1,
        pixels,
        labels: (0..n as u32).map(|i| i % 3).collect(),
        class_names: vec!["a".into(), "b".into(), "c".into()],
        sources: vec![String::new(); n],
    }
}
