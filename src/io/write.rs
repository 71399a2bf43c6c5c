//! The one writer every output goes through (see the [module docs](super)).
//!
//! A plain "temp file + rename" replaces whatever the path names: run as root, `--out /dev/null`
//! would replace the system's `/dev/null` with a regular file. So the target is looked at first
//! ([`Target`]): a regular file or a new name is replaced atomically; a symbolic link is followed
//! and the file it names is replaced (the link stays); a FIFO or a character device is written
//! through, never replaced; anything else is refused.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// Where an output's bytes go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// A regular file, or a name that does not exist yet: written to a temporary file beside
    /// it and renamed over it.
    Replace(PathBuf),
    /// A FIFO or a character device: opened and written through.
    Through(PathBuf),
}

fn refuse(path: &Path, reason: impl Into<String>) -> Error {
    Error::Output {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// What writing to `path` means; an error for a folder, a block device, a socket, a dangling
/// link or a missing folder.
fn target(path: &Path) -> Result<Target> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            folder_exists(path)?;
            return Ok(Target::Replace(path.to_path_buf()));
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    if meta.file_type().is_symlink() {
        let resolved = match std::fs::canonicalize(path) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(refuse(path, "is a symbolic link to a missing file"))
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        let meta = std::fs::metadata(&resolved).map_err(|e| Error::io(path, e))?;
        return classify(resolved, &meta);
    }
    classify(path.to_path_buf(), &meta)
}

fn classify(path: PathBuf, meta: &std::fs::Metadata) -> Result<Target> {
    let t = meta.file_type();
    if t.is_file() {
        return Ok(Target::Replace(path));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() || t.is_char_device() {
            return Ok(Target::Through(path));
        }
    }
    Err(refuse(
        &path,
        format!(
            "is {}; an output must be a regular file (replaced atomically), a FIFO or a \
             character device (written through)",
            super::file_kind(meta)
        ),
    ))
}

fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn folder_exists(path: &Path) -> Result<()> {
    let dir = folder_of(path);
    if !dir.is_dir() {
        return Err(Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("folder {} does not exist", dir.display()),
            ),
        ));
    }
    Ok(())
}

