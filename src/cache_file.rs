//! The files of ledger's caches under `<git dir>/ledger/`: one JSON header
//! line, then one JSON line per row. They only save time: a file that is
//! missing, from another version or does not parse reads as absent, and a
//! file that cannot be written is left alone.

use std::io::Write as _;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The header and rows of `path`, when every line parses, with the file's
/// status (its modification time serves as a stamp).
pub fn read<H: DeserializeOwned, R: DeserializeOwned>(
    path: &Path,
) -> Option<(std::fs::Metadata, H, Vec<R>)> {
    let file = std::fs::File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    let text = std::io::read_to_string(file).ok()?;
    let mut lines = text.lines();
    let header = serde_json::from_str(lines.next()?).ok()?;
    let rows = lines
        .map(|l| serde_json::from_str(l).ok())
        .collect::<Option<Vec<R>>>()?;
    Some((meta, header, rows))
}

/// Replaces `path` with `header` and `rows` (best effort, see [`write_bytes`]).
pub fn write<H: Serialize, R: Serialize>(
    path: &Path,
    header: &H,
    rows: impl IntoIterator<Item = R>,
) {
    let mut bytes = serde_json::to_vec(header).expect("a cache header serializes");
    bytes.push(b'\n');
    for row in rows {
        serde_json::to_writer(&mut bytes, &row).expect("a cache row serializes");
        bytes.push(b'\n');
    }
    write_bytes(path, &bytes);
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// reader never sees half of it; failures are ignored (a cache that cannot
/// be written only costs time later).
pub fn write_bytes(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let written = path
        .parent()
        .map(std::fs::create_dir_all)
        .transpose()
        .and_then(|_| std::fs::File::create(&tmp))
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}
