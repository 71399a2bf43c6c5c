//! The model loader on valid files whose metadata JSON is mutated, then sealed again with a
//! fresh checksum (what the byte-level `model` target almost never gets past): every kind
//! (classical with PCA and a Nystroem map, CNN, int8 CNN), numbers made huge, negative or
//! fractional, strings and kinds swapped, arrays grown or emptied, keys dropped or added. A
//! file that loads must also report its dimensions, predict, export and write itself without
//! panicking, and nothing may allocate past the memory budget (1 GiB here) or the fuzzer's
//! RSS limit.
#![no_main]
use std::sync::OnceLock;

use hogsvm::classifier::Classifier;
use hogsvm::data::Dataset;
use hogsvm::model::container::{metadata, with_metadata};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

/// A small labelled dataset of `n` images of `rows x cols` (two classes of stripes).
fn dataset(n: usize, rows: usize, cols: usize) -> Dataset {
    let mut pixels = Vec::with_capacity(n * rows * cols);
    for i in 0..n {
        for r in 0..rows {
            for c in 0..cols {
                let v = if i % 2 == 0 { (r * 37 + i) % 256 } else { (c * 53 + i) % 256 };
                pixels.push(v as u8);
            }
        }
    }
    Dataset {
        rows,
        cols,
        channels: 1,
        pixels,
        labels: (0..n).map(|i| (i % 2) as u32).collect(),
        class_names: vec!["a".into(), "b".into()],
        sources: (0..n).map(|i| format!("img{i}")).collect(),
    }
}

/// One model file of each kind, trained once.
fn seeds() -> &'static [Vec<u8>; 3] {
    static SEEDS: OnceLock<[Vec<u8>; 3]> = OnceLock::new();
    SEEDS.get_or_init(|| {
        std::env::set_var("HOGSVM_MEMORY_BUDGET", "1G");
        let ds = dataset(40, 16, 16);
        let classical = hogsvm::pipeline::ClassicalConfig::default()
            .with(&[("cell", "4"), ("block", "2"), ("pca", "8"), ("nystroem", "12")])
            .expect("valid settings")
            .fit(&ds)
            .expect("fit")
            .0;
        let cnn_cfg = hogsvm::cnn::CnnConfig {
            channels: vec![4, 8],
            hidden: vec![8],
            epochs: 1,
            se_reduction: None,
            ..Default::default()
        };
        let cnn = cnn_cfg.fit(&ds, &mut |_| {}).expect("fit").0;
        let int8 = cnn
            .quantize(&hogsvm::cnn::QuantizeConfig::default(), Some(&ds))
            .expect("quantize");
        [
            classical.to_bytes().expect("bytes"),
            cnn.to_bytes().expect("bytes"),
            int8.to_bytes().expect("bytes"),
        ]
    })
}

/// Reads the fuzzer's bytes as choices.
struct Choices<'a>(&'a [u8]);

impl Choices<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<usize> {
        Some(usize::from(self.byte()?) << 8 | usize::from(self.byte()?))
    }
    fn u64(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for _ in 0..8 {
            v = v << 8 | u64::from(self.byte()?);
        }
        Some(v)
    }
}

const NUMBERS: &[f64] = &[
    0.0, 1.0, -1.0, 2.0, 3.0, 7.0, 8.0, 255.0, 256.0, 4096.0, 65535.0, 16777216.0,
    2147483648.0, 4294967296.0, 9007199254740992.0, 1e18, 1.8e19, 1e308, -1e308, 0.5, 1e-300,
    -0.0, 0.999,
];
const STRINGS: &[&str] = &[
    "", "none", "nan", "inf", "classical", "cnn", "cnn-int8", "static", "dynamic", "L2-Hys",
    "L1", "focal", "hellinger", "chi2", "l2", "balanced", "a", "\u{0}",
];
const KEYS: &[&str] = &[
    "pca", "rff", "nystroem", "resize", "hidden", "channels", "se_reduction", "inputs", "mode",
    "pruning", "hog_extra", "standardize", "normalize", "feature_map", "nystroem_folded",
    "class_names", "input",
];

