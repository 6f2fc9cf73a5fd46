//! `bitgrok sweep-merge`: joins the shard directories of one sweep into a whole sweep whose
//! rows point at the shards' run directories.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::file::SweepFile;
use super::Shard;
use crate::usage_bail;

pub fn merge(shards: &[PathBuf], out: &Path) -> Result<SweepFile> {
    for shard in shards {
        let same = |a: &Path, b: &Path| matches!((std::fs::canonicalize(a), std::fs::canonicalize(b)), (Ok(a), Ok(b)) if a == b);
        if same(shard, out) {
            usage_bail!(
                "--out {}: is the shard {} itself, whose sweep.json the merge would replace; \
                 choose a new directory",
                out.display(),
                shard.display()
            );
        }
    }
    let is_sweep = |dir: &Path| dir.join(super::file::JSON_NAME).is_file();
    crate::out_dir::check(out, "sweep", is_sweep, true)?;
    let files: Vec<SweepFile> = shards
        .iter()
        .map(|d| SweepFile::read(d))
        .collect::<Result<_>>()?;
    let spec = &files[0].spec;
    let plan = spec.plan()?;
    let count = files[0].shard.count;
    if count > plan.len() {
        usage_bail!(
            "{} is one of {count} shards of a sweep of {} models",
            shards[0].display(),
            plan.len()
        );
    }
    let mut seen = vec![None; count];
    for (file, dir) in files.iter().zip(shards) {
        if file.spec != *spec {
            usage_bail!(
                "{} is a shard of another sweep than {}",
                dir.display(),
                shards[0].display()
            );
        }
        if file.shard.count != count {
            usage_bail!(
                "{} is shard {} but {} is shard {}: the sweep was cut differently",
                dir.display(),
                file.shard,
                shards[0].display(),
                files[0].shard
            );
        }
        if let Some(other) = seen[file.shard.index].replace(dir) {
            usage_bail!(
                "{} and {} are both shard {}",
                other.display(),
                dir.display(),
                file.shard
            );
        }
    }
    let missing: Vec<String> = (0..count)
        .filter(|&i| seen[i].is_none())
        .map(|i| format!("{i}/{count}"))
        .collect();
    if !missing.is_empty() {
        usage_bail!("shards {} are missing", missing.join(", "));
    }

    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut rows = Vec::new();
    let mut unfinished = Vec::new();
    for (position, (settings, _)) in plan.into_iter().enumerate() {
        let index = position % count;
        let (file, dir) = files
            .iter()
            .zip(shards)
            .find(|(f, _)| f.shard.index == index)
            .expect("every shard is present");
        match file.rows.iter().find(|r| r.settings == settings) {
            Some(row) => {
                let mut row = row.clone();
                row.run = relative_to(&dir.join(&row.run), out)?;
                rows.push(row);
            }
            None => unfinished.push(format!("{} (shard {})", settings.name, file.shard)),
        }
    }
    if !unfinished.is_empty() {
        usage_bail!(
            "{} models have not finished; run their shards again first: {}",
            unfinished.len(),
            unfinished.join(", ")
        );
    }
    let merged = SweepFile {
        spec: spec.clone(),
        shard: Shard::WHOLE,
        rows,
    };
    merged.write(out)?;
    Ok(merged)
}

/// `path` as seen from `base` (both made absolute), so that the merged rows find the runs.
fn relative_to(path: &Path, base: &Path) -> Result<PathBuf> {
    let absolute = |p: &Path| -> Result<PathBuf> {
        std::path::absolute(p).with_context(|| format!("resolving {}", p.display()))
    };
    let (path, base) = (absolute(path)?, absolute(base)?);
    let common = path
        .components()
        .zip(base.components())
        .take_while(|(a, b)| a == b)
        .count();
    let mut relative = PathBuf::new();
    for _ in base.components().skip(common) {
        relative.push("..");
    }
    relative.extend(path.components().skip(common));
    Ok(relative)
}

#[cfg(test)]
mod tests {
    use super::relative_to;
    use std::path::Path;

    #[test]
    fn relative_paths_climb_to_the_common_ancestor() {
        let r = relative_to(Path::new("/a/b/shard0/run1"), Path::new("/a/merged")).unwrap();
        assert_eq!(r, Path::new("../b/shard0/run1"));
        let r = relative_to(Path::new("/a/m/run1"), Path::new("/a/m")).unwrap();
        assert_eq!(r, Path::new("run1"));
    }
}
