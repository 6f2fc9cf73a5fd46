//! Reading files with a bound on their size derived from what they can legitimately hold, so
//! that a file symlinked to `/dev/zero` or a huge sparse file is refused before it is read
//! whole. Safetensors files are memory-mapped: only the parts a loader touches are read.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use memmap2::Mmap;

/// Bytes a small JSON file (a run or import config) may hold.
pub const SMALL_JSON: u64 = 1 << 20;

/// Opens `path` for reading as a regular file (not a device or a FIFO).
fn open_regular(path: &Path) -> Result<File> {
    let file = File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    Ok(file)
}

/// The whole of `path`, refused if it is larger than `max` bytes (`what` names the file kind).
pub fn read(path: &Path, max: u64, what: &str) -> Result<Vec<u8>> {
    let file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > max {
        bail!(
            "{} is larger than {max} bytes, more than {what} can hold",
            path.display()
        );
    }
    Ok(bytes)
}

/// [`read`] as UTF-8 text.
pub fn read_to_string(path: &Path, max: u64, what: &str) -> Result<String> {
    String::from_utf8(read(path, max, what)?)
        .with_context(|| format!("{} is not UTF-8 text", path.display()))
}

/// `path` memory-mapped, refused if it is larger than `max` bytes. bitgrok replaces files by
/// renaming (never truncates them in place), so a mapping stays valid while a writer works.
pub fn map(path: &Path, max: u64, what: &str) -> Result<Mmap> {
    let file = open_regular(path)?;
    let len = file
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if len > max {
        bail!(
            "{} is {len} bytes, more than {what} can hold ({max})",
            path.display()
        );
    }
    // SAFETY: the mapping is only read; see above for why the file does not shrink under it.
    unsafe { Mmap::map(&file) }.with_context(|| format!("mapping {}", path.display()))
}
