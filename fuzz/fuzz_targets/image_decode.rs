//! The image-folder loader's decode path on arbitrary bytes, with the same limits as the
//! loader; a decoded image also goes through HOG.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.img");
    if let Ok(img) = hogsvm::data::folder::decode_gray_bytes(data, path, None) {
        let (w, h) = img.dimensions();
        let hog = hogsvm::hog::Hog::new(hogsvm::hog::HogParams::default().cell(4, 4).block(2, 2))
            .expect("valid params");
        if let Ok(im) = hogsvm::hog::ImageRef::gray_u8(img.as_raw(), h as usize, w as usize) {
            let _ = hog.compute(im);
        }
    }
});
