//! Bounded reads of regular files.
//!
//! `std::fs::read` trusts the file: on `/dev/zero` it reads until memory runs out (its size reads
//! as 0), on a FIFO it waits for a writer for ever. Every file hogsvm reads whole goes through
//! [`read_file`] instead: the path must name a regular file (after following symbolic links), no
//! larger than the limit its kind states, and the read itself stops one byte past the limit, so
//! a file that grows while it is read cannot get past it either.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// Largest text file read (a `compare --config` file, a `classes.txt`).
pub const MAX_TEXT_BYTES: u64 = 16 << 20;

/// What a file system entry is, in words: `a regular file`, `a folder`, `a FIFO`, `a character
/// device`, `a block device`, `a socket`, `a symbolic link`.
pub fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_file() {
        return "a regular file";
    }
    if t.is_dir() {
        return "a folder";
    }
    if t.is_symlink() {
        return "a symbolic link";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

/// The bytes of the regular file at `path`, at most `limit` of them; `what` names the kind of
/// file in errors (`model`, `.npy`, `image`, ...). A missing file, a folder, a FIFO or device, or
/// a file over the limit is an error naming the path, raised before anything is allocated.
pub fn read_file(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::invalid_file(
            path,
            format!(
                "is {}, not a {what} file (hogsvm reads only regular files)",
                file_kind(&meta)
            ),
        ));
    }
    let too_large = |len: u64| {
        Error::invalid_file(
            path,
            format!("{len} bytes is more than the {limit}-byte limit for a {what} file"),
        )
    };
    if meta.len() > limit {
        return Err(too_large(meta.len()));
    }
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// The error for a path that is neither a file nor a folder hogsvm can read, said as what it
/// is: "no such file or folder" only when nothing is there (`/dev/zero` is a character device,
/// a FIFO a FIFO).
pub fn not_a_file_or_folder(path: &Path) -> Error {
    match std::fs::metadata(path) {
        Ok(m) => Error::invalid_file(
            path,
            format!("is {}, not a file or folder hogsvm reads", file_kind(&m)),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
        ),
        Err(e) => Error::io(path, e),
    }
}

/// A UTF-8 text file of at most [`MAX_TEXT_BYTES`] (see [`read_file`]).
pub fn read_text(path: &Path, what: &str) -> Result<String> {
    let bytes = read_file(path, MAX_TEXT_BYTES, what)?;
    String::from_utf8(bytes).map_err(|_| Error::invalid_file(path, format!("{what} is not UTF-8")))
}

/// Read a model file's bytes, refusing anything but a regular file and one larger than any model
/// ([`crate::model::container::MAX_MODEL_BYTES`]).
pub fn read_model_bytes(path: &Path) -> Result<Vec<u8>> {
    read_file(path, crate::model::container::MAX_MODEL_BYTES, "model")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_regular_files_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        std::fs::write(&p, b"12345").unwrap();
        assert_eq!(read_file(&p, 5, "test").unwrap(), b"12345");
        let e = read_file(&p, 4, "test").unwrap_err().to_string();
        assert!(e.contains("5 bytes is more than the 4-byte limit"), "{e}");
        let e = read_file(dir.path(), 10, "model").unwrap_err().to_string();
        assert!(e.contains("is a folder, not a model file"), "{e}");
        let e = read_file(&dir.path().join("none"), 10, "model").unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
        #[cfg(unix)]
        {
            // A character device reads as size 0 and never ends: refused before reading.
            let e = read_file(Path::new("/dev/zero"), 1 << 30, "model")
                .unwrap_err()
                .to_string();
            assert!(e.contains("is a character device, not a model file"), "{e}");
        }
    }
}
