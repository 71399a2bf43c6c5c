//! Dataset fingerprints ([`DatasetFingerprint`], a report type): image count, class counts and a SHA-256 over the images and labels, so
//! two reports (or two rows of one report) can be checked to use the very same data.

use sha2::{Digest, Sha256};

use crate::data::Dataset;
pub use crate::report::DatasetFingerprint;

impl DatasetFingerprint {
    /// Fingerprint of `ds`.
    pub fn of(ds: &Dataset) -> Self {
        DatasetFingerprint {
            images: ds.len(),
            class_counts: ds.class_counts(),
            sha256: sha256_hex(ds),
        }
    }
}

/// SHA-256, lowercase hex, over: `b"hogsvm-dataset-v1"`, rows, cols and image count (each u64
/// little-endian), every pixel (u8, image after image, row-major), every label (u32
/// little-endian). Class names and file names are not part of it: the same pixels and labels
/// give the same fingerprint wherever they were read from.
pub fn sha256_hex(ds: &Dataset) -> String {
    let mut h = Sha256::new();
    h.update(b"hogsvm-dataset-v1");
    for v in [ds.rows as u64, ds.cols as u64, ds.len() as u64] {
        h.update(v.to_le_bytes());
    }
    h.update(&ds.pixels);
    let labels: Vec<u8> = ds.labels.iter().flat_map(|l| l.to_le_bytes()).collect();
    h.update(&labels);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Documentation of the hash input (see [`sha256_hex`]).
pub fn hash_input() -> &'static str {
    "b\"hogsvm-dataset-v1\" || rows u64le || cols u64le || n u64le || pixels u8[n*rows*cols] || labels u32le[n]"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(pixels: Vec<u8>, labels: Vec<u32>) -> Dataset {
        let n = labels.len();
        Dataset {
            rows: 2,
            cols: 2,
            channels: 1,
            pixels,
            labels,
            class_names: vec!["a".into(), "b".into()],
            sources: (0..n).map(|i| format!("img{i}")).collect(),
        }
    }

    #[test]
    fn fingerprint_is_content_only_and_sensitive() {
        let a = ds(vec![0, 1, 2, 3, 4, 5, 6, 7], vec![0, 1]);
        let fa = DatasetFingerprint::of(&a);
        assert_eq!(fa.images, 2);
        assert_eq!(fa.class_counts, vec![1, 1]);
        assert_eq!(fa.sha256.len(), 64);
        // Same content, other names and sources: same hash.
        let mut b = a.clone();
        b.class_names = vec!["x".into(), "y".into()];
        b.sources = vec!["elsewhere".into(), "too".into()];
        assert_eq!(DatasetFingerprint::of(&b), fa);
        // One pixel, one label, the order or the shape changed: another hash.
        let mut c = a.clone();
        c.pixels[7] = 8;
        assert_ne!(sha256_hex(&c), fa.sha256);
        let mut d = a.clone();
        d.labels[1] = 0;
        assert_ne!(sha256_hex(&d), fa.sha256);
        assert_ne!(sha256_hex(&a.subset(&[1, 0])), fa.sha256);
        let mut e = a.clone();
        e.rows = 1;
        e.cols = 4;
        assert_ne!(sha256_hex(&e), fa.sha256);
        // Known value (pins the hash input layout).
        let empty = ds(vec![], vec![]);
        let mut h = Sha256::new();
        h.update(b"hogsvm-dataset-v1");
        h.update(2u64.to_le_bytes());
        h.update(2u64.to_le_bytes());
        h.update(0u64.to_le_bytes());
        let want: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(sha256_hex(&empty), want);
    }
}
