use super::*;
use crate::cnn::test_util::{images, model};

/// `m` quantised in each mode, static calibrated on all of `ds`.
fn both_modes(m: &CnnModel, ds: &Dataset) -> Vec<(QuantMode, CnnInt8Model)> {
    [QuantMode::Static, QuantMode::Dynamic]
        .into_iter()
        .map(|mode| {
            let cfg = QuantizeConfig {
                mode,
                calib_images: ds.len(),
            };
            (mode, m.quantize(&cfg, Some(ds)).unwrap())
        })
        .collect()
}

fn static_cfg(n: usize) -> QuantizeConfig {
    QuantizeConfig {
        mode: QuantMode::Static,
        calib_images: n,
    }
}

/// The folded float layers' logits, image by image.
fn float_logits(m: &CnnModel, ds: &Dataset) -> Vec<f32> {
    let layers = float_layers(m).unwrap();
    let mut x = normalise(&ds.pixels, m.info.mean, m.info.std);
    let (mut h, mut w) = (m.info.rows, m.info.cols);
    for l in &layers {
        x = l.forward(&x, ds.len(), (h, w));
        (h, w) = l.out_size(h, w);
    }
    x
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn folding_batch_norm_keeps_the_float_models_outputs() {
    for hidden in [vec![8], vec![], vec![6, 5]] {
        let m = model(vec![4, 6], None, hidden);
        let ds = images(9);
        let want = m.scores(&ds).unwrap();
        let logits = float_logits(&m, &ds);
        let got = softmax_rows(Array2::from_shape_vec((9, 3), logits).unwrap());
        let d = max_abs_diff(got.as_slice().unwrap(), want.as_slice().unwrap());
        assert!(d < 1e-5, "probabilities differ by {d}");
    }
}

/// The whole int8 network against the folded float one on deterministic images: every logit
/// within 2% of the float logits' range (8-bit codes on 3-4 layers; measured about 0.5%).
#[test]
fn int8_models_stay_close_to_the_float_model_and_every_path_agrees() {
    let m = model(vec![4, 6], None, vec![8]);
    let ds = images(40);
    let want = float_logits(&m, &ds);
    let range = want.iter().fold(0.0f32, |r, v| r.max(v.abs()));
    for (mode, q) in both_modes(&m, &ds) {
        let got = q.logits(&ds).unwrap();
        let d = max_abs_diff(got.as_slice().unwrap(), &want);
        assert!(d <= 0.02 * range, "{mode}: {d} vs range {range}");
        for isa in Isa::available() {
            let other = q.with_isa(isa).unwrap().logits(&ds).unwrap();
            assert_eq!(other, got, "{mode} {}", isa.name());
        }
    }
}

#[test]
fn labels_do_not_depend_on_the_thread_count_or_the_batch() {
    let m = model(vec![4, 6], None, vec![8]);
    let ds = images(50);
    for (mode, q) in both_modes(&m, &ds) {
        let run = |t: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
                .install(|| q.logits(&ds).unwrap())
        };
        let one = run(1);
        assert_eq!(one, run(2), "{mode}");
        assert_eq!(one, run(3), "{mode}");
        // An image alone gives what it gives in a batch (dynamic codes are per image).
        let single = ds.subset(&[17]);
        assert_eq!(q.logits(&single).unwrap().row(0), one.row(17), "{mode}");
    }
}

#[test]
fn model_files_round_trip_and_are_about_four_times_smaller() {
    let m = model(vec![8, 16], None, vec![32]);
    let ds = images(20);
    for (mode, q) in both_modes(&m, &ds) {
        let bytes = q.to_bytes().unwrap();
        let back = CnnInt8Model::from_bytes(&bytes).unwrap();
        assert_eq!(back.to_bytes().unwrap(), bytes);
        assert_eq!(back.logits(&ds).unwrap(), q.logits(&ds).unwrap());
        assert_eq!(back.mode, mode);
        assert_eq!(back.dims().unwrap(), m.dims().unwrap());
        let float = m.to_bytes().unwrap().len() as f64;
        assert!(
            float / bytes.len() as f64 > 2.5,
            "{} vs {float}",
            bytes.len()
        );
    }
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let m = model(vec![4], None, vec![8]);
    let ds = images(5);
    let msg = |r: Result<CnnInt8Model>| r.unwrap_err().to_string();
    assert!(msg(m.quantize(&static_cfg(5), None)).contains("calibration images"));
    assert!(msg(m.quantize(&static_cfg(0), Some(&ds))).contains("calib-images"));
    let mut other = images(3);
    other.rows = 8;
    other.cols = 32;
    assert!(msg(m.quantize(&static_cfg(5), Some(&other))).contains("16x16"));
    let se = model(vec![4], Some(2), vec![8]);
    assert!(msg(se.quantize(&static_cfg(5), Some(&ds))).contains("squeeze-and-excitation"));
    // A file whose weights hold -128, or whose static codes are missing.
    let q = m.quantize(&static_cfg(5), Some(&ds)).unwrap();
    let mut bad = q.clone();
    bad.layers[0].layer.w[0] = i8::MIN;
    let e = CnnInt8Model::from_bytes(&bad.to_bytes().unwrap()).unwrap_err();
    assert!(e.to_string().contains("-128"), "{e}");
    let mut bad = q.clone();
    bad.inputs.pop();
    let e = CnnInt8Model::from_bytes(&bad.to_bytes().unwrap()).unwrap_err();
    assert!(e.to_string().contains("input codes"), "{e}");
    let mut bad = q;
    bad.inputs[1].scale = f32::NAN;
    assert!(CnnInt8Model::from_bytes(&bad.to_bytes().unwrap()).is_err());
}

#[test]
fn static_calibration_uses_the_first_images_and_records_them() {
    let m = model(vec![4], None, vec![8]);
    let ds = images(30);
    let q = m.quantize(&static_cfg(10), Some(&ds)).unwrap();
    assert_eq!(
        q.calibration,
        Some(Calibration {
            method: "minmax".into(),
            images: 10
        })
    );
    let q2 = m
        .quantize(
            &static_cfg(10),
            Some(&ds.subset(&(0..10).collect::<Vec<_>>())),
        )
        .unwrap();
    assert_eq!(q.inputs, q2.inputs);
    // More images asked for than given: all of them.
    let q3 = m.quantize(&static_cfg(1000), Some(&ds)).unwrap();
    assert_eq!(q3.calibration.unwrap().images, 30);
}