/// Every node of `v`, as JSON pointers, in pre-order.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate().take(64) {
                pointers(x, format!("{at}/{i}"), out);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                pointers(x, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        _ => {}
    }
}

fn number(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 1.8e19 {
        if f >= 0.0 {
            json!(f as u64)
        } else {
            json!(f as i64)
        }
    } else {
        json!(f)
    }
}

/// Apply one mutation chosen by `c` to `meta`; `None` when the choices ran out.
fn mutate(meta: &mut Value, c: &mut Choices<'_>) -> Option<()> {
    let mut ptrs = Vec::new();
    pointers(meta, String::new(), &mut ptrs);
    let at = ptrs[c.u16()? % ptrs.len()].clone();
    let other = meta.pointer(&ptrs[c.u16()? % ptrs.len()]).cloned();
    let node = meta.pointer_mut(&at)?;
    match c.byte()? % 10 {
        0 => {
            let raw = c.u64()?;
            *node = match c.byte()? % 3 {
                0 => json!(raw),
                1 => json!(raw as i64),
                _ => match f64::from_bits(raw) {
                    f if f.is_finite() => number(f),
                    _ => json!(0),
                },
            };
        }
        1 => *node = number(NUMBERS[usize::from(c.byte()?) % NUMBERS.len()]),
        2 => *node = json!(STRINGS[usize::from(c.byte()?) % STRINGS.len()]),
        3 => *node = Value::Null,
        4 => *node = json!(c.byte()? % 2 == 0),
        5 => match node {
            Value::Array(a) => {
                let item = a.first().cloned().unwrap_or_else(|| number(NUMBERS[1]));
                a.push(item);
            }
            Value::Object(o) => {
                let k = KEYS[usize::from(c.byte()?) % KEYS.len()];
                o.insert(k.into(), number(NUMBERS[usize::from(c.byte()?) % NUMBERS.len()]));
            }
            _ => {}
        },
        6 => match node {
            Value::Array(a) if !a.is_empty() => {
                let i = usize::from(c.byte()?) % a.len();
                a.remove(i);
            }
            Value::Object(o) if !o.is_empty() => {
                let k = o.keys().nth(usize::from(c.byte()?) % o.len())?.clone();
                o.remove(&k);
            }
            _ => {}
        },
        7 => {
            if let Value::Array(a) = node {
                let times = usize::from(c.byte()? % 64);
                let copy = a.clone();
                for _ in 0..times {
                    a.extend(copy.iter().cloned());
                    if a.len() > 4096 {
                        break;
                    }
                }
            }
        }
        8 => *node = if c.byte()? % 2 == 0 { json!([]) } else { json!({}) },
        _ => *node = other?,
    }
    Some(())
}

fuzz_target!(|data: &[u8]| {
    let mut c = Choices(data);
    let Some(kind) = c.byte() else { return };
    let seed = &seeds()[usize::from(kind) % 3];
    let mut meta = metadata(seed).expect("seed metadata");
    for _ in 0..8 {
        if mutate(&mut meta, &mut c).is_none() {
            break;
        }
    }
    let Ok(bytes) = with_metadata(seed, &meta) else { return };
    let Ok(model) = hogsvm::model::any_from_bytes(&bytes) else { return };
    let m = model.classifier();
    let _ = m.dims();
    let _ = m.n_params();
    let _ = m.to_bytes();
    let _ = m.to_onnx(&hogsvm::onnx::ExportOptions::default());
    let input = m.input();
    if input.rows > 0 && input.cols > 0 && input.rows * input.cols <= 1 << 16 {
        let mut ds = dataset(2, input.rows, input.cols);
        ds.class_names = m.class_names().to_vec();
        ds.labels = vec![0, 0];
        let _ = m.scores(&ds);
        let _ = m.predict_scored(&ds);
    }
});
