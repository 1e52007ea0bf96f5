//! The reports a run writes: files matching ledger.yaml `products.globs` that
//! were created or changed while the command ran. Each is hashed into the
//! result; those up to `products.max_bytes` are stored in the ledger at
//! `runs/<run_id>/products/<path>`.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::config::ProductsSection;
use crate::files;
use crate::record::kinds::Product;

/// What a file looked like: size, modification time, inode.
type Stamp = (u64, i64, i64, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::symlink_metadata(path).ok()?;
    Some((m.len(), m.mtime(), m.mtime_nsec(), m.ino()))
}

/// The matching files before the run.
pub fn snapshot(root: &Path, globs: &[String]) -> BTreeMap<String, Stamp> {
    files::expand(root, globs)
        .into_iter()
        .filter_map(|rel| stamp(&root.join(&rel)).map(|s| (rel, s)))
        .collect()
}

/// The products of the run, and the tree files that store them.
#[allow(clippy::type_complexity)]
pub fn collect(
    root: &Path,
    config: &ProductsSection,
    before: &BTreeMap<String, Stamp>,
    run_id: &str,
) -> Result<(Vec<Product>, Vec<(String, Vec<u8>)>), (PathBuf, std::io::Error)> {
    let mut products = Vec::new();
    let mut stored = Vec::new();
    for rel in files::expand(root, &config.globs) {
        let path = root.join(&rel);
        if stamp(&path).is_some_and(|now| before.get(&rel) == Some(&now)) {
            continue; // there before, untouched
        }
        let bytes_on_disk = std::fs::symlink_metadata(&path)
            .map_err(|e| (path.clone(), e))?
            .len();
        let (sha256, bytes, keep) = if bytes_on_disk <= config.max_bytes {
            let content = std::fs::read(&path).map_err(|e| (path.clone(), e))?;
            (
                crate::record::canon::sha256_hex(&content),
                content.len() as u64,
                Some(content),
            )
        } else {
            let (sha256, bytes) = files::sha256_file(&path).map_err(|e| (path.clone(), e))?;
            (sha256, bytes, None)
        };
        let is_stored = keep.is_some();
        if let Some(content) = keep {
            stored.push((format!("runs/{run_id}/products/{rel}"), content));
        }
        products.push(Product {
            path: rel,
            sha256,
            bytes,
            stored: is_stored,
        });
    }
    Ok((products, stored))
}
