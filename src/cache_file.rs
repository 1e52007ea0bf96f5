//! The files of ledger's caches under `<git dir>/ledger/`: one JSON header
//! line, then one JSON line per row. They only save time: a file that is
//! missing, from another version or does not parse reads as absent, and a
//! file that cannot be written is left alone. Both ways stream, line by
//! line: a 100,000-run ledger's caches are hundreds of megabytes of text.

use std::io::{BufRead as _, BufReader, BufWriter, Write as _};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The header and rows of `path`, when every line parses, with the file's
/// status (its modification time serves as a stamp).
pub fn read<H: DeserializeOwned, R: DeserializeOwned>(
    path: &Path,
) -> Option<(std::fs::Metadata, H, Vec<R>)> {
    read_with(path, |line| serde_json::from_str(line).ok())
}

/// [`read`] with each row made from its line by `row`, which says `None`
/// for a line it refuses (then the whole file reads as absent). A row
/// that borrows from its line is made while the line is still there, so
/// no line outlives its row.
pub fn read_with<H: DeserializeOwned, R>(
    path: &Path,
    mut row: impl FnMut(&str) -> Option<R>,
) -> Option<(std::fs::Metadata, H, Vec<R>)> {
    let file = std::fs::File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut line = String::new();
    // Whether there was a next line (read without its line ending); `None`
    // on a read error, invalid UTF-8 included.
    let mut next = |line: &mut String| -> Option<bool> {
        line.clear();
        let more = reader.read_line(line).ok()? > 0;
        let end = line.trim_end_matches(['\n', '\r']).len();
        line.truncate(end);
        Some(more)
    };
    if !next(&mut line)? {
        return None;
    }
    let header = serde_json::from_str(&line).ok()?;
    let mut rows = Vec::new();
    while next(&mut line)? {
        rows.push(row(&line)?);
    }
    Some((meta, header, rows))
}

/// The header of `path` alone, when its first line parses.
pub fn read_header<H: DeserializeOwned>(path: &Path) -> Option<H> {
    let mut first = String::new();
    BufReader::new(std::fs::File::open(path).ok()?)
        .read_line(&mut first)
        .ok()?;
    serde_json::from_str(first.trim_end_matches(['\n', '\r'])).ok()
}

/// Replaces `path` with `header` and `rows` (best effort, see [`write_bytes`]).
pub fn write<H: Serialize, R: Serialize>(
    path: &Path,
    header: &H,
    rows: impl IntoIterator<Item = R>,
) {
    write_with(path, |out| {
        serde_json::to_writer(&mut *out, header)?;
        out.write_all(b"\n")?;
        for row in rows {
            serde_json::to_writer(&mut *out, &row)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    });
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// reader never sees half of it; failures are ignored (a cache that cannot
/// be written only costs time later).
pub fn write_bytes(path: &Path, bytes: &[u8]) {
    write_with(path, |out| Ok(out.write_all(bytes)?));
}

/// Writes `parts` one after the other to `path`, like [`write_bytes`].
pub fn write_parts(path: &Path, parts: &[&[u8]]) {
    write_with(path, |out| {
        for part in parts {
            out.write_all(part)?;
        }
        Ok(())
    });
}

type Out = BufWriter<std::fs::File>;

fn write_with(path: &Path, fill: impl FnOnce(&mut Out) -> Result<(), Box<dyn std::error::Error>>) {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let written = (|| -> Result<(), Box<dyn std::error::Error>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut out = BufWriter::with_capacity(1 << 16, std::fs::File::create(&tmp)?);
        fill(&mut out)?;
        out.into_inner().map_err(|e| e.into_error())?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}
