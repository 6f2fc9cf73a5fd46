//! One writer per run and per sweep: an exclusive advisory lock (`flock`) on a `.bitgrok.lock`
//! file in the directory, held until the process exits. The file stays empty, so run
//! directories remain comparable byte for byte; the holder's pid comes from `/proc/locks`.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::usage_bail;

/// The lock file's name inside a run or sweep directory.
pub const LOCK_NAME: &str = ".bitgrok.lock";

/// Holds the lock until dropped (or the process ends, however it ends).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    pub dir: PathBuf,
}

impl DirLock {
    /// Locks `dir` (which must exist) for writing, or refuses with a usage error naming the
    /// process that holds it.
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        let path = dir.join(LOCK_NAME);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock {
                _file: file,
                dir: dir.to_path_buf(),
            }),
            Err(TryLockError::WouldBlock) => {
                let holder =
                    holder_pid(&file).map_or("another process".into(), |pid| format!("pid {pid}"));
                usage_bail!(
                    "{} is in use by {holder} (another bitgrok writing to it); wait for it to \
                     finish or stop it",
                    dir.display()
                )
            }
            Err(TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("locking {}", path.display()))
            }
        }
    }
}

/// The pid holding a `flock` on `file`, from Linux's `/proc/locks` (None elsewhere).
#[cfg(not(unix))]
fn holder_pid(_: &File) -> Option<u32> {
    None
}

#[cfg(unix)]
fn holder_pid(file: &File) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata().ok()?;
    let dev = meta.dev();
    // /proc/locks names the file as MAJOR:MINOR:INODE, the device numbers in hex.
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let id = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF" (a "->" marks a blocked waiter).
        let f = if fields.get(1) == Some(&"->") {
            &fields[1..]
        } else {
            &fields[..]
        };
        (f.get(1) == Some(&"FLOCK") && f.get(5) == Some(&id.as_str()))
            .then(|| f.get(4)?.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_this_process() {
        let dir = tempfile::tempdir().unwrap();
        let held = DirLock::acquire(dir.path()).unwrap();
        let e = DirLock::acquire(dir.path()).unwrap_err();
        assert!(crate::error::is_usage_error(&e));
        let message = format!("{e:#}");
        assert!(
            message.contains(&format!("in use by pid {}", std::process::id())),
            "{message}"
        );
        drop(held);
        DirLock::acquire(dir.path()).unwrap();
    }
}