/// Temporary files alive now, for [`remove_temp_files`].
static TEMPS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn temps() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    TEMPS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Remove every temporary file an unfinished write holds (what a signal handler calls before
/// the process ends, since destructors do not run then). Best effort: errors are ignored.
pub fn remove_temp_files() {
    for p in temps().drain(..) {
        let _ = std::fs::remove_file(p);
    }
}

/// A registered temporary file: removed when dropped, or renamed into place by [`Temp::persist`].
pub(super) struct Temp {
    file: Option<tempfile::NamedTempFile>,
    path: PathBuf,
}

impl Temp {
    /// A new temporary file in `dir`, for the output `out` (named in errors).
    fn new_in(dir: &Path, out: &Path) -> Result<Temp> {
        let file = tempfile::Builder::new()
            .prefix(".hogsvm-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| Error::io(out, e))?;
        let path = file.path().to_path_buf();
        temps().push(path.clone());
        Ok(Temp {
            file: Some(file),
            path,
        })
    }

    fn file(&self) -> &std::fs::File {
        self.file
            .as_ref()
            .expect("present until persisted")
            .as_file()
    }

    fn reopen(&self, out: &Path) -> Result<std::fs::File> {
        self.file
            .as_ref()
            .expect("present until persisted")
            .reopen()
            .map_err(|e| Error::io(out, e))
    }

    /// Sync the content (written through `file`) and rename it over `path`. Temporary files
    /// are created private (0600); the result gets ordinary permissions (0644), or keeps those
    /// of the file it replaces.
    fn persist(mut self, file: &std::fs::File, path: &Path) -> Result<()> {
        file.sync_all().map_err(|e| Error::io(path, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map(|m| m.permissions().mode() & 0o7777)
                .unwrap_or(0o644);
            file.set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io(path, e))?;
        }
        let tmp = self.file.take().expect("present until persisted");
        tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
        Ok(())
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        temps().retain(|p| p != &self.path);
        // The NamedTempFile, if still here, removes the file itself.
    }
}

/// Write `path`: `write` fills a buffered temporary file beside it, which is flushed, synced
/// and renamed over `path` only if `write` succeeded; or, for a FIFO or a character device,
/// `write` writes through to it (see the [module docs](self)).
pub fn write_atomic<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut dyn Write) -> std::io::Result<()>,
{
    match target(path)? {
        Target::Replace(p) => {
            let tmp = Temp::new_in(folder_of(&p), path)?;
            {
                let mut w = BufWriter::new(tmp.file());
                write(&mut w).map_err(|e| Error::io(path, e))?;
                w.flush().map_err(|e| Error::io(path, e))?;
            }
            let file = tmp.file().try_clone().map_err(|e| Error::io(path, e))?;
            tmp.persist(&file, &p)
        }
        Target::Through(p) => {
            let f = open_through(&p)?;
            let mut w = BufWriter::new(f);
            write(&mut w).map_err(|e| Error::io(path, e))?;
            w.flush().map_err(|e| Error::io(path, e))
        }
    }
}

fn open_through(p: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(p)
        .map_err(|e| Error::io(p, e))
}

/// A file written in pieces and moved into place at the end: a temporary file beside a regular
/// target, or in the system's temporary folder for a FIFO or a device (copied through at the
/// end). Dropped before [`Staged::finish`], it leaves nothing behind.
pub(super) struct Staged {
    target: Target,
    tmp: Temp,
}

impl Staged {
    /// Stage the output `path`.
    pub(super) fn create(path: &Path) -> Result<Staged> {
        let target = target(path)?;
        let tmp = match &target {
            Target::Replace(p) => Temp::new_in(folder_of(p), path)?,
            Target::Through(_) => Temp::new_in(&std::env::temp_dir(), path)?,
        };
        Ok(Staged { target, tmp })
    }

    /// A second handle on the temporary file, to write (and seek) through.
    pub(super) fn reopen(&self, out: &Path) -> Result<std::fs::File> {
        self.tmp.reopen(out)
    }

    /// Move the content (written through `file`, a handle from [`Staged::reopen`]) into place.
    pub(super) fn finish(self, mut file: std::fs::File, out: &Path) -> Result<()> {
        match &self.target {
            Target::Replace(p) => self.tmp.persist(&file, p),
            Target::Through(p) => {
                use std::io::{Seek, SeekFrom};
                file.seek(SeekFrom::Start(0))
                    .map_err(|e| Error::io(out, e))?;
                let mut dst = open_through(p)?;
                std::io::copy(&mut file, &mut dst).map_err(|e| Error::io(out, e))?;
                dst.flush().map_err(|e| Error::io(out, e))
            }
        }
    }
}

/// A file's identity, to tell whether two paths name the same file: device and inode when it
/// exists (links and other spellings resolve to the same), else its absolute path in its
/// canonical folder.
fn identity(path: &Path) -> Option<FileId> {
    #[cfg(unix)]
    if let Ok(m) = std::fs::metadata(path) {
        use std::os::unix::fs::MetadataExt;
        return Some(FileId::Inode(m.dev(), m.ino()));
    }
    let dir = std::fs::canonicalize(folder_of(path)).ok()?;
    Some(FileId::Path(dir.join(path.file_name()?)))
}

#[derive(PartialEq, Eq)]
enum FileId {
    #[cfg(unix)]
    Inode(u64, u64),
    Path(PathBuf),
}

/// Check a command's outputs before it does any work: each output's folder exists and its
/// target can be written (see [`write_atomic`]), and no output is an input or another output
/// (`eval --model m --scores m` would overwrite the model). `outputs` and `inputs` are `(flag,
/// path)` pairs; the flag names the path in the error. A FIFO or a device may be named twice
/// (`--out /dev/null --json /dev/null`): nothing is replaced there.
pub fn check_outputs(outputs: &[(&str, &Path)], inputs: &[(&str, &Path)]) -> Result<()> {
    let mut seen: Vec<(&str, FileId)> = Vec::new();
    for (flag, path) in inputs {
        if let Some(id) = identity(path) {
            seen.push((flag, id));
        }
    }
    let n_inputs = seen.len();
    for (flag, path) in outputs {
        let through = matches!(target(path)?, Target::Through(_));
        let Some(id) = identity(path) else { continue };
        if let Some(i) = seen.iter().position(|(_, s)| *s == id) {
            let (other, _) = seen[i];
            if i < n_inputs {
                return Err(refuse(
                    path,
                    format!(
                        "{flag} names the same file as the input {other}; refusing to overwrite it"
                    ),
                ));
            }
            if !through {
                return Err(refuse(
                    path,
                    format!("{flag} and {other} name the same file"),
                ));
            }
        }
        seen.push((flag, id));
    }
    Ok(())
}

/// Write an 8-bit grayscale PNG (atomically).
pub fn write_png_gray(path: &Path, img: &image::GrayImage) -> Result<()> {
    use image::ImageEncoder;
    write_atomic(path, |w| {
        image::codecs::png::PngEncoder::new(w)
            .write_image(
                img.as_raw(),
                img.width(),
                img.height(),
                image::ExtendedColorType::L8,
            )
            .map_err(std::io::Error::other)
    })
}

/// Write an 8-bit grayscale PNG of `width x height` whose rows `fill` produces in order, a few
/// at a time, through the callback it is given (atomically, as [`write_atomic`]): the picture
/// is never held whole. Fewer or more rows than `height` is an error.
pub fn write_png_gray_rows(
    path: &Path,
    width: u32,
    height: u32,
    fill: impl FnOnce(&mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()>,
) -> Result<()> {
    let mut inner: Option<Error> = None;
    let r = write_atomic(path, |w| {
        let mut enc = png::Encoder::new(w, width, height);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().map_err(std::io::Error::other)?;
        let mut stream = writer.stream_writer().map_err(std::io::Error::other)?;
        let res = fill(&mut |rows: &[u8]| stream.write_all(rows).map_err(|e| Error::io(path, e)));
        if let Err(e) = res {
            inner = Some(e);
            return Err(std::io::Error::other("stopped"));
        }
        stream.finish().map_err(std::io::Error::other)?;
        writer.finish().map_err(std::io::Error::other)
    });
    match inner {
        Some(e) => Err(e),
        None => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_leaves_old_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.bin");
        std::fs::write(&p, b"old").unwrap();
        let r = write_atomic(&p, |w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::other("injected failure"))
        });
        assert!(r.unwrap_err().to_string().contains("injected failure"));
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn written_files_get_ordinary_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        write_atomic(&p, |w| w.write_all(b"x")).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&p, |w| w.write_all(b"y")).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
    }

    #[test]
    fn missing_folder_is_a_clear_error() {
        let e = write_atomic(Path::new("/nonexistent-dir/x.npy"), |_| Ok(())).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
    }

    /// Defect class: a write replaced what was at the path (a device, a FIFO, a link) with a
    /// regular file. Devices and FIFOs are written through, links are followed, folders refused.
    #[cfg(unix)]
    #[test]
    fn non_regular_targets_are_written_through_or_refused() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        // /dev/null stays a character device.
        write_atomic(Path::new("/dev/null"), |w| w.write_all(b"gone")).unwrap();
        let m = std::fs::metadata("/dev/null").unwrap();
        assert!(m.file_type().is_char_device());
        // A symbolic link stays a link; the file it names gets the content.
        let real = dir.path().join("real.bin");
        std::fs::write(&real, b"old").unwrap();
        let link = dir.path().join("link.bin");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_atomic(&link, |w| w.write_all(b"new")).unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&real).unwrap(), b"new");
        // A dangling link and a folder are refused, and nothing is left behind.
        let dangling = dir.path().join("dangling.bin");
        std::os::unix::fs::symlink(dir.path().join("missing"), &dangling).unwrap();
        let e = write_atomic(&dangling, |w| w.write_all(b"x")).unwrap_err();
        assert!(e.to_string().contains("link to a missing file"), "{e}");
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let e = write_atomic(&sub, |w| w.write_all(b"x")).unwrap_err();
        assert!(e.to_string().contains("is a folder"), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
        // A FIFO is written through: a reader gets the bytes, the FIFO stays.
        let fifo = dir.path().join("fifo");
        let ok = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            let f2 = fifo.clone();
            let reader = std::thread::spawn(move || std::fs::read(f2).unwrap());
            write_atomic(&fifo, |w| w.write_all(b"through")).unwrap();
            assert_eq!(reader.join().unwrap(), b"through");
            assert!(std::fs::symlink_metadata(&fifo)
                .unwrap()
                .file_type()
                .is_fifo());
        }
    }

    /// Defect class: an output equal to an input (or to another output) overwrote it.
    #[test]
    fn outputs_that_are_inputs_or_each_other_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("m.st");
        std::fs::write(&m, b"model").unwrap();
        let other = dir.path().join("x.npy");
        // The same file under another spelling.
        let m2 = dir.path().join(".").join("m.st");
        let e = check_outputs(&[("--scores", &m2)], &[("--model", &m)]).unwrap_err();
        assert!(
            e.to_string()
                .contains("--scores names the same file as the input --model"),
            "{e}"
        );
        // Two outputs, one new file.
        let e = check_outputs(&[("--out", &other), ("--json", &other)], &[("--model", &m)])
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("--json and --out name the same file"),
            "{e}"
        );
        assert!(check_outputs(&[("--out", &other)], &[("--model", &m)]).is_ok());
        // A missing folder is found before any work.
        let e = check_outputs(&[("--out", &dir.path().join("no/x"))], &[]).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        #[cfg(unix)]
        {
            let null = Path::new("/dev/null");
            assert!(check_outputs(&[("--out", null), ("--json", null)], &[]).is_ok());
        }
        assert_eq!(std::fs::read(&m).unwrap(), b"model");
    }

    #[test]
    fn temp_files_are_registered_until_done() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        let s = Staged::create(&p).unwrap();
        let tmp = s.tmp.path.clone();
        assert!(temps().contains(&tmp) && tmp.exists());
        drop(s);
        assert!(!temps().contains(&tmp) && !tmp.exists());
        // Renamed into place: no longer registered (a signal handler must not remove it).
        let s = Staged::create(&p).unwrap();
        let tmp = s.tmp.path.clone();
        let f = s.reopen(&p).unwrap();
        s.finish(f, &p).unwrap();
        assert!(!temps().contains(&tmp) && p.exists());
    }
}
