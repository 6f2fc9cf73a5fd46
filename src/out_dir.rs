//! Where bitgrok may write: an `--out` is a new or empty directory, or one that already holds
//! what the command makes (a run, a sweep), which only `--force` replaces. Anything else (a
//! file, the filesystem root, a directory of other files) is refused.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use crate::run::TEMPORARY_SUFFIX;
use crate::run_lock::LOCK_NAME;
use crate::usage_bail;

/// Whether a directory entry is bitgrok's bookkeeping rather than content: the lock file and
/// temporary files.
fn is_bookkeeping(name: &str) -> bool {
    name == LOCK_NAME || (name.starts_with('.') && name.ends_with(TEMPORARY_SUFFIX))
}

/// Whether `dir` holds nothing but bitgrok's bookkeeping (or does not exist).
pub fn is_empty_dir(dir: &Path) -> Result<bool> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        if !is_bookkeeping(&entry?.file_name().to_string_lossy()) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Refuses, as a usage error, an output directory bitgrok may not write into: an existing
/// file, the filesystem root, or a non-empty directory that is not `kind` (what `is_kind`
/// recognises). `kind` is never replaced without `force`.
pub fn check(out: &Path, kind: &str, is_kind: impl Fn(&Path) -> bool, force: bool) -> Result<()> {
    if out.exists() && !out.is_dir() {
        usage_bail!(
            "--out {}: is an existing file, not a directory",
            out.display()
        );
    }
    let resolved = fs::canonicalize(out)
        .or_else(|_| std::path::absolute(out))
        .with_context(|| format!("resolving {}", out.display()))?;
    if resolved.parent().is_none() {
        usage_bail!(
            "--out {}: is the filesystem root; choose a directory of its own",
            out.display()
        );
    }
    if is_empty_dir(out)? {
        return Ok(());
    }
    if !is_kind(out) {
        usage_bail!(
            "--out {}: is not empty and holds no bitgrok {kind}; --force only replaces a {kind}, so \
             choose a new or empty directory",
            out.display()
        );
    }
    if !force {
        usage_bail!(
            "--out {}: already holds a {kind}; choose another --out or pass --force to replace it",
            out.display()
        );
    }
    Ok(())
}
