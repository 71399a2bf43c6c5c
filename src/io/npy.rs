//! NumPy `.npy` files: features and labels read with their headers checked before anything is
//! allocated, features written whole or row block by row block.

use std::io::{BufWriter, Write};
use std::path::Path;

use ndarray::{Array1, Array2};
use ndarray_npy::WriteNpyExt;

use super::write::{write_atomic, Staged};
use crate::error::{Error, Result};

/// A 2-D `f32` `.npy` file written row block by row block, for outputs too large to hold in
/// memory. Rows go to a temporary file beside the destination; [`NpyRowWriter::finish`] writes
/// the final shape into the header (reserved at full width up front) and renames the file into
/// place. Dropped without `finish` (an error, a panic), it leaves nothing behind.
pub struct NpyRowWriter {
    path: std::path::PathBuf,
    staged: Staged,
    out: BufWriter<std::fs::File>,
    cols: usize,
    rows: u64,
}

/// Length of the reserved `.npy` header (magic to newline), a multiple of 64.
const NPY_HEADER_LEN: usize = 128;

fn npy_header(rows: u64, cols: usize) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let mut h = b"\x93NUMPY\x01\x00".to_vec();
    let body_len = NPY_HEADER_LEN - 10;
    h.extend_from_slice(&(body_len as u16).to_le_bytes());
    let mut body = dict.into_bytes();
    body.resize(body_len - 1, b' ');
    body.push(b'\n');
    h.extend_from_slice(&body);
    h
}

impl NpyRowWriter {
    /// Start writing `path`, an `n x cols` float32 array (n counted as rows are appended).
    pub fn create(path: &Path, cols: usize) -> Result<Self> {
        let staged = Staged::create(path)?;
        let file = staged.reopen(path)?;
        let mut out = BufWriter::new(file);
        out.write_all(&npy_header(0, cols))
            .map_err(|e| Error::io(path, e))?;
        Ok(NpyRowWriter {
            path: path.to_path_buf(),
            staged,
            out,
            cols,
            rows: 0,
        })
    }

    /// Append rows (`len` must be a multiple of the column count).
    pub fn append(&mut self, values: &[f32]) -> Result<()> {
        if self.cols == 0 || !values.len().is_multiple_of(self.cols) {
            return Err(Error::ShapeMismatch {
                what: format!("rows for {}", self.path.display()),
                expected: format!("a multiple of {} values", self.cols),
                got: values.len().to_string(),
            });
        }
        // In pieces: no second copy of a large block of rows.
        let mut buf = Vec::with_capacity(16 << 10);
        for part in values.chunks(4 << 10) {
            buf.clear();
            for v in part {
                buf.extend_from_slice(&v.to_le_bytes());
            }
            self.out
                .write_all(&buf)
                .map_err(|e| Error::io(&self.path, e))?;
        }
        self.rows += (values.len() / self.cols) as u64;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Write the final header and move the file into place.
    pub fn finish(self) -> Result<()> {
        use std::io::{Seek, SeekFrom};
        let NpyRowWriter {
            path,
            staged,
            out,
            cols,
            rows,
        } = self;
        let mut file = out
            .into_inner()
            .map_err(|e| Error::io(&path, e.into_error()))?;
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(&npy_header(rows, cols)))
            .map_err(|e| Error::io(&path, e))?;
        staged.finish(file, &path)
    }
}

/// Largest `.npy` file read.
pub const MAX_NPY_BYTES: u64 = 16 << 30;

/// Read a features file: a 2-D float32 (or float64, converted) `.npy` array of finite values.
/// Any other dtype or shape, a NaN or infinity, or a damaged file is an error naming the file
/// (and the row and column of a bad value).
pub fn read_features_npy(path: &Path) -> Result<Array2<f32>> {
    parse_features_npy(&read_capped(path)?, path)
}

