//! IDX files (the MNIST / Fashion-MNIST layout), raw or gzip-compressed.
//!
//! Layout: magic `0x00 0x00 <type> <ndim>`, then `ndim` big-endian `u32` sizes, then the data
//! (type `0x08` = unsigned byte, the only type these datasets use). Every declared size is
//! checked against the bytes actually present before anything is trusted, and the decompressed
//! stream is read with a cap, so a lying header can neither panic nor exhaust memory.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use crate::error::{Error, Result};

/// A decoded IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Sizes of each dimension (first is the item count).
    pub dims: Vec<usize>,
    /// The data, row-major.
    pub data: Vec<u8>,
}

/// Largest payload accepted (the full MNIST training images are 47 MB).
pub const MAX_IDX_BYTES: u64 = 2 << 30;

/// Read an IDX file; gzip is detected from its magic bytes, not its name.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(crate::io::not_a_file_or_folder(path));
    }
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = BufReader::new(file);
    let mut head = [0u8; 2];
    let n = read_fully(&mut reader, &mut head).map_err(|e| Error::io(path, e))?;
    let chained = std::io::Cursor::new(head[..n].to_vec()).chain(reader);
    if n == 2 && head == [0x1f, 0x8b] {
        parse(path, flate2::read::GzDecoder::new(chained))
    } else {
        parse(path, chained)
    }
}

/// Parse IDX bytes held in memory, gzip-compressed or not (detected from the magic bytes).
pub fn parse_maybe_gz(path: &Path, bytes: &[u8]) -> Result<IdxArray> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        parse(path, flate2::read::GzDecoder::new(bytes))
    } else {
        parse(path, bytes)
    }
}

/// Parse an IDX stream (already decompressed). `path` is only used in error messages.
pub fn parse(path: &Path, mut r: impl Read) -> Result<IdxArray> {
    let bad = |reason: String| Error::invalid_file(path, reason);
    let mut magic = [0u8; 4];
    let got = read_fully(&mut r, &mut magic).map_err(|e| Error::io(path, e))?;
    if got < 4 {
        return Err(bad(format!(
            "not an IDX file: {got} bytes, shorter than the 4-byte header"
        )));
    }
    if magic[0] != 0 || magic[1] != 0 {
        return Err(bad(format!(
            "not an IDX file: magic bytes {:02x} {:02x} {:02x} {:02x}, expected 00 00 08 <ndim>",
            magic[0], magic[1], magic[2], magic[3]
        )));
    }
    if magic[2] != 0x08 {
        return Err(bad(format!(
            "IDX data type 0x{:02x} is not supported (only 0x08, unsigned byte)",
            magic[2]
        )));
    }
    let ndim = magic[3] as usize;
    if ndim == 0 || ndim > 4 {
        return Err(bad(format!(
            "IDX file declares {ndim} dimensions, expected 1 to 4"
        )));
    }
    let mut dims = Vec::with_capacity(ndim);
    for i in 0..ndim {
        let mut b = [0u8; 4];
        if read_fully(&mut r, &mut b).map_err(|e| Error::io(path, e))? < 4 {
            return Err(bad(format!("IDX header truncated in dimension {i}")));
        }
        dims.push(u32::from_be_bytes(b) as usize);
    }
    let expected = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .filter(|&v| v <= MAX_IDX_BYTES)
        .ok_or_else(|| {
            bad(format!(
                "IDX header declares dimensions {dims:?}, more than {MAX_IDX_BYTES} bytes"
            ))
        })?;
    let mut data = Vec::new();
    r.take(expected + 1)
        .read_to_end(&mut data)
        .map_err(|e| bad(format!("cannot read IDX data: {e}")))?;
    if (data.len() as u64) < expected {
        return Err(bad(format!(
            "IDX header declares dimensions {dims:?} ({expected} bytes of data) but the file holds \
             only {} bytes after the header",
            data.len()
        )));
    }
    if data.len() as u64 > expected {
        return Err(bad(format!(
            "IDX file has more data than its header declares ({dims:?} = {expected} bytes)"
        )));
    }
    Ok(IdxArray { dims, data })
}

/// Read until `buf` is full or EOF; returns the bytes read.
fn read_fully(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Write an IDX array (used by tests and the fixture tools); not compressed.
pub fn write_idx(w: &mut impl std::io::Write, arr: &IdxArray) -> std::io::Result<()> {
    w.write_all(&[0, 0, 0x08, arr.dims.len() as u8])?;
    for &d in &arr.dims {
        w.write_all(&(d as u32).to_be_bytes())?;
    }
    w.write_all(&arr.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(dims: &[usize], data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        write_idx(
            &mut v,
            &IdxArray {
                dims: dims.to_vec(),
                data: data.to_vec(),
            },
        )
        .unwrap();
        v
    }

    #[test]
    fn round_trip() {
        let b = bytes(&[2, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        let a = parse(Path::new("x"), &b[..]).unwrap();
        assert_eq!(a.dims, vec![2, 2, 3]);
        assert_eq!(a.data.len(), 12);
    }

    #[test]
    fn header_larger_than_data_is_an_error() {
        let mut b = bytes(&[3, 2, 2], &[0; 12]);
        b.truncate(b.len() - 1);
        let e = parse(Path::new("imgs.idx"), &b[..])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("imgs.idx") && e.contains("holds only 11 bytes"),
            "{e}"
        );
    }

    #[test]
    fn huge_declared_size_does_not_allocate() {
        let b = bytes(&[u32::MAX as usize, 60000, 60000], &[]);
        let e = parse(Path::new("bomb"), &b[..]).unwrap_err().to_string();
        assert!(e.contains("more than"), "{e}");
    }

    #[test]
    fn wrong_magic_and_type() {
        assert!(parse(Path::new("a"), &[1u8, 2, 3, 4][..])
            .unwrap_err()
            .to_string()
            .contains("magic"));
        assert!(parse(Path::new("a"), &[0u8, 0, 0x0d, 1, 0, 0, 0, 0][..])
            .unwrap_err()
            .to_string()
            .contains("not supported"));
        assert!(parse(Path::new("a"), &[0u8, 0][..])
            .unwrap_err()
            .to_string()
            .contains("shorter"));
    }

    #[test]
    fn trailing_data_is_an_error() {
        let mut b = bytes(&[2], &[1, 2]);
        b.push(9);
        assert!(parse(Path::new("a"), &b[..])
            .unwrap_err()
            .to_string()
            .contains("more data"));
    }
}
