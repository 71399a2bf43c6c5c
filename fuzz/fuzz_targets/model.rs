//! The model loader on arbitrary bytes: a model that loads must also predict without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = hogsvm::pipeline::ClassicalModel::from_bytes(data) {
        let ds = hogsvm::data::Dataset {
            rows: m.rows,
            cols: m.cols,
            channels: 1,
            pixels: vec![0; m.rows * m.cols],
            labels: vec![0],
            class_names: m.class_names.clone(),
            sources: vec!["fuzz".into()],
        };
        let _ = m.decision_function(&ds);
    }
});