/// Check that a `.npy` header's shape and dtype fit in the bytes that follow it, before any
/// reader allocates for them (found by the fuzzer: 75 bytes declaring a 3.8 GB array).
fn check_npy_header(bytes: &[u8]) -> std::result::Result<(), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (no \\x93NUMPY magic)".into());
    }
    let (len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(format!(".npy format version {v} is not supported")),
    };
    let end = start
        .checked_add(len)
        .filter(|&e| e <= bytes.len())
        .ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(&bytes[start..end]).map_err(|_| "non-UTF-8 .npy header")?;
    let field = |key: &str| {
        header
            .find(key)
            .map(|i| &header[i + key.len()..])
            .ok_or_else(|| format!(".npy header lacks {key}"))
    };
    let descr = field("'descr':")?;
    let itemsize: u64 = descr
        .trim_start()
        .trim_start_matches(['\'', '"'])
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .map_err(|_| "unreadable dtype in .npy header".to_string())?;
    let shape = field("'shape':")?;
    let inner = shape
        .trim_start()
        .strip_prefix('(')
        .and_then(|r| r.split(')').next())
        .ok_or("unreadable shape in .npy header")?;
    let mut count: u64 = 1;
    for part in inner.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let d: u64 = part
            .parse()
            .map_err(|_| format!("unreadable dimension `{part}` in .npy header"))?;
        count = count
            .checked_mul(d)
            .ok_or("dimensions in .npy header overflow")?;
    }
    let need = count
        .checked_mul(itemsize)
        .ok_or("dimensions in .npy header overflow")?;
    let have = (bytes.len() - end) as u64;
    if need > have {
        return Err(format!(
            ".npy header declares {need} bytes of data but the file holds {have}"
        ));
    }
    Ok(())
}

/// [`read_features_npy`] on bytes in memory (`path` only names them in errors).
pub fn parse_features_npy(bytes: &[u8], path: &Path) -> Result<Array2<f32>> {
    use ndarray_npy::ReadNpyExt;
    let bad = |why: String| Error::invalid_file(path, why);
    check_npy_header(bytes).map_err(bad)?;
    let x = match Array2::<f32>::read_npy(bytes) {
        Ok(a) => a,
        Err(e32) => match Array2::<f64>::read_npy(bytes) {
            Ok(a) => a.mapv(|v| v as f32),
            Err(_) => {
                return Err(bad(format!(
                    "not a 2-D float32/float64 .npy array of features ({e32})"
                )))
            }
        },
    };
    if let Some((i, v)) = x.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        let cols = x.ncols().max(1);
        return Err(bad(format!(
            "feature at row {}, column {} is {v}; features must be finite",
            i / cols,
            i % cols
        )));
    }
    Ok(x)
}

/// Read a labels file: a 1-D `.npy` array of non-negative integers (int64, int32, uint8,
/// uint32 or uint64).
pub fn read_labels_npy(path: &Path) -> Result<Vec<u32>> {
    use ndarray_npy::ReadNpyExt;
    let bytes = read_capped(path)?;
    let bad = |why: String| Error::invalid_file(path, why);
    check_npy_header(&bytes).map_err(bad)?;
    let as_u32 = |v: Vec<i128>| -> Result<Vec<u32>> {
        v.into_iter()
            .enumerate()
            .map(|(i, l)| {
                u32::try_from(l)
                    .map_err(|_| bad(format!("label {l} at index {i} is not a class index")))
            })
            .collect()
    };
    if let Ok(a) = Array1::<i64>::read_npy(&bytes[..]) {
        return as_u32(a.iter().map(|&v| v as i128).collect());
    }
    if let Ok(a) = Array1::<i32>::read_npy(&bytes[..]) {
        return as_u32(a.iter().map(|&v| v as i128).collect());
    }
    if let Ok(a) = Array1::<u8>::read_npy(&bytes[..]) {
        return as_u32(a.iter().map(|&v| v as i128).collect());
    }
    if let Ok(a) = Array1::<u32>::read_npy(&bytes[..]) {
        return as_u32(a.iter().map(|&v| v as i128).collect());
    }
    match Array1::<u64>::read_npy(&bytes[..]) {
        Ok(a) => as_u32(a.iter().map(|&v| v as i128).collect()),
        Err(e) => Err(bad(format!("not a 1-D integer .npy array of labels ({e})"))),
    }
}

fn read_capped(path: &Path) -> Result<Vec<u8>> {
    super::read_file(path, MAX_NPY_BYTES, ".npy")
}

/// Write a 2-D `f32` array as a NumPy `.npy` file (atomically).
pub fn write_npy_f32(path: &Path, a: &Array2<f32>) -> Result<()> {
    write_atomic(path, |w| a.write_npy(w).map_err(std::io::Error::other))
}

