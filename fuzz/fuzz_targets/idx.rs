//! The IDX reader on arbitrary bytes, raw or gzip: it must return Ok or Err, never panic, hang
//! or exhaust memory (declared sizes are checked against the data before anything is trusted).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.idx");
    if let Ok(a) = hogsvm::data::idx::parse_maybe_gz(path, data) {
        let n: usize = a.dims.iter().product();
        assert_eq!(n, a.data.len());
    }
});
