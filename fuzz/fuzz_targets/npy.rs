//! The .npy features reader on arbitrary bytes: Ok (a finite 2-D array) or Err, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.npy");
    if let Ok(x) = hogsvm::io::parse_features_npy(data, path) {
        assert!(x.iter().all(|v| v.is_finite()));
    }
});