/// Write a 1-D `i64` array as a NumPy `.npy` file (atomically).
pub fn write_npy_i64(path: &Path, a: &Array1<i64>) -> Result<()> {
    write_atomic(path, |w| a.write_npy(w).map_err(std::io::Error::other))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn row_writer_matches_ndarray_npy_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rows.npy");
        let mut w = NpyRowWriter::create(&p, 3).unwrap();
        w.append(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        w.append(&[7.0, 8.0, 9.0]).unwrap();
        assert!(w.append(&[1.0]).is_err());
        w.finish().unwrap();
        let a: Array2<f32> = ndarray_npy::read_npy(&p).unwrap();
        assert_eq!(
            a,
            ndarray::array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]
        );
        // Dropped before finish: nothing left, the existing file untouched.
        let mut w = NpyRowWriter::create(&p, 3).unwrap();
        w.append(&[0.0; 3]).unwrap();
        drop(w);
        let a: Array2<f32> = ndarray_npy::read_npy(&p).unwrap();
        assert_eq!(a.nrows(), 3);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn feature_and_label_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.npy");
        let mut x = Array2::<f32>::zeros((3, 4));
        write_npy_f32(&p, &x).unwrap();
        assert_eq!(read_features_npy(&p).unwrap().dim(), (3, 4));
        x[[2, 1]] = f32::NAN;
        write_npy_f32(&p, &x).unwrap();
        let e = read_features_npy(&p).unwrap_err().to_string();
        assert!(e.contains("row 2, column 1") && e.contains("finite"), "{e}");
        x[[2, 1]] = f32::INFINITY;
        write_npy_f32(&p, &x).unwrap();
        assert!(read_features_npy(&p).is_err());
        // float64 is converted; other dtypes and shapes are errors.
        ndarray_npy::write_npy(&p, &Array2::<f64>::ones((2, 2))).unwrap();
        assert_eq!(read_features_npy(&p).unwrap(), Array2::<f32>::ones((2, 2)));
        ndarray_npy::write_npy(&p, &Array2::<i32>::ones((2, 2))).unwrap();
        assert!(read_features_npy(&p)
            .unwrap_err()
            .to_string()
            .contains("float32"));
        ndarray_npy::write_npy(&p, &Array1::<f32>::ones(5)).unwrap();
        assert!(read_features_npy(&p).is_err());
        std::fs::write(&p, b"\x93NUMPY garbage").unwrap();
        assert!(read_features_npy(&p).is_err());
        // Regression (fuzzer, npy target): 75 bytes whose header declares a 3.8 GB array made
        // the reader allocate it; the header is now checked against the data first.
        let bomb =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/hostile/fuzz-oom-header.npy");
        let e = read_features_npy(&bomb).unwrap_err().to_string();
        assert!(e.contains("fuzz-oom-header.npy"), "{e}");
        // A declared shape larger than the data is refused without reading it.
        let mut big = b"\x93NUMPY\x01\x00".to_vec();
        let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }";
        let mut body = h.as_bytes().to_vec();
        body.resize(118 - 1, b' ');
        body.push(b'\n');
        big.extend_from_slice(&(body.len() as u16).to_le_bytes());
        big.extend_from_slice(&body);
        big.extend_from_slice(&[0; 16]);
        std::fs::write(&p, &big).unwrap();
        let e = read_features_npy(&p).unwrap_err().to_string();
        assert!(e.contains("declares 40000000000 bytes"), "{e}");
        // Labels.
        let l = dir.path().join("y.npy");
        write_npy_i64(&l, &Array1::from(vec![0, 2, 1])).unwrap();
        assert_eq!(read_labels_npy(&l).unwrap(), vec![0, 2, 1]);
        ndarray_npy::write_npy(&l, &Array1::<u8>::from(vec![3, 4])).unwrap();
        assert_eq!(read_labels_npy(&l).unwrap(), vec![3, 4]);
        write_npy_i64(&l, &Array1::from(vec![0, -1])).unwrap();
        assert!(read_labels_npy(&l).unwrap_err().to_string().contains("-1"));
        ndarray_npy::write_npy(&l, &Array1::<f32>::ones(2)).unwrap();
        assert!(read_labels_npy(&l).is_err());
    }

    #[test]
    fn writes_replace_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        write_npy_f32(&p, &Array2::zeros((2, 3))).unwrap();
        let a: Array2<f32> = ndarray_npy::read_npy(&p).unwrap();
        assert_eq!(a.dim(), (2, 3));
    }
}
