//! Files hogsvm reads and writes.
//!
//! * [`read`]: every input file is read through [`read_file`]: a regular file (not a FIFO, a
//!   device or a folder: `/dev/zero` or a FIFO given as a model is an error, never an endless
//!   read or a hang), no larger than a limit stated by its kind, checked before and while
//!   reading.
//! * [`write`]: every output goes through one writer. A regular file (or a new one) is written to
//!   a temporary file beside it and renamed into place, so a crash, a full disk or a signal never
//!   leaves a half-written file or clobbers an old one; a symbolic link is written through (the
//!   file it points to is replaced, the link stays); a FIFO or a character device (`/dev/null`,
//!   `/dev/stdout`) is written through, never replaced; a folder, a block device or a socket is
//!   refused. [`check_outputs`] refuses, before any work, an output that is also an input or
//!   another output, and an output whose folder does not exist. Temporary files are registered
//!   so that a signal handler can remove them ([`remove_temp_files`]).
//! * [`npy`]: NumPy `.npy` feature and label files.

mod npy;
mod read;
mod write;

pub use npy::{
    parse_features_npy, read_features_npy, read_labels_npy, write_npy_f32, write_npy_i64,
    NpyRowWriter, MAX_NPY_BYTES,
};
pub use read::{
    file_kind, not_a_file_or_folder, read_file, read_model_bytes, read_text, MAX_TEXT_BYTES,
};
pub use write::{
    check_outputs, remove_temp_files, write_atomic, write_png_gray, write_png_gray_rows,
};
