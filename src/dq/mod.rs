//! The data-quality gate: built-in rules from ledger.yaml `dq`, checked in
//! one streaming pass over a CSV file (the file is hashed in the same pass),
//! plus an optional external command. Pure: returns the outcome, writes nothing.
//!
//! The pass is spread over the cores: one thread hashes the file and cuts
//! it into pieces of whole lines (a regular file is mapped into memory and
//! cut in place; anything else is read), workers check the pieces, and the
//! calling thread merges their findings in file order, so the report is the
//! one a single thread reading line by line would give ([`Threads`]). A
//! piece of plain rows (no quote, every line as wide as the header) is laid
//! out as a table in one vectorised pass and checked a column at a time,
//! short numbers a machine word at a time; anything else is read line by
//! line, or by the csv crate from the first quote on.
//!
//! Malformed input (no header, ragged rows, invalid UTF-8, an empty file) is a
//! failed `csv` rule with the line number, never a crash. Dates are ISO
//! `YYYY-MM-DD`; staleness is measured against a date from the config or the
//! command line, never the wall clock, so a verdict is reproducible.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::Date;

use crate::config::{ColumnType, DqSection};
use crate::files::FileDigest;
use crate::record::canon::hex;

mod layout;
mod word;

use layout::{lay_out, Layout, Table};

/// Line numbers kept per failed rule.
const FIRST_LINES: usize = 5;

pub use crate::record::kinds::RuleOutcome;

/// What the built-in rules found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub passed: bool,
    pub input: FileDigest,
    /// Data rows read (not counting the header).
    pub rows: u64,
    /// The date staleness was measured against, if any.
    pub as_of: Option<String>,
    pub rules: Vec<RuleOutcome>,
}

#[derive(Clone)]
struct Rule {
    name: String,
    failures: u64,
    first_lines: Vec<u64>,
    detail: String,
}

impl Rule {
    fn new(name: impl Into<String>, detail: impl Into<String>) -> Rule {
        Rule {
            name: name.into(),
            failures: 0,
            first_lines: Vec::new(),
            detail: detail.into(),
        }
    }

    fn fail(&mut self, line: u64) {
        self.failures += 1;
        if self.first_lines.len() < FIRST_LINES {
            self.first_lines.push(line);
        }
    }

    /// Takes on the failures of the rows after this rule's (the lines are
    /// the file's, and all later than this rule's).
    fn absorb(&mut self, later: Rule) {
        self.failures += later.failures;
        let room = FIRST_LINES.saturating_sub(self.first_lines.len());
        self.first_lines
            .extend(later.first_lines.into_iter().take(room));
    }

    fn done(self) -> RuleOutcome {
        RuleOutcome {
            passed: self.failures == 0,
            rule: self.name,
            failures: self.failures,
            first_lines: self.first_lines,
            detail: self.detail,
        }
    }
}

/// A `Read` over what is left of the stream: the `current` piece first, then
/// the pieces after it (the csv crate's input once the fast path hands over).
struct Rest<'s, S> {
    pieces: &'s mut S,
    current: Bytes,
    at: usize,
    /// Bytes handed out so far.
    offset: u64,
    /// See [`Breaks`].
    breaks: Breaks,
}

/// The runs of line-break bytes (`\r`, `\n`) handed to the csv crate and not
/// yet passed by a record. The csv crate dates a record from where it began
/// reading it: the byte after the previous record's terminator, before the
/// rest of a `\r\n` and any blank lines it skips, so a line or more too
/// early (found by fuzzing). [`line_at`] adds the newlines it skipped.
type Breaks = std::rc::Rc<std::cell::RefCell<std::collections::VecDeque<Break>>>;

/// A run of `\r` and `\n` bytes at `start..end`.
#[derive(Clone, Copy, Debug)]
struct Break {
    start: u64,
    end: u64,
    newlines: u64,
    starts_with_newline: bool,
}

impl<'s, S> Rest<'s, S> {
    fn new(pieces: &'s mut S, current: Bytes) -> Rest<'s, S> {
        Rest {
            pieces,
            current,
            at: 0,
            offset: 0,
            breaks: Breaks::default(),
        }
    }
}

impl<'a, S: Source<'a>> Read for Rest<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            match self.pieces.next()? {
                Some((piece, _)) => {
                    let spent = std::mem::replace(&mut self.current, piece.bytes);
                    self.pieces.recycle(spent);
                    self.at = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        let out = &mut buf[..n];
        out.copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        let mut breaks = self.breaks.borrow_mut();
        for i in memchr::memchr2_iter(b'\r', b'\n', out) {
            let at = self.offset + i as u64;
            let newline = u64::from(out[i] == b'\n');
            match breaks.back_mut() {
                Some(run) if run.end == at => {
                    run.end += 1;
                    run.newlines += newline;
                }
                _ => breaks.push_back(Break {
                    start: at,
                    end: at + 1,
                    newlines: newline,
                    starts_with_newline: newline == 1,
                }),
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// The line a record or error the csv crate places at `position` is on:
/// the newlines the crate skipped after that position are added.
fn line_at(breaks: &Breaks, position: &csv::Position) -> u64 {
    let b = position.byte();
    let mut runs = breaks.borrow_mut();
    while runs.front().is_some_and(|r| r.end <= b) {
        runs.pop_front();
    }
    let skipped = match runs.front() {
        // At the very start of the stream nothing was a terminator yet.
        Some(r) if r.start == b => r.newlines,
        // The run's first byte ended the previous record.
        Some(r) if r.start < b => r.newlines - u64::from(r.starts_with_newline),
        _ => 0,
    };
    position.line() + skipped
}

/// A run of whole lines of the file, as the reading thread cut it.
struct Piece {
    /// Its place in the file: pieces are numbered from 0 in file order.
    seq: u64,
    bytes: Bytes,
    /// Newlines before it: the number of its first line is one more.
    first_line: u64,
    /// Ends with `\n`, or is the end of the file. Otherwise it is part of
    /// one line longer than [`long_line`] allows, and the rest of the file
    /// goes through the csv crate, which streams it.
    whole_lines: bool,
}

/// A piece, and the rows a worker checked in it (`None`: the merging
/// thread reads it itself).
type Parsed<'a> = (Piece, Option<Box<Checker<'a>>>);

/// Buffers in flight between the reading thread, the workers and the
/// merging thread: bounds memory to this many pieces.
const POOL: usize = 8;

/// The longest run of bytes without a newline that is still cut as one
/// piece.
fn long_line(chunk_bytes: usize) -> usize {
    chunk_bytes.max(CHUNK) * 4
}

/// The whole input at once: a regular file mapped read-only, or bytes
/// already in memory. Pieces are ranges of it, so no byte is copied on its
/// way to the hash or to the workers.
enum Whole {
    /// With the system's page size, for giving back spent pages.
    Map(memmap2::Mmap, usize),
    Bytes(Vec<u8>),
}

impl Whole {
    /// Maps `file` (whose status is `meta`) when it is a regular, non-empty
    /// file that can be mapped; `None` otherwise (a pipe, a device, an
    /// empty file), for reading.
    fn map(file: &std::fs::File, meta: &std::fs::Metadata) -> Option<Whole> {
        if !meta.is_file() || meta.len() == 0 || usize::try_from(meta.len()).is_err() {
            return None;
        }
        // SAFETY: the mapping is read-only and private. Another process
        // writing the file while it is mapped would change bytes under the
        // shared slices (the check reports `changed while read` then, see
        // [`check`]); truncating it would end this process with SIGBUS, as
        // it would for git reading a pack or ripgrep searching a file. The
        // input is a data file the gate reads once, not a file ledger or
        // the run writes.
        let map = unsafe { memmap2::Mmap::map(file) }.ok()?;
        // Read ahead generously and in order; failure only costs speed.
        let _ = map.advise(memmap2::Advice::Sequential);
        // SAFETY: sysconf reads a constant of the system; it touches no memory.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        Some(Whole::Map(
            map,
            usize::try_from(page).unwrap_or(4096).max(1),
        ))
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Whole::Map(map, _) => map,
            Whole::Bytes(bytes) => bytes,
        }
    }

    /// A spent piece's pages, up to the page it ends in (the next piece
    /// starts there), go back to the system: the process holds only the
    /// pieces in flight, not every page of the file it has read. The file
    /// stays in the page cache; a page touched again is simply mapped again.
    fn release(&self, range: std::ops::Range<usize>) {
        let Whole::Map(map, page) = self else {
            return;
        };
        let (start, end) = (range.start / page * page, range.end / page * page);
        if end > start {
            // SAFETY: the mapping is read-only and private, so no page holds
            // a change of ours that dropping it would lose; a piece still
            // reading these pages (a neighbour sharing the first one) finds
            // the file's same bytes when the kernel maps them in again.
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
            };
        }
    }
}

/// A piece's bytes: a buffer the reading thread filled, or a range of the
/// whole input.
enum Bytes {
    Owned(Vec<u8>),
    Shared(std::sync::Arc<Whole>, std::ops::Range<usize>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Owned(bytes) => bytes,
            Bytes::Shared(whole, range) => &whole.as_slice()[range.clone()],
        }
    }
}

impl Bytes {
    /// Done with: an owned buffer, for the reading thread to fill again, or
    /// an empty one in place of a range of the whole input, whose pages go
    /// back to the system. Either way the buffer tells the reading thread
    /// that one piece fewer is in flight.
    fn spend(self) -> Vec<u8> {
        match self {
            Bytes::Owned(bytes) => bytes,
            Bytes::Shared(whole, range) => {
                whole.release(range);
                Vec::new()
            }
        }
    }
}

/// Where the cutter takes its bytes from.
enum Input<R> {
    /// Read a step at a time into the pieces' buffers.
    Reader(R),
    /// Cut in place.
    Whole(std::sync::Arc<Whole>),
}

/// Reads and hashes the file, cutting it into pieces of whole lines; the
/// digest always covers every byte, read as pieces or not.
struct Cutter<R> {
    input: Input<R>,
    chunk_bytes: usize,
    long: usize,
    hasher: Sha256,
    /// Bytes hashed so far: for a whole input, where the next piece starts.
    bytes: u64,
    lines: u64,
    seq: u64,
    /// The unfinished line at the end of the previous piece (read input).
    carry: Vec<u8>,
    eof: bool,
}

impl<R: Read> Cutter<R> {
    fn new(input: Input<R>, chunk_bytes: usize) -> Cutter<R> {
        let chunk_bytes = chunk_bytes.max(1);
        Cutter {
            input,
            chunk_bytes,
            long: long_line(chunk_bytes),
            hasher: Sha256::new(),
            bytes: 0,
            lines: 0,
            seq: 0,
            carry: Vec::new(),
            eof: false,
        }
    }

    /// Reads once into `buf` past its end; 0 at the end of the file.
    fn read_more(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        let Input::Reader(file) = &mut self.input else {
            unreachable!("a whole input is cut, not read");
        };
        let start = buf.len();
        // Into spare capacity: files and memory are read without zeroing
        // the buffer first. The pool's buffers have room for a whole read;
        // a fresh one grows as the read needs (a small file costs little).
        buf.reserve(self.chunk_bytes.min(1 << 16));
        // Hashed a step at a time, while the bytes just read are still in
        // the core's cache: 1 MiB reads hashed after took a third more
        // kernel time here.
        let mut n = 0;
        while n < self.chunk_bytes {
            let step = (self.chunk_bytes - n).min(HASH_STEP);
            let from = buf.len();
            let got = file.take(step as u64).read_to_end(buf)?;
            self.hasher.update(&buf[from..]);
            crate::progress::inc(got as u64);
            n += got;
            if got < step {
                break; // the end of the file
            }
        }
        debug_assert_eq!(buf.len() - start, n);
        self.bytes += n as u64;
        self.eof |= n == 0;
        Ok(n)
    }

    /// The next piece, read into `buf` or cut from the whole input: whole
    /// lines of at least `chunk_bytes` (or the rest of the file), the last
    /// of them complete unless the file ends or a line is over
    /// [`long_line`]; `None` at the end of the file.
    fn next_piece(&mut self, buf: Vec<u8>) -> std::io::Result<Option<Piece>> {
        let cut = match &self.input {
            Input::Reader(_) => self.read_piece(buf)?,
            Input::Whole(whole) => {
                let whole = std::sync::Arc::clone(whole);
                self.cut_piece(whole)
            }
        };
        let Some((bytes, newlines)) = cut else {
            return Ok(None);
        };
        let piece = Piece {
            seq: self.seq,
            whole_lines: self.eof || bytes.last() == Some(&b'\n'),
            bytes,
            first_line: self.lines,
        };
        self.seq += 1;
        self.lines += newlines;
        Ok(Some(piece))
    }

    /// [`Cutter::next_piece`] of a reader, with its newlines.
    fn read_piece(&mut self, mut buf: Vec<u8>) -> std::io::Result<Option<(Bytes, u64)>> {
        buf.clear();
        buf.append(&mut self.carry);
        while !self.eof {
            let start = buf.len();
            if self.read_more(&mut buf)? > 0
                && (memchr::memchr(b'\n', &buf[start..]).is_some() || buf.len() >= self.long)
            {
                break;
            }
        }
        if !self.eof {
            if let Some(nl) = memchr::memrchr(b'\n', &buf) {
                self.carry.extend_from_slice(&buf[nl + 1..]);
                buf.truncate(nl + 1);
            }
        }
        if buf.is_empty() {
            return Ok(None);
        }
        let newlines = memchr::memchr_iter(b'\n', &buf).count() as u64;
        Ok(Some((Bytes::Owned(buf), newlines)))
    }

    /// [`Cutter::next_piece`] of a whole input, with its newlines: the
    /// piece is hashed and its lines counted a step at a time, each step
    /// still in the core's cache for the count.
    fn cut_piece(&mut self, whole: std::sync::Arc<Whole>) -> Option<(Bytes, u64)> {
        let data = whole.as_slice();
        let start = usize::try_from(self.bytes).expect("a whole input fits in memory");
        if start == data.len() {
            self.eof = true;
            return None;
        }
        let mut end = (start + self.chunk_bytes).min(data.len());
        if end < data.len() {
            end = match memchr::memrchr(b'\n', &data[start..end]) {
                Some(nl) => start + nl + 1,
                // One line longer than a piece: on to its end, unless that
                // is over the longest line cut as one piece.
                None => {
                    let limit = (start + self.long).min(data.len());
                    memchr::memchr(b'\n', &data[end..limit]).map_or(limit, |nl| end + nl + 1)
                }
            };
        }
        let mut newlines = 0;
        for step in data[start..end].chunks(HASH_STEP) {
            self.hasher.update(step);
            newlines += memchr::memchr_iter(b'\n', step).count() as u64;
            crate::progress::inc(step.len() as u64);
        }
        self.bytes = end as u64;
        self.eof = end == data.len();
        Some((Bytes::Shared(whole, start..end), newlines))
    }

    /// Reads and hashes the rest of the file, once nobody wants pieces.
    fn hash_rest(&mut self, mut buf: Vec<u8>) -> std::io::Result<()> {
        if let Input::Whole(whole) = &self.input {
            let start = usize::try_from(self.bytes).expect("a whole input fits in memory");
            let rest = &whole.as_slice()[start..];
            for step in rest.chunks(HASH_STEP) {
                self.hasher.update(step);
                crate::progress::inc(step.len() as u64);
            }
            self.bytes += rest.len() as u64;
            self.eof = true;
            return Ok(());
        }
        while !self.eof {
            buf.clear();
            self.read_more(&mut buf)?;
        }
        Ok(())
    }

    fn digest(self) -> (String, u64) {
        (hex(&self.hasher.finalize()), self.bytes)
    }
}

/// The reading thread: pieces go to the workers while anyone listens; the
/// rest of the file is hashed all the same.
fn read_and_hash<R: Read>(
    mut cutter: Cutter<R>,
    pieces: std::sync::mpsc::SyncSender<Piece>,
    spent: std::sync::mpsc::Receiver<Vec<u8>>,
) -> std::io::Result<(String, u64)> {
    loop {
        let buf = spent.recv().unwrap_or_default();
        let Some(piece) = cutter.next_piece(buf)? else {
            break;
        };
        if let Err(back) = pieces.send(piece) {
            cutter.hash_rest(back.0.bytes.spend())?; // the parser stopped early
            break;
        }
    }
    Ok(cutter.digest())
}

/// Where the merging thread takes its pieces from, in file order.
trait Source<'a> {
    fn next(&mut self) -> std::io::Result<Option<Parsed<'a>>>;
    /// A spent piece's bytes, for reuse.
    fn recycle(&mut self, bytes: Bytes);
}

/// [`Threads::Cores`]: the file's digest, once `checker` has taken on
/// every piece.
fn threaded<'a, R: Read + Send>(
    cutter: Cutter<R>,
    checker: &mut Checker<'a>,
    template: &std::sync::OnceLock<Checker<'a>>,
    sequential: &std::sync::atomic::AtomicBool,
) -> std::io::Result<(String, u64)> {
    use std::sync::{mpsc, Arc, Mutex};
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel::<Piece>(POOL / 2);
        let (back, spent) = mpsc::channel::<Vec<u8>>();
        // Pieces of a whole input need no buffer: an empty one stands in.
        let capacity = match cutter.input {
            Input::Reader(_) => cutter.chunk_bytes + (64 << 10),
            Input::Whole(_) => 0,
        };
        for _ in 0..POOL {
            let _ = back.send(Vec::with_capacity(capacity));
        }
        let reader = scope.spawn(move || read_and_hash(cutter, tx, spent));
        // Only the workers hold the queue: when the last one is gone, the
        // reading thread sees it and just hashes the rest.
        let queue = Arc::new(Mutex::new(rx));
        let (out, results) = mpsc::channel();
        for _ in 0..workers {
            let (queue, out) = (Arc::clone(&queue), out.clone());
            scope.spawn(move || work(&queue, out, template, sequential));
        }
        drop((queue, out));
        let mut pieces = Ordered {
            rx: results,
            early: std::collections::BTreeMap::new(),
            next: 0,
            back,
        };
        let scanned = scan(&mut pieces, checker, template, sequential);
        drop(pieces);
        let digest = reader
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the reading thread panicked")));
        scanned.and(digest)
    })
}

/// Pieces read and checked on the calling thread, one after the other: the
/// very pieces and merging of the threaded path, without threads.
struct Inline<'t, 'a, R> {
    cutter: Cutter<R>,
    template: &'t std::sync::OnceLock<Checker<'a>>,
    sequential: &'t std::sync::atomic::AtomicBool,
    spare: Vec<u8>,
    scratch: Scratch,
}

impl<'a, R: Read> Source<'a> for Inline<'_, 'a, R> {
    fn next(&mut self) -> std::io::Result<Option<Parsed<'a>>> {
        let Some(piece) = self.cutter.next_piece(std::mem::take(&mut self.spare))? else {
            return Ok(None);
        };
        let sequential = self.sequential.load(std::sync::atomic::Ordering::Relaxed);
        let part = check_piece(self.template, sequential, &piece, &mut self.scratch);
        Ok(Some((piece, part)))
    }

    fn recycle(&mut self, bytes: Bytes) {
        self.spare = bytes.spend();
    }
}

/// A piece of plain lines checked against a blank copy of the header-bound
/// checker, once there is one; `None` for the merging thread to read.
fn check_piece<'a>(
    template: &std::sync::OnceLock<Checker<'a>>,
    sequential: bool,
    piece: &Piece,
    scratch: &mut Scratch,
) -> Option<Box<Checker<'a>>> {
    let template = template.get()?;
    if sequential || !piece.whole_lines {
        return None;
    }
    let mut part = template.clone();
    part.key_log = Some(KeyLog::default());
    plain_piece(&mut part, piece, scratch).ok()?;
    Some(Box::new(part))
}

/// The merging thread's view of the workers' output: pieces in file order;
/// spent buffers go back to the reading thread.
struct Ordered<'a> {
    rx: std::sync::mpsc::Receiver<Parsed<'a>>,
    early: std::collections::BTreeMap<u64, Parsed<'a>>,
    next: u64,
    back: std::sync::mpsc::Sender<Vec<u8>>,
}

impl<'a> Source<'a> for Ordered<'a> {
    fn next(&mut self) -> std::io::Result<Option<Parsed<'a>>> {
        loop {
            if let Some(parsed) = self.early.remove(&self.next) {
                self.next += 1;
                return Ok(Some(parsed));
            }
            let Ok(parsed) = self.rx.recv() else {
                return Ok(None);
            };
            self.early.insert(parsed.0.seq, parsed);
        }
    }

    fn recycle(&mut self, bytes: Bytes) {
        let _ = self.back.send(bytes.spend());
    }
}

/// Lowers the calling worker's priority. The reading thread's hashing is
/// the one part of the pass no core can share, so it should never wait for
/// a worker: with a thread more than there are cores, the scheduler's fair
/// shares held it to about two thirds of a core (docs/PERFORMANCE.md has
/// the gate's time with and without this). Linux keeps
/// a nice value per thread; elsewhere this would lower the whole process,
/// so it is left alone there.
fn yield_to_the_reading_thread() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only changes the scheduling weight of the calling
    // thread (`who` 0 is the caller; on Linux that is the thread); it
    // touches no memory. Failure leaves the priority as it was, harmlessly.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, WORKER_NICE);
    }
}

/// The workers' nice value (0 is normal, 19 the lowest priority).
#[cfg(target_os = "linux")]
const WORKER_NICE: libc::c_int = 10;

/// A worker: checks the rows of each piece of plain lines against a blank
/// copy of the header-bound checker, once the merging thread has read the
/// header; hands anything else on unread.
fn work<'a>(
    queue: &std::sync::Mutex<std::sync::mpsc::Receiver<Piece>>,
    out: std::sync::mpsc::Sender<Parsed<'a>>,
    template: &std::sync::OnceLock<Checker<'a>>,
    sequential: &std::sync::atomic::AtomicBool,
) {
    yield_to_the_reading_thread();
    let mut scratch = Scratch::default();
    loop {
        let next = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(piece) = next else { return };
        let sequential = sequential.load(std::sync::atomic::Ordering::Relaxed);
        let part = check_piece(template, sequential, &piece, &mut scratch);
        if out.send((piece, part)).is_err() {
            return;
        }
    }
}

/// Bytes per piece: read, hashed and cut together.
const CHUNK: usize = 1 << 20;

/// Bytes per read (and hash) within a piece.
const HASH_STEP: usize = 128 << 10;

/// `YYYY-MM-DD`, strictly.
pub fn parse_date(text: &[u8]) -> Option<Date> {
    if text.len() != 10 || text[4] != b'-' || text[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        text[r].iter().try_fold(0u32, |acc, &b| {
            b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
        })
    };
    let month = time::Month::try_from(num(5..7)? as u8).ok()?;
    Date::from_calendar_date(num(0..4)? as i32, month, num(8..10)? as u8).ok()
}

/// An optional sign, then 1 to 18 digits (always fits an i64), or anything
/// else i64 parses.
#[inline(always)]
fn is_int(field: &[u8]) -> bool {
    let digits = field
        .strip_prefix(b"-")
        .or_else(|| field.strip_prefix(b"+"))
        .unwrap_or(field);
    (1..=18).contains(&digits.len()) && digits.iter().all(u8::is_ascii_digit)
        || std::str::from_utf8(field).is_ok_and(|s| s.parse::<i64>().is_ok())
}

/// A number as read from a cell.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Number {
    /// `[+-]digits[.digits]` with 1 to 15 digits: `mantissa / 10^decimals`,
    /// exactly (the double nearest to it is the value).
    Exact {
        negative: bool,
        mantissa: u64,
        decimals: u8,
    },
    /// Anything else the standard parser reads as a finite double.
    Float(f64),
}

impl Number {
    /// The double the cell denotes: for an exact decimal, the integer
    /// divided by an exact power of ten rounds once, correctly (Clinger's
    /// fast path).
    #[cfg(test)]
    fn value(self) -> f64 {
        match self {
            Number::Exact {
                negative,
                mantissa,
                decimals,
            } => {
                let v = mantissa as f64 / POW10[usize::from(decimals)];
                if negative {
                    -v
                } else {
                    v
                }
            }
            Number::Float(v) => v,
        }
    }
}

/// The largest mantissa of an exact decimal (15 digits).
const MAX_MANTISSA: u64 = 999_999_999_999_999;

/// A finite number: the common plain decimal exactly, in one pass, anything
/// else through the standard parser.
#[inline(always)]
fn parse_number(field: &[u8]) -> Option<Number> {
    exact_decimal(field).or_else(|| slow_f64(field).map(Number::Float))
}

const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

#[inline(always)]
fn exact_decimal(field: &[u8]) -> Option<Number> {
    let (negative, body) = match field.first()? {
        b'-' => (true, &field[1..]),
        b'+' => (false, &field[1..]),
        _ => (false, field),
    };
    if body.len() > 16 {
        return None;
    }
    let mut mantissa = 0u64;
    let mut digits = 0u8;
    let mut dot = None;
    for &b in body {
        let d = b.wrapping_sub(b'0');
        if d <= 9 {
            mantissa = mantissa * 10 + u64::from(d);
            digits += 1;
        } else if b == b'.' && dot.is_none() {
            dot = Some(digits);
        } else {
            return None;
        }
    }
    if digits == 0 || digits > 15 {
        return None;
    }
    Some(Number::Exact {
        negative,
        mantissa,
        decimals: dot.map_or(0, |at| digits - at),
    })
}

fn slow_f64(field: &[u8]) -> Option<f64> {
    std::str::from_utf8(field)
        .ok()?
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

/// Empty or blank, or `NA`, `NaN`, `null` in any case, padded or not.
#[inline(always)]
fn is_null(field: &[u8]) -> bool {
    let t = field.trim_ascii();
    match t.len() {
        0 => true,
        2 => t.eq_ignore_ascii_case(b"na"),
        3 => t.eq_ignore_ascii_case(b"nan"),
        4 => t.eq_ignore_ascii_case(b"null"),
        _ => false,
    }
}

/// Checks `path` against `rules`. `as_of` overrides `dq.staleness.as_of`.
/// Errors only when the file cannot be read at all, or is a regular file
/// that changed while it was read (its size or modification time differ
/// after the pass). A regular file is mapped into memory and checked in
/// place; anything else (a pipe, a device) is read.
pub fn check(
    path: &Path,
    rel: &str,
    rules: &DqSection,
    as_of: Option<Date>,
) -> std::io::Result<Report> {
    let file = std::fs::File::open(path)?;
    let before = file.metadata()?;
    let _progress = crate::progress::begin_bytes("dq: read", before.len());
    let input = match Whole::map(&file, &before) {
        Some(whole) => Input::Whole(std::sync::Arc::new(whole)),
        None => Input::Reader(&file),
    };
    let report = check_input(input, CHUNK, Threads::Cores, rel, rules, as_of)?;
    unchanged(&before, &file.metadata()?)?;
    Ok(report)
}

/// A regular file must have the status after the pass that it had before
/// (a pipe or a device changes as it is read): otherwise the report is of
/// no one version of it.
fn unchanged(before: &std::fs::Metadata, after: &std::fs::Metadata) -> std::io::Result<()> {
    let same = after.len() == before.len() && after.modified().ok() == before.modified().ok();
    if before.is_file() && !same {
        return Err(std::io::Error::other(
            "the file changed while it was read; check it again once nothing writes it",
        ));
    }
    Ok(())
}

/// How [`check_reader`] spreads the work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// A reading and hashing thread, and a worker per core checking pieces
    /// of the file while the calling thread merges their findings in order.
    Cores,
    /// The same pieces checked and merged on the calling thread alone (for
    /// the fuzz target: the same report, without thread start-up per call).
    Inline,
}

/// [`check`] over any reader, read `chunk_bytes` at a time. The report never
/// depends on `chunk_bytes` or `threads`: lines, quoted fields and UTF-8
/// sequences split across reads are joined, and pieces checked apart merge
/// into what one pass finds (the fuzz target `dq_csv` holds it to that).
pub fn check_reader<R: Read + Send>(
    input: R,
    chunk_bytes: usize,
    threads: Threads,
    rel: &str,
    rules: &DqSection,
    as_of: Option<Date>,
) -> std::io::Result<Report> {
    check_input(
        Input::Reader(input),
        chunk_bytes,
        threads,
        rel,
        rules,
        as_of,
    )
}

/// [`check`] over bytes in memory, cut in place into pieces of about
/// `chunk_bytes` as a mapped file is: the same report as [`check_reader`]
/// gives for the same bytes.
pub fn check_bytes(
    bytes: Vec<u8>,
    chunk_bytes: usize,
    threads: Threads,
    rel: &str,
    rules: &DqSection,
    as_of: Option<Date>,
) -> std::io::Result<Report> {
    let whole = Input::<std::io::Empty>::Whole(std::sync::Arc::new(Whole::Bytes(bytes)));
    check_input(whole, chunk_bytes, threads, rel, rules, as_of)
}

fn check_input<R: Read + Send>(
    input: Input<R>,
    chunk_bytes: usize,
    threads: Threads,
    rel: &str,
    rules: &DqSection,
    as_of: Option<Date>,
) -> std::io::Result<Report> {
    let as_of = as_of.or(rules.staleness.as_ref().and_then(|s| s.as_of));
    let mut checker = Checker::new(rules, as_of);
    let template = std::sync::OnceLock::new();
    let sequential = std::sync::atomic::AtomicBool::new(false);
    let cutter = Cutter::new(input, chunk_bytes);
    let (sha256, bytes) = match threads {
        Threads::Inline => {
            let mut pieces = Inline {
                cutter,
                template: &template,
                sequential: &sequential,
                spare: Vec::new(),
                scratch: Scratch::default(),
            };
            scan(&mut pieces, &mut checker, &template, &sequential)?;
            let mut cutter = pieces.cutter;
            cutter.hash_rest(pieces.spare)?;
            cutter.digest()
        }
        Threads::Cores => threaded(cutter, &mut checker, &template, &sequential)?,
    };
    let (rows, outcomes) = checker.finish();
    let passed = outcomes.iter().all(|r| r.passed);
    Ok(Report {
        passed,
        input: FileDigest {
            path: rel.to_string(),
            sha256,
            bytes,
        },
        rows,
        as_of: as_of.map(|d| d.to_string()),
        rules: outcomes,
    })
}

/// One line's fields: the line's bytes and each field's bounds in it.
#[derive(Clone, Copy)]
struct Fields<'t> {
    text: &'t [u8],
    bounds: &'t [(usize, usize)],
}

impl<'t> Fields<'t> {
    fn len(&self) -> usize {
        self.bounds.len()
    }

    fn get(&self, i: usize) -> &'t [u8] {
        let (a, b) = self.bounds[i];
        &self.text[a..b]
    }

    fn iter(&self) -> impl Iterator<Item = &'t [u8]> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

#[allow(clippy::disallowed_types)] // membership only: the outcome never depends on its order
type KeySet = std::collections::HashSet<Box<[u8]>>;

/// A worker's unique-key values, in row order, for the merging thread to
/// look up in one set: the keys joined, and where each ends with its line.
#[derive(Clone, Default)]
struct KeyLog {
    bytes: Vec<u8>,
    ends: Vec<(usize, u64)>,
}

/// Every rule's state while rows stream past. A worker checks a piece of the
/// file with a blank copy ([`Checker::blank`]); the merging thread takes on
/// its outcome in file order ([`Checker::absorb`]).
#[derive(Clone)]
struct Checker<'a> {
    rules: &'a DqSection,
    as_of: Option<Date>,
    csv_rule: Rule,
    /// Set once the header is read; `None` also after an empty file.
    columns: Option<usize>,
    /// Reading stopped (a ragged row).
    stopped: bool,
    columns_rule: Rule,
    unknown: Vec<String>,
    typed: Vec<(usize, ColumnType, Rule)>,
    not_null: Vec<(usize, Rule)>,
    key_columns: Vec<usize>,
    unique_rule: Option<Rule>,
    keys: KeySet,
    ranges: Vec<(usize, Bounds, Rule)>,
    /// (column name, index, null count), by name.
    nulls: Vec<(String, usize, u64)>,
    /// The columns some rule reads, by type: each kind is checked in a loop
    /// of its own, with no per-cell dispatch on the type.
    floats: Vec<ColumnPlan>,
    ints: Vec<ColumnPlan>,
    dates: Vec<ColumnPlan>,
    others: Vec<ColumnPlan>,
    date_col: Option<usize>,
    date_parse: Rule,
    sorted_rule: Rule,
    gap_days: Option<u32>,
    gap_rule: Rule,
    last_date: Option<Date>,
    max_date: Option<Date>,
    /// The previous row's date text and value: dates repeat row after row.
    date_memo: (Vec<u8>, Option<Date>),
    /// The date column's previous cell (trimmed) and its date.
    date_col_memo: (Vec<u8>, Option<Date>),
    rows: u64,
    /// The first date read, and its line (where a piece meets the one before).
    first_date: Option<(Date, u64)>,
    /// In a worker: the unique-key values, kept for the merging thread.
    key_log: Option<KeyLog>,
    /// The header line and its fields' bounds, to bind a blank copy.
    header_line: (Vec<u8>, Vec<(usize, usize)>),
}

/// The rules that read one column (indices into the checker's rule lists).
#[derive(Clone, Debug, Default)]
struct ColumnPlan {
    column: usize,
    typed: Option<usize>,
    not_null: Vec<usize>,
    ranges: Vec<usize>,
    null_count: Option<usize>,
}

/// A range rule's bounds, also as intervals of the exact decimal form: for
/// a sign and a count `k` of decimals, the mantissas `m` whose value
/// `m / 10^k`, rounded to the nearest double, lies within `[min, max]`. A
/// plain decimal is then checked without a division and with the very
/// verdict the double would give.
#[derive(Clone, Debug)]
struct Bounds {
    min: f64,
    max: f64,
    /// `[negative][k]`: the mantissas within, `(first, last)`; empty when
    /// `first > last`.
    exact: [[(u64, u64); 16]; 2],
}

impl Bounds {
    fn new(min: f64, max: f64) -> Bounds {
        let mut exact = [[(1, 0); 16]; 2];
        for (negative, row) in exact.iter_mut().enumerate() {
            // -x lies in [min, max] exactly when x lies in [-max, -min].
            let (lo, hi) = if negative == 1 {
                (-max, -min)
            } else {
                (min, max)
            };
            for (k, slot) in row.iter_mut().enumerate() {
                // The value is monotone in the mantissa, so each end is a
                // partition point.
                let value = |m: u64| m as f64 / POW10[k];
                let first = partition_point(MAX_MANTISSA + 1, |m| value(m) < lo);
                let end = partition_point(MAX_MANTISSA + 1, |m| value(m) <= hi);
                if first < end {
                    *slot = (first, end - 1);
                }
            }
        }
        Bounds { min, max, exact }
    }

    /// For cells of `shape`, negative or not: the keys of the mantissas
    /// within, `(first, last)` ([`word::Shape::key_of`]); empty when
    /// `first > last`.
    fn keys(&self, shape: &word::Shape) -> [(u64, u64); 2] {
        [0, 1].map(|negative| {
            let (first, last) = self.exact[negative][shape.decimals()];
            let last = last.min(shape.max_mantissa());
            if first > last {
                (u64::MAX, 0)
            } else {
                (shape.key_of(first), shape.key_of(last))
            }
        })
    }

    fn holds(&self, number: Number) -> bool {
        match number {
            Number::Exact {
                negative,
                mantissa,
                decimals,
            } => {
                let (first, last) = self.exact[usize::from(negative)][usize::from(decimals)];
                mantissa >= first && mantissa <= last
            }
            Number::Float(v) => v >= self.min && v <= self.max,
        }
    }
}

/// The first `m` in `0..end` for which `before(m)` is false (`before` holds
/// on a prefix).
fn partition_point(end: u64, before: impl Fn(u64) -> bool) -> u64 {
    let (mut lo, mut hi) = (0, end);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if before(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// A cell that is null counts against not-null and the null fraction;
/// otherwise its trimmed text.
#[inline(always)]
fn present<'t>(
    raw: &'t [u8],
    plan: &ColumnPlan,
    not_null: &mut [(usize, Rule)],
    nulls: &mut [(String, usize, u64)],
    line: u64,
) -> Option<&'t [u8]> {
    // Most cells are neither padded nor short enough to spell a null.
    if raw.len() > 4 && !raw[0].is_ascii_whitespace() && !raw[raw.len() - 1].is_ascii_whitespace() {
        return Some(raw);
    }
    if !is_null(raw) {
        return Some(raw.trim_ascii());
    }
    for &r in &plan.not_null {
        not_null[r].1.fail(line);
    }
    if let Some(n) = plan.null_count {
        nulls[n].2 += 1;
    }
    None
}

/// The range rules of a column, on a cell read as `number` (`None`: not a
/// number, which no range holds).
#[inline(always)]
fn check_ranges(
    plan: &ColumnPlan,
    number: Option<Number>,
    ranges: &mut [(usize, Bounds, Rule)],
    line: u64,
) {
    for &r in &plan.ranges {
        let (_, bounds, rule) = &mut ranges[r];
        if !number.is_some_and(|n| bounds.holds(n)) {
            rule.fail(line);
        }
    }
}

/// A cell that is not of its column's type.
#[inline(always)]
fn fail_type(plan: &ColumnPlan, typed: &mut [(usize, ColumnType, Rule)], line: u64) {
    if let Some(t) = plan.typed {
        typed[t].2.fail(line);
    }
}

/// The date `text` spells, through `memo` (the previous cell's text and
/// date: dates repeat row after row).
#[inline(always)]
fn remembered_date(memo: &mut (Vec<u8>, Option<Date>), text: &[u8]) -> Option<Date> {
    if !same(&memo.0, text) {
        *memo = (text.to_vec(), parse_date(text));
    }
    memo.1
}

/// Whether two short texts are equal, without a call for the common sizes.
#[inline(always)]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if (8..=16).contains(&n) {
        let word = |t: &[u8], at: usize| {
            u64::from_le_bytes(t[at..at + 8].try_into().expect("eight bytes"))
        };
        return word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8);
    }
    a == b
}

/// The kind of a column's cells, as the rules read them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Float,
    Int,
    Date,
    /// A string column, or one only some rule other than a type names.
    Other,
}

/// The state of the rules that read one cell at a time: types, not-null,
/// ranges and null counts.
struct Cells<'c> {
    typed: &'c mut [(usize, ColumnType, Rule)],
    not_null: &'c mut [(usize, Rule)],
    nulls: &'c mut [(String, usize, u64)],
    ranges: &'c mut [(usize, Bounds, Rule)],
    date_memo: &'c mut (Vec<u8>, Option<Date>),
}

impl Cells<'_> {
    /// Every rule of `plan`'s column on the cell `raw` of `line`.
    #[inline(always)]
    fn check(&mut self, kind: Kind, plan: &ColumnPlan, raw: &[u8], line: u64) {
        let Some(f) = present(raw, plan, self.not_null, self.nulls, line) else {
            return;
        };
        // A float is read once, for its type and its ranges.
        let (of_type, number) = match kind {
            Kind::Float => {
                let number = parse_number(f);
                (number.is_some(), Some(number))
            }
            Kind::Int => (is_int(f), None),
            Kind::Date => (remembered_date(self.date_memo, f).is_some(), None),
            Kind::Other => (true, None),
        };
        if !of_type {
            fail_type(plan, self.typed, line);
        }
        if !plan.ranges.is_empty() {
            let number = number.unwrap_or_else(|| parse_number(f));
            check_ranges(plan, number, self.ranges, line);
        }
    }

    /// [`Cells::check`] down a laid-out block's column. A short plain
    /// number is neither null nor padded and is of its type, so for most
    /// cells of a number column only the ranges are left to check. A
    /// number column with no range or with one, the common shapes, has a
    /// loop of its own with nothing looked up per cell; in a float column
    /// a cell of the previous plain decimal's shape is read by its shape
    /// (see [`word::Shape`]). In a block with
    /// nothing to trim, a cell of a string column with no range is a null
    /// or nothing to any rule, and only one short enough to spell a null
    /// is read at all.
    #[inline(always)]
    fn column(&mut self, kind: Kind, plan: &ColumnPlan, table: &Table<'_>, before: u64) {
        match (kind, plan.ranges.as_slice()) {
            (Kind::Float, []) => {
                // The shape of the last plain decimal read.
                let mut shape: Option<word::Shape> = None;
                for (row, (raw, rest)) in table.column(plan.column).enumerate() {
                    if shape.is_some_and(|s| s.key(rest, raw.len()).is_some()) {
                        continue;
                    }
                    if word::decimal(rest, raw.len()).is_some() {
                        shape = word::Shape::of(rest, raw.len()).or(shape);
                        continue;
                    }
                    self.check(kind, plan, raw, before + row as u64 + 1);
                }
            }
            (Kind::Float, &[r]) => {
                // The bounds are read a few hundred times per copy; the
                // shape of the last plain decimal read, with its keys.
                let bounds = self.ranges[r].1.clone();
                let mut fast: Option<(word::Shape, [(u64, u64); 2])> = None;
                for (row, (raw, rest)) in table.column(plan.column).enumerate() {
                    let line = before + row as u64 + 1;
                    if let Some((shape, keys)) = &fast {
                        if let Some((negative, key)) = shape.key(rest, raw.len()) {
                            let (first, last) = keys[usize::from(negative)];
                            if key < first || key > last {
                                self.ranges[r].2.fail(line);
                            }
                            continue;
                        }
                    }
                    match word::decimal(rest, raw.len()) {
                        Some(number) => {
                            if !bounds.holds(number) {
                                self.ranges[r].2.fail(line);
                            }
                            if let Some(shape) = word::Shape::of(rest, raw.len()) {
                                fast = Some((shape, bounds.keys(&shape)));
                            }
                        }
                        None => self.check(kind, plan, raw, line),
                    }
                }
            }
            (Kind::Other, []) if !table.loose => {
                for (row, len) in table.lengths(plan.column).enumerate() {
                    if len <= 4 {
                        let raw = table.get(row, plan.column);
                        self.check(kind, plan, raw, before + row as u64 + 1);
                    }
                }
            }
            (Kind::Int, []) => {
                for (row, (raw, rest)) in table.column(plan.column).enumerate() {
                    if !word::digits(rest, raw.len()) {
                        self.check(kind, plan, raw, before + row as u64 + 1);
                    }
                }
            }
            (Kind::Int, &[r]) => {
                // The bounds are read a few hundred times per copy.
                let bounds = self.ranges[r].1.clone();
                for (row, (raw, rest)) in table.column(plan.column).enumerate() {
                    let line = before + row as u64 + 1;
                    let plain = if word::digits(rest, raw.len()) {
                        word::decimal(rest, raw.len())
                    } else {
                        None
                    };
                    match plain {
                        Some(number) if bounds.holds(number) => {}
                        Some(_) => self.ranges[r].2.fail(line),
                        None => self.check(kind, plan, raw, line),
                    }
                }
            }
            _ => {
                for (row, (raw, _)) in table.column(plan.column).enumerate() {
                    self.check(kind, plan, raw, before + row as u64 + 1);
                }
            }
        }
    }
}

/// [`Cells::column`] compiled for each kind on its own.
macro_rules! column_of_kind {
    ($($name:ident: $kind:expr),*) => {
        impl Cells<'_> {
            $(
                #[inline(never)]
                fn $name(&mut self, plan: &ColumnPlan, table: &Table<'_>, before: u64) {
                    self.column($kind, plan, table, before);
                }
            )*
        }
    };
}

column_of_kind!(
    float_column: Kind::Float,
    int_column: Kind::Int,
    date_column: Kind::Date,
    other_column: Kind::Other
);

impl<'a> Checker<'a> {
    fn new(rules: &'a DqSection, as_of: Option<Date>) -> Checker<'a> {
        Checker {
            rules,
            as_of,
            csv_rule: Rule::new("csv", "well-formed UTF-8 CSV with a header"),
            columns: None,
            stopped: false,
            columns_rule: Rule::new(
                "columns",
                format!(
                    "required columns: {}",
                    rules.columns.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ),
            unknown: Vec::new(),
            typed: Vec::new(),
            not_null: Vec::new(),
            key_columns: Vec::new(),
            unique_rule: (!rules.unique_key.is_empty()).then(|| {
                Rule::new(
                    "unique_key",
                    format!("({}) is unique", rules.unique_key.join(", ")),
                )
            }),
            keys: KeySet::default(),
            ranges: Vec::new(),
            nulls: Vec::new(),
            floats: Vec::new(),
            ints: Vec::new(),
            dates: Vec::new(),
            others: Vec::new(),
            date_col: None,
            date_parse: Rule::new("date_parse", "dates are YYYY-MM-DD"),
            sorted_rule: Rule::new("date_sorted", "dates never go back"),
            gap_days: rules.date.as_ref().and_then(|d| d.max_gap_days),
            gap_rule: Rule::new(
                "date_gap",
                format!(
                    "no gap over {} days between consecutive dates",
                    rules
                        .date
                        .as_ref()
                        .and_then(|d| d.max_gap_days)
                        .unwrap_or(0)
                ),
            ),
            last_date: None,
            max_date: None,
            date_memo: (Vec::new(), None),
            date_col_memo: (Vec::new(), None),
            rows: 0,
            first_date: None,
            key_log: None,
            header_line: (Vec::new(), Vec::new()),
        }
    }

    /// A checker bound to the same header with nothing read yet.
    fn blank(&self) -> Checker<'a> {
        let mut blank = Checker::new(self.rules, self.as_of);
        let (text, bounds) = &self.header_line;
        blank.header(Fields { text, bounds });
        blank
    }

    /// Takes on what a blank copy found in the rows that follow this
    /// checker's: counts add up, first lines follow on, and the dates and
    /// keys are checked across the seam. The header's own findings (missing
    /// columns, unknown names) are this checker's alone.
    fn absorb(&mut self, later: Checker<'a>) {
        self.rows += later.rows;
        self.stopped |= later.stopped;
        if later.csv_rule.failures > 0 {
            self.csv_rule.detail.clone_from(&later.csv_rule.detail);
        }
        self.csv_rule.absorb(later.csv_rule);
        for (mine, theirs) in self.typed.iter_mut().zip(later.typed) {
            mine.2.absorb(theirs.2);
        }
        for (mine, theirs) in self.not_null.iter_mut().zip(later.not_null) {
            mine.1.absorb(theirs.1);
        }
        if let (Some(rule), Some(log)) = (&mut self.unique_rule, later.key_log) {
            let mut start = 0;
            for (end, line) in log.ends {
                if !self.keys.insert(log.bytes[start..end].into()) {
                    rule.fail(line);
                }
                start = end;
            }
        }
        for (mine, theirs) in self.ranges.iter_mut().zip(later.ranges) {
            mine.2.absorb(theirs.2);
        }
        for (mine, theirs) in self.nulls.iter_mut().zip(later.nulls) {
            mine.2 += theirs.2;
        }
        self.date_parse.absorb(later.date_parse);
        if let (Some(prev), Some((first, line))) = (self.last_date, later.first_date) {
            self.date_step(prev, first, line);
        }
        self.sorted_rule.absorb(later.sorted_rule);
        self.gap_rule.absorb(later.gap_rule);
        if self.first_date.is_none() {
            self.first_date = later.first_date;
        }
        self.last_date = later.last_date.or(self.last_date);
        self.max_date = self.max_date.max(later.max_date);
        // The previous row is now the later rows' last (see `date_cell`).
        if later.rows > 0 {
            self.date_col_memo = later.date_col_memo;
        }
    }

    /// The date rules between consecutive dates: `date` on `line` after `prev`.
    fn date_step(&mut self, prev: Date, date: Date, line: u64) {
        if date < prev {
            self.sorted_rule.fail(line);
        } else if self
            .gap_days
            .is_some_and(|g| (date - prev).whole_days() > i64::from(g))
        {
            self.gap_rule.fail(line);
        }
    }

    /// Binds the rules to the header's columns.
    fn header(&mut self, fields: Fields<'_>) {
        // Only the header's own bytes: `fields.text` may be a whole block,
        // and every worker's copy of a blank checker would copy it again.
        let (start, end) = match (fields.bounds.first(), fields.bounds.last()) {
            (Some(&(start, _)), Some(&(_, end))) => (start, end),
            _ => (0, 0),
        };
        self.header_line = (
            fields.text[start..end].to_vec(),
            fields
                .bounds
                .iter()
                .map(|&(a, b)| (a - start, b - start))
                .collect(),
        );
        let header: Vec<String> = fields
            .iter()
            .map(|f| String::from_utf8_lossy(f).trim().to_string())
            .collect();
        let index = |name: &str| header.iter().position(|h| h == name);
        let rules = self.rules;
        self.columns = Some(header.len());
        for (name, kind) in &rules.columns {
            match index(name) {
                Some(i) => self.typed.push((
                    i,
                    *kind,
                    Rule::new(
                        format!("type:{name}"),
                        format!("{name} is {}", kind.as_str()),
                    ),
                )),
                None => {
                    self.columns_rule.fail(1);
                    self.columns_rule
                        .detail
                        .push_str(&format!("; missing {name}"));
                }
            }
        }
        for name in &rules.not_null {
            match index(name) {
                Some(i) => self.not_null.push((
                    i,
                    Rule::new(
                        format!("not_null:{name}"),
                        format!("{name} has no empty or null values"),
                    ),
                )),
                None => self.unknown.push(name.clone()),
            }
        }
        self.key_columns = rules.unique_key.iter().filter_map(|n| index(n)).collect();
        self.unknown.extend(
            rules
                .unique_key
                .iter()
                .filter(|n| index(n).is_none())
                .cloned(),
        );
        for (name, range) in &rules.ranges {
            match index(name) {
                Some(i) => self.ranges.push((
                    i,
                    Bounds::new(
                        range.min.unwrap_or(f64::NEG_INFINITY),
                        range.max.unwrap_or(f64::INFINITY),
                    ),
                    Rule::new(
                        format!("range:{name}"),
                        format!("{name} within [{}, {}]", show(range.min), show(range.max)),
                    ),
                )),
                None => self.unknown.push(name.clone()),
            }
        }
        if rules.max_null_fraction.is_some() {
            for name in rules.columns.keys() {
                if let Some(i) = index(name) {
                    self.nulls.push((name.clone(), i, 0));
                }
            }
        }
        self.date_col = rules.date.as_ref().and_then(|d| {
            let i = index(&d.column);
            if i.is_none() {
                self.unknown.push(d.column.clone());
            }
            i
        });
        let mut plan: Vec<ColumnPlan> = (0..header.len())
            .map(|column| ColumnPlan {
                column,
                ..ColumnPlan::default()
            })
            .collect();
        for (t, (c, _, _)) in self.typed.iter().enumerate() {
            plan[*c].typed = Some(t);
        }
        for (r, (c, _)) in self.not_null.iter().enumerate() {
            plan[*c].not_null.push(r);
        }
        for (r, (c, _, _)) in self.ranges.iter().enumerate() {
            plan[*c].ranges.push(r);
        }
        for (n, (_, c, _)) in self.nulls.iter().enumerate() {
            plan[*c].null_count = Some(n);
        }
        for p in plan {
            let kind = p.typed.map(|t| self.typed[t].1);
            let group = match kind {
                Some(ColumnType::Float) => &mut self.floats,
                Some(ColumnType::Int) => &mut self.ints,
                Some(ColumnType::Date) => &mut self.dates,
                Some(ColumnType::String) | None => &mut self.others,
            };
            if p.typed.is_some()
                || !p.not_null.is_empty()
                || !p.ranges.is_empty()
                || p.null_count.is_some()
            {
                group.push(p);
            }
        }
    }

    /// Reading stops at a malformed line.
    fn malformed(&mut self, line: u64, detail: String) {
        self.csv_rule.fail(line);
        self.csv_rule.detail = detail;
        self.stopped = true;
    }

    fn ragged(&mut self, line: u64, len: usize, expected: usize) {
        self.malformed(
            line,
            format!("line {line}: {len} fields where the header has {expected} (ragged row); reading stopped"),
        );
    }

    /// A row whose bytes are not UTF-8: counted, failed, not checked.
    fn invalid_utf8(&mut self, line: u64) {
        self.rows += 1;
        self.csv_rule.fail(line);
        self.csv_rule.detail = format!("line {line}: invalid UTF-8");
    }

    /// Checks one data row (valid UTF-8, as many fields as the header).
    fn row(&mut self, fields: Fields<'_>, line: u64) {
        self.rows += 1;
        let (groups, mut cells) = self.split();
        for (kind, plans) in groups {
            for plan in plans {
                let raw = fields.get(plan.column);
                cells.check(kind, plan, raw, line);
            }
        }
        self.key(|i| fields.get(i), line);
        if let Some(i) = self.date_col {
            self.date_cell(fields.get(i), line);
        }
    }

    /// Checks the rows of a laid-out block, a column at a time: the rules of
    /// one column never read another's, so each rule sees its cells in row
    /// order and ends as [`Checker::row`] row by row would leave it. Row `r`
    /// is on line `before + r + 1` (a table has no blank lines).
    fn table(&mut self, table: &Table<'_>, before: u64) {
        // A few hundred rows at a time, so that a column's pass finds the
        // rows the previous column's pass brought into the cache.
        const ROWS: usize = 512;
        for first in (0..table.rows).step_by(ROWS) {
            let part = table.rows_from(first, ROWS);
            self.table_part(&part, before + first as u64);
        }
    }

    /// [`Checker::table`] on a few rows.
    fn table_part(&mut self, table: &Table<'_>, before: u64) {
        self.rows += table.rows as u64;
        let merged = self.merged_date_column();
        let (groups, mut cells) = self.split();
        for (kind, plans) in groups {
            for plan in plans {
                if merged.is_some_and(|(column, _)| column == plan.column) {
                    continue; // with the date rules, below
                }
                // A function per kind, so that each is compiled for its own
                // and its loop keeps its state in registers.
                match kind {
                    Kind::Float => cells.float_column(plan, table, before),
                    Kind::Int => cells.int_column(plan, table, before),
                    Kind::Date => cells.date_column(plan, table, before),
                    Kind::Other => cells.other_column(plan, table, before),
                }
            }
        }
        if self.unique_rule.is_some() {
            for row in 0..table.rows {
                self.key(|i| table.get(row, i), before + row as u64 + 1);
            }
        }
        match (merged, self.date_col) {
            (Some((column, plan)), _) => self.date_column_with_rules(column, plan, table, before),
            (None, Some(i)) => {
                for (row, (raw, _)) in table.column(i).enumerate() {
                    self.date_cell(raw, before + row as u64 + 1);
                }
            }
            (None, None) => {}
        }
    }

    /// The date rules' column, when one pass can check its cells for the
    /// date rules and for its own column's rules: it has no range rule and
    /// is of a type a date is of (date or string, or none). With its plan,
    /// if it has one: the kind of its group, and its place there.
    fn merged_date_column(&self) -> Option<(usize, Option<(Kind, usize)>)> {
        let column = self.date_col?;
        let place = |plans: &[ColumnPlan]| plans.iter().position(|p| p.column == column);
        for (kind, plans) in [(Kind::Date, &self.dates), (Kind::Other, &self.others)] {
            if let Some(p) = place(plans) {
                return plans[p]
                    .ranges
                    .is_empty()
                    .then_some((column, Some((kind, p))));
            }
        }
        if place(&self.floats).is_some() || place(&self.ints).is_some() {
            return None;
        }
        Some((column, None))
    }

    /// The date rules and the column's own (its `plan` in the group of its
    /// kind) down the date column, in one pass. A cell that is the previous
    /// row's date again, byte for byte, is trimmed and a date, so neither
    /// null nor of the wrong type, and a step of no days breaks no date
    /// rule: nothing is left to check in it.
    fn date_column_with_rules(
        &mut self,
        column: usize,
        plan: Option<(Kind, usize)>,
        table: &Table<'_>,
        before: u64,
    ) {
        for (row, (raw, _)) in table.column(column).enumerate() {
            if self.date_col_memo.1.is_some() && same(&self.date_col_memo.0, raw) {
                continue;
            }
            let line = before + row as u64 + 1;
            if let Some((kind, p)) = plan {
                let (groups, mut cells) = self.split();
                if let Some((_, plans)) = groups.iter().find(|(k, _)| *k == kind) {
                    cells.check(kind, &plans[p], raw, line);
                }
            }
            self.date_cell(raw, line);
        }
    }

    /// The column plans by kind, and the per-cell rules' state apart from
    /// them.
    fn split(&mut self) -> ([(Kind, &[ColumnPlan]); 4], Cells<'_>) {
        let Checker {
            typed,
            not_null,
            nulls,
            ranges,
            date_memo,
            floats,
            ints,
            dates,
            others,
            ..
        } = self;
        (
            [
                (Kind::Float, floats),
                (Kind::Int, ints),
                (Kind::Date, dates),
                (Kind::Other, others),
            ],
            Cells {
                typed,
                not_null,
                nulls,
                ranges,
                date_memo,
            },
        )
    }

    /// The unique-key rule on one row (`field(i)`: its field in column `i`).
    #[inline]
    fn key<'f>(&mut self, field: impl Fn(usize) -> &'f [u8], line: u64) {
        let Some(rule) = &mut self.unique_rule else {
            return;
        };
        if self.key_columns.len() != self.rules.unique_key.len() {
            return;
        }
        let mut own = KeyLog::default();
        let log = self.key_log.as_mut().unwrap_or(&mut own);
        for &i in &self.key_columns {
            log.bytes.extend_from_slice(field(i));
            log.bytes.push(0x1f);
        }
        log.ends.push((log.bytes.len(), line));
        // Without a log to keep, the key is looked up at once.
        if self.key_log.is_none() && !self.keys.insert(own.bytes.into_boxed_slice()) {
            rule.fail(line);
        }
    }

    /// The date rules on one row's cell of the date column.
    #[inline(always)]
    fn date_cell(&mut self, raw: &[u8], line: u64) {
        let text = raw.trim_ascii();
        // The previous row's date again (dates repeat row after row): it
        // is the last date, and a step of none breaks no rule.
        if self.date_col_memo.1.is_some() && same(&self.date_col_memo.0, text) {
            return;
        }
        self.new_date(text, line);
    }

    /// [`Checker::date_cell`] on a date other than the previous row's.
    #[inline(never)]
    fn new_date(&mut self, text: &[u8], line: u64) {
        match remembered_date(&mut self.date_col_memo, text) {
            None => self.date_parse.fail(line),
            Some(d) => {
                match self.last_date {
                    Some(prev) => self.date_step(prev, d, line),
                    None => self.first_date = Some((d, line)),
                }
                self.last_date = Some(d);
                self.max_date = self.max_date.max(Some(d));
            }
        }
    }

    /// The outcome of every configured rule, in a fixed order.
    fn finish(mut self) -> (u64, Vec<RuleOutcome>) {
        let rules = self.rules;
        let rows = self.rows;
        if self.columns.is_none() {
            if self.csv_rule.failures == 0 {
                self.csv_rule.fail(1);
                self.csv_rule.detail = "empty file: no header".into();
            }
            return (0, vec![self.csv_rule.done()]);
        }
        let mut out = vec![self.csv_rule.done()];
        if !rules.columns.is_empty() {
            out.push(self.columns_rule.done());
            out.extend(self.typed.into_iter().map(|(_, _, r)| r.done()));
        }
        if !self.unknown.is_empty() {
            let mut r = Rule::new(
                "config_columns",
                format!(
                    "columns named by the rules but not in the header: {}",
                    self.unknown.join(", ")
                ),
            );
            r.fail(1);
            out.push(r.done());
        }
        out.extend(self.not_null.into_iter().map(|(_, r)| r.done()));
        out.extend(self.unique_rule.map(Rule::done));
        out.extend(self.ranges.into_iter().map(|(_, _, r)| r.done()));
        if let Some(max) = rules.max_null_fraction {
            for (name, _, count) in self.nulls {
                let mut r = Rule::new(
                    format!("null_fraction:{name}"),
                    format!("{count} of {rows} null, at most {max} allowed"),
                );
                if rows > 0 && count as f64 / rows as f64 > max {
                    r.failures = count;
                }
                out.push(r.done());
            }
        }
        if let Some(d) = &rules.date {
            out.push(self.date_parse.done());
            if d.sorted {
                out.push(self.sorted_rule.done());
            }
            if self.gap_days.is_some() {
                out.push(self.gap_rule.done());
            }
        }
        if let Some(min) = rules.min_rows {
            let mut r = Rule::new("min_rows", format!("{rows} rows, at least {min} required"));
            if rows < min {
                r.failures = 1;
            }
            out.push(r.done());
        }
        if let Some(s) = &rules.staleness {
            let mut r = Rule::new("staleness", String::new());
            match (self.as_of, self.max_date) {
                (None, _) => {
                    r.failures = 1;
                    r.detail = "no as-of date: set dq.staleness.as_of or pass --dq-as-of".into();
                }
                (Some(_), None) => {
                    r.failures = 1;
                    r.detail = "no dates to measure".into();
                }
                (Some(as_of), Some(last)) => {
                    let age = (as_of - last).whole_days();
                    r.detail = format!(
                        "last date {last} is {age} days before {as_of}, at most {} allowed",
                        s.max_age_days
                    );
                    if age > i64::from(s.max_age_days) {
                        r.failures = 1;
                    }
                }
            }
            out.push(r.done());
        }
        (rows, out)
    }
}

/// Streams the pieces through `checker`, in file order. Plain lines (no
/// quote, no lone CR) are split on commas directly, by the workers once the
/// header is known; from the first piece that holds a quote or a lone CR on,
/// the rest goes through the csv crate, which knows every corner of RFC 4180.
/// Both read the same rows with the same line numbers.
fn scan<'a>(
    pieces: &mut impl Source<'a>,
    checker: &mut Checker<'a>,
    template: &std::sync::OnceLock<Checker<'a>>,
    sequential: &std::sync::atomic::AtomicBool,
) -> std::io::Result<()> {
    let mut scratch = Scratch::default();
    while let Some((piece, part)) = pieces.next()? {
        let plain = match part {
            Some(part) => {
                checker.absorb(*part);
                Ok(())
            }
            None if !piece.whole_lines => Err(NeedsCsv),
            None => plain_piece(checker, &piece, &mut scratch),
        };
        if plain.is_err() {
            sequential.store(true, std::sync::atomic::Ordering::Relaxed);
            let offset = piece.first_line;
            let mut rest = Rest::new(pieces, piece.bytes);
            return scan_csv(&mut rest, checker, offset);
        }
        if checker.columns.is_some() && template.get().is_none() {
            let _ = template.set(checker.blank());
        }
        pieces.recycle(piece.bytes);
        if checker.stopped {
            return Ok(());
        }
    }
    Ok(())
}

/// Buffers a reader of pieces reuses from one piece to the next.
#[derive(Default)]
struct Scratch {
    /// A line's fields (see [`Fields`]).
    bounds: Vec<(usize, usize)>,
    /// A laid-out block's field starts (see [`Table`]).
    starts: Vec<u32>,
}

/// A piece holds a quote or a carriage return that does not end a line:
/// the csv crate must read it, and from there on the rest of the file.
#[derive(Debug)]
struct NeedsCsv;

/// A piece of whole lines, each ending with `\n` but the file's last: laid
/// out and checked a column at a time once the header is known and every
/// line is a plain row of its width, else read line by line. Reads nothing
/// when the piece needs the csv crate.
fn plain_piece(
    checker: &mut Checker<'_>,
    piece: &Piece,
    scratch: &mut Scratch,
) -> Result<(), NeedsCsv> {
    let block = &piece.bytes[..];
    let (lines_part, tail) = match memchr::memrchr(b'\n', block) {
        Some(nl) => block.split_at(nl + 1),
        None => block.split_at(0),
    };
    let layout = match checker.columns {
        Some(columns) if !lines_part.is_empty() => {
            lay_out(lines_part, columns, &mut scratch.starts)
        }
        _ if needs_full_parser(lines_part) => Layout::Full,
        _ => Layout::Lines,
    };
    if layout == Layout::Full || needs_full_parser(tail) {
        return Err(NeedsCsv);
    }
    let mut lines = piece.first_line;
    match (layout, checker.columns) {
        (Layout::Table { rows, loose }, Some(columns)) => {
            let table = Table::new(lines_part, &scratch.starts, columns, rows, loose);
            checker.table(&table, lines);
            lines += rows as u64;
        }
        // `Layout::Full` went back above.
        _ => lines = plain_lines(checker, lines_part, lines, &mut scratch.bounds),
    }
    if !checker.stopped && !tail.is_empty() {
        plain_line(checker, tail, lines + 1, &mut scratch.bounds);
    }
    Ok(())
}

/// Positions of `,` and `\n` in a block, eight bytes at a time (SWAR): for
/// short CSV lines this beats restarting a vector search at every field.
struct Separators<'b> {
    block: &'b [u8],
    /// Offset of the current word.
    at: usize,
    /// Separator bits (the high bit of each matching byte) left in it.
    mask: u64,
    /// The bits of `mask` that are newlines, so that telling the two apart
    /// reads no byte.
    newlines: u64,
}

impl<'b> Separators<'b> {
    fn new(block: &'b [u8]) -> Separators<'b> {
        let mut s = Separators {
            block,
            at: 0,
            mask: 0,
            newlines: 0,
        };
        (s.mask, s.newlines) = s.word_mask(0);
        s
    }

    /// The separators and the newlines in the word at `at`.
    fn word_mask(&self, at: usize) -> (u64, u64) {
        let w = match self.block.get(at..at + 8) {
            Some(bytes) => u64::from_le_bytes(bytes.try_into().expect("eight bytes")),
            None => {
                let rest = &self.block[at.min(self.block.len())..];
                let mut word = [0xffu8; 8];
                word[..rest.len()].copy_from_slice(rest);
                u64::from_le_bytes(word)
            }
        };
        let newlines = word::zero_bytes(w ^ 0x0a0a_0a0a_0a0a_0a0a);
        (
            word::zero_bytes(w ^ 0x2c2c_2c2c_2c2c_2c2c) | newlines,
            newlines,
        )
    }
}

/// A separator's position, and whether it is a newline (else a comma).
impl Iterator for Separators<'_> {
    type Item = (usize, bool);

    fn next(&mut self) -> Option<(usize, bool)> {
        while self.mask == 0 {
            self.at += 8;
            if self.at >= self.block.len() {
                return None;
            }
            (self.mask, self.newlines) = self.word_mask(self.at);
        }
        let bit = self.mask.trailing_zeros();
        self.mask &= self.mask - 1;
        Some((self.at + bit as usize / 8, self.newlines >> bit & 1 == 1))
    }
}

/// Complete lines (`block` ends with `\n`), split in one pass over the
/// commas and newlines. Returns the line count after them.
fn plain_lines(
    checker: &mut Checker<'_>,
    block: &[u8],
    mut lines: u64,
    bounds: &mut Vec<(usize, usize)>,
) -> u64 {
    // One UTF-8 check for the whole block; lines are checked one by one only
    // when it fails.
    let valid = std::str::from_utf8(block).is_ok();
    let mut line_start = 0;
    let mut field_start = 0;
    bounds.clear();
    for (at, newline) in Separators::new(block) {
        if !newline {
            bounds.push((field_start, at));
            field_start = at + 1;
            continue;
        }
        lines += 1;
        let end = if at > line_start && block[at - 1] == b'\r' {
            at - 1
        } else {
            at
        };
        if end > line_start {
            bounds.push((field_start, end.max(field_start)));
            let fields = Fields {
                text: block,
                bounds,
            };
            match checker.columns {
                None => checker.header(fields),
                Some(expected) if fields.len() != expected => {
                    checker.ragged(lines, fields.len(), expected);
                    return lines;
                }
                Some(_) if !valid && std::str::from_utf8(&block[line_start..end]).is_err() => {
                    checker.invalid_utf8(lines)
                }
                Some(_) => checker.row(fields, lines),
            }
        }
        bounds.clear();
        line_start = at + 1;
        field_start = at + 1;
    }
    lines
}

/// Whether a chunk needs the full CSV parser: a quote, or a CR that does not
/// end a line.
fn needs_full_parser(chunk: &[u8]) -> bool {
    memchr::memchr(b'"', chunk).is_some()
        || memchr::memchr_iter(b'\r', chunk).any(|i| chunk.get(i + 1).is_some_and(|&b| b != b'\n'))
}

/// One line without its `\n`: the header, a data row, or a blank line (skipped).
fn plain_line(
    checker: &mut Checker<'_>,
    line_bytes: &[u8],
    line: u64,
    bounds: &mut Vec<(usize, usize)>,
) {
    let text = line_bytes.strip_suffix(b"\r").unwrap_or(line_bytes);
    if text.is_empty() {
        return;
    }
    bounds.clear();
    let mut start = 0;
    for comma in memchr::memchr_iter(b',', text) {
        bounds.push((start, comma));
        start = comma + 1;
    }
    bounds.push((start, text.len()));
    let fields = Fields { text, bounds };
    match checker.columns {
        None => checker.header(fields),
        Some(expected) if fields.len() != expected => checker.ragged(line, fields.len(), expected),
        Some(_) if std::str::from_utf8(text).is_err() => checker.invalid_utf8(line),
        Some(_) => checker.row(fields, line),
    }
}

/// The csv crate's reading of the rest of the stream; `offset` lines were
/// consumed before it.
fn scan_csv<'a>(
    reader: &mut Rest<'_, impl Source<'a>>,
    checker: &mut Checker<'_>,
    offset: u64,
) -> std::io::Result<()> {
    let breaks = reader.breaks.clone();
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1 << 16)
        .from_reader(reader);
    let mut record = csv::ByteRecord::new();
    let mut bounds: Vec<(usize, usize)> = Vec::new();
    let mut line = offset;
    loop {
        match csv.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            // The file could not be read: not a finding, an error.
            Err(e) if matches!(e.kind(), csv::ErrorKind::Io(_)) => {
                return Err(match e.into_kind() {
                    csv::ErrorKind::Io(e) => e,
                    other => std::io::Error::other(format!("{other:?}")),
                });
            }
            Err(e) => {
                let at = offset
                    + e.position()
                        .map_or(line - offset + 1, |p| line_at(&breaks, p));
                if checker.columns.is_none() {
                    checker.malformed(1, format!("unreadable header: {e}"));
                } else {
                    checker.malformed(at, format!("line {at}: {e}; reading stopped"));
                }
                return Ok(());
            }
        }
        line = offset
            + record
                .position()
                .map_or(line - offset + 1, |p| line_at(&breaks, p));
        bounds.clear();
        bounds.extend((0..record.len()).filter_map(|i| record.range(i).map(|r| (r.start, r.end))));
        let fields = Fields {
            text: record.as_slice(),
            bounds: &bounds,
        };
        match checker.columns {
            None => checker.header(fields),
            Some(expected) if fields.len() != expected => {
                checker.ragged(line, fields.len(), expected);
                return Ok(());
            }
            Some(_) if std::str::from_utf8(record.as_slice()).is_err() => {
                checker.invalid_utf8(line)
            }
            Some(_) => checker.row(fields, line),
        }
    }
}

fn show(v: Option<f64>) -> String {
    v.map_or_else(|| "unbounded".into(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"
columns: {date: date, factor: string, ret: float, n: int}
not_null: [date, factor]
unique_key: [date, factor]
date: {column: date, sorted: true, max_gap_days: 3}
ranges: {ret: {min: -1.0, max: 1.0}}
min_rows: 3
max_null_fraction: 0.34
staleness: {max_age_days: 2, as_of: 2026-01-07}
"#;
    const GOOD: &str = "date,factor,ret,n\n2026-01-01,mom,0.1,1\n2026-01-01,val,-0.2,2\n2026-01-02,mom,0.05,3\n2026-01-05,mom,,4\n";

    fn rules() -> DqSection {
        serde_yaml_ng::from_str(RULES).unwrap()
    }

    fn run(csv: &[u8]) -> Report {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.csv");
        std::fs::write(&path, csv).unwrap();
        check(&path, "in.csv", &rules(), None).unwrap()
    }

    fn failed(report: &Report) -> Vec<(String, Vec<u64>)> {
        report
            .rules
            .iter()
            .filter(|r| !r.passed)
            .map(|r| (r.rule.clone(), r.first_lines.clone()))
            .collect()
    }

    #[test]
    fn a_clean_file_passes_every_rule() {
        let r = run(GOOD.as_bytes());
        assert_eq!(failed(&r), vec![]);
        assert!(r.passed);
        assert_eq!(r.rows, 4);
        assert_eq!(r.input.bytes, GOOD.len() as u64);
        assert_eq!(
            r.input.sha256,
            crate::record::canon::sha256_hex(GOOD.as_bytes())
        );
        let names: Vec<&str> = r.rules.iter().map(|r| r.rule.as_str()).collect();
        assert_eq!(
            names,
            [
                "csv",
                "columns",
                "type:date",
                "type:factor",
                "type:n",
                "type:ret",
                "not_null:date",
                "not_null:factor",
                "unique_key",
                "range:ret",
                "null_fraction:date",
                "null_fraction:factor",
                "null_fraction:n",
                "null_fraction:ret",
                "date_parse",
                "date_sorted",
                "date_gap",
                "min_rows",
                "staleness"
            ]
        );
    }

    #[test]
    fn each_rule_fails_on_its_own_fixture() {
        type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a [u64])]);
        let cases: [Case; 11] = [
            (
                "missing column",
                "date,factor,ret\n2026-01-01,a,0\n2026-01-02,b,0\n2026-01-05,c,0\n",
                &[("columns", &[1])],
            ),
            (
                "bad int",
                &GOOD.replace(",0.1,1\n", ",0.1,x1\n"),
                &[("type:n", &[2])],
            ),
            (
                "bad float",
                &GOOD.replace("-0.2", "abc"),
                &[("type:ret", &[3]), ("range:ret", &[3])],
            ),
            (
                "null key",
                &GOOD.replace("2026-01-02,mom", "2026-01-02,"),
                &[("not_null:factor", &[4])],
            ),
            (
                "duplicate key",
                &GOOD.replace("2026-01-01,val", "2026-01-01,mom"),
                &[("unique_key", &[3])],
            ),
            (
                "out of range",
                &GOOD.replace("0.05", "1.5"),
                &[("range:ret", &[4])],
            ),
            (
                "unsorted",
                &GOOD.replace("2026-01-02", "2025-12-31"),
                &[("date_sorted", &[4]), ("date_gap", &[5])],
            ),
            (
                "gap",
                &GOOD.replace("2026-01-05", "2026-01-06"),
                &[("date_gap", &[5])],
            ),
            (
                "bad date",
                &GOOD.replace("2026-01-05", "05/01/2026"),
                &[
                    ("type:date", &[5]),
                    ("date_parse", &[5]),
                    ("staleness", &[]),
                ],
            ),
            (
                "too few rows",
                "date,factor,ret,n\n2026-01-05,a,0,1\n2026-01-06,b,0,1\n",
                &[("min_rows", &[])],
            ),
            (
                "nulls",
                &GOOD.replace("0.1,1", ",1").replace("0.05,3", ",3"),
                &[("null_fraction:ret", &[])],
            ),
        ];
        for (what, csv, expected) in cases {
            let got = failed(&run(csv.as_bytes()));
            let expected: Vec<(String, Vec<u64>)> = expected
                .iter()
                .map(|(r, l)| (r.to_string(), l.to_vec()))
                .collect();
            assert_eq!(got, expected, "{what}");
        }
        // Stale: the last date is 5 days before as_of.
        let stale = GOOD
            .replace("2026-01-05", "2026-01-02")
            .replace("2026-01-02,mom,0.05", "2026-01-02,val2,0.05");
        assert_eq!(
            failed(&run(stale.as_bytes())),
            [("staleness".to_string(), vec![])]
        );
    }

    #[test]
    fn malformed_csv_is_a_failure_with_a_line_never_a_crash() {
        for (what, bytes, line, detail) in [
            ("empty", &b""[..], 1, "empty file"),
            (
                "ragged",
                &b"date,factor,ret,n\n2026-01-01,a,0,1\n2026-01-02,b,0\n"[..],
                3,
                "ragged row",
            ),
            (
                "utf-8",
                &b"date,factor,ret,n\n2026-01-01,\xff\xfe,0,1\n"[..],
                2,
                "invalid UTF-8",
            ),
        ] {
            let r = run(bytes);
            let csv = &r.rules[0];
            assert_eq!(csv.rule, "csv");
            assert!(!csv.passed && !r.passed, "{what}");
            assert_eq!(csv.first_lines, [line], "{what}");
            assert!(csv.detail.contains(detail), "{what}: {}", csv.detail);
        }
        let header_only = run(b"date,factor,ret,n\n");
        assert_eq!(
            failed(&header_only),
            [
                ("min_rows".to_string(), vec![]),
                ("staleness".to_string(), vec![])
            ]
        );
    }

    #[test]
    fn the_fast_float_path_agrees_with_the_standard_parser() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..200_000 {
            let int_digits = (next() % 9) as usize;
            let frac_digits = (next() % 10) as usize;
            let mut text = String::new();
            match next() % 3 {
                0 => text.push('-'),
                1 => text.push('+'),
                _ => {}
            }
            for _ in 0..int_digits {
                text.push(char::from(b'0' + (next() % 10) as u8));
            }
            if frac_digits > 0 || next() % 4 == 0 {
                text.push('.');
            }
            for _ in 0..frac_digits {
                text.push(char::from(b'0' + (next() % 10) as u8));
            }
            let want = text.parse::<f64>().ok();
            let got = parse_number(text.as_bytes()).map(Number::value);
            assert_eq!(got.map(f64::to_bits), want.map(f64::to_bits), "{text:?}");
        }
        for bad in [
            "",
            "-",
            ".",
            "+.",
            "1.2.3",
            "1,5",
            "0x10",
            " 1",
            "1234567890123456",
        ] {
            assert_eq!(exact_decimal(bad.as_bytes()), None, "{bad:?}");
        }
        // Outside the fast path, the standard parser decides.
        assert_eq!(parse_number(b"1e3"), Some(Number::Float(1000.0)));
        assert_eq!(
            parse_number(b"0.1234567890123456789"),
            Some(Number::Float(0.123_456_789_012_345_68))
        );
        assert_eq!(parse_number(b"inf"), None);
    }

    /// A range holds an exact decimal, looked up by its mantissa, exactly
    /// when the double it denotes lies within the bounds: on random
    /// decimals, and on the decimals next to each bound at every precision.
    #[test]
    fn exact_range_checks_agree_with_comparing_doubles() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let ends = [
            f64::NEG_INFINITY,
            -1e9,
            -1.0,
            -0.3,
            -1e-7,
            -0.0,
            0.0,
            0.1,
            0.3,
            1.0,
            2.5,
            123.456,
            0.123_456_789_012_345_68,
            9.999_999_999_999_99e14,
            f64::INFINITY,
        ];
        for &min in &ends {
            for &max in &ends {
                let bounds = Bounds::new(min, max);
                let mut texts: Vec<String> = Vec::new();
                for end in [min, max] {
                    if !end.is_finite() {
                        continue;
                    }
                    for decimals in 0..=15usize {
                        let text = format!("{end:.decimals$}");
                        let Some(Number::Exact { mantissa, .. }) = exact_decimal(text.as_bytes())
                        else {
                            continue;
                        };
                        let sign = if end.is_sign_negative() { "-" } else { "" };
                        for m in [mantissa.saturating_sub(1), mantissa, mantissa + 1] {
                            let digits = format!("{m:0>width$}", width = decimals + 1);
                            let (int, frac) = digits.split_at(digits.len() - decimals);
                            texts.push(format!("{sign}{int}.{frac}"));
                        }
                    }
                }
                for _ in 0..2_000 {
                    let int = next() % 2_000;
                    let frac = next() % 1_000_000;
                    let sign = if next() % 2 == 0 { "-" } else { "" };
                    texts.push(format!("{sign}{int}.{frac:06}"));
                    texts.push(format!("{sign}{int}"));
                    // Short enough to be read by shape.
                    texts.push(format!("{sign}{}.{:04}", int % 100, frac % 10_000));
                    texts.push(format!("{sign}{}.{:02}", int % 10, frac % 100));
                }
                // Read by shape too: its own, and the one before it (as a
                // column's loop reads a cell by the last cell's shape).
                let mut shapes: Vec<word::Shape> = Vec::new();
                for text in &texts {
                    let Some(number) = parse_number(text.as_bytes()) else {
                        continue;
                    };
                    let v = number.value();
                    let within = v >= min && v <= max;
                    assert_eq!(bounds.holds(number), within, "{text} in [{min}, {max}]");
                    let rest = format!("{text},,,,,,,,");
                    let rest = rest.as_bytes();
                    shapes.extend(word::Shape::of(rest, text.len()));
                    for shape in shapes.iter().rev().take(2) {
                        let Some((negative, key)) = shape.key(rest, text.len()) else {
                            continue;
                        };
                        let (first, last) = bounds.keys(shape)[usize::from(negative)];
                        assert_eq!(
                            key >= first && key <= last,
                            within,
                            "{text} as {shape:?} in [{min}, {max}]"
                        );
                    }
                }
                assert!(shapes.len() > texts.len() / 4);
            }
        }
    }

    /// The fast path and the csv crate (taking over at the first quote or
    /// lone CR, even deep into the file) report the same rows and lines.
    #[test]
    fn plain_quoted_and_crlf_files_read_the_same() {
        let mut plain = String::from("date,factor,ret,n\n");
        let mut day = time::macros::date!(2026 - 01 - 01);
        let rows = 80_000;
        for i in 0..rows {
            if i % 4 == 0 {
                day = day.next_day().unwrap();
            }
            let ret = if i == 71_000 {
                "7.5".to_string()
            } else {
                format!("0.{:04}", i % 10_000)
            };
            let factor = if i == 75_000 {
                String::new()
            } else {
                format!("f{}", i % 4)
            };
            plain.push_str(&format!("{day},{factor},{ret},{i}\n"));
        }
        // The first quote sits in the second chunk: the switch happens mid-stream.
        let quoted = plain.replacen(",f0,0.0000,60000\n", ",\"f0\",0.0000,60000\n", 1);
        assert_ne!(quoted, plain);
        assert!(
            plain.find("60000\n").unwrap() > CHUNK,
            "the quote is past the first chunk"
        );
        let crlf = plain.replace('\n', "\r\n");
        let mut rules = rules();
        rules.unique_key.clear();
        rules.staleness = None;
        rules.date.as_mut().unwrap().max_gap_days = None;
        let read = |text: &str| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("in.csv");
            std::fs::write(&path, text).unwrap();
            check(&path, "in.csv", &rules, None).unwrap()
        };
        let a = read(&plain);
        assert_eq!(a.rows, rows);
        let failures = failed(&a);
        assert_eq!(
            failures,
            [
                ("not_null:factor".to_string(), vec![75_002]),
                ("range:ret".to_string(), vec![71_002]),
            ]
        );
        // CRLF with quotes goes through the csv crate, which dates a record
        // after \r\n a line early unless corrected (found by fuzzing).
        let quoted_crlf = quoted.replace('\n', "\r\n");
        for other in [read(&quoted), read(&crlf), read(&quoted_crlf)] {
            assert_eq!(other.rows, a.rows);
            assert_eq!(other.rules, a.rules);
        }
        // A quoted field hiding a comma and a newline: one field, the csv crate's way.
        let tricky = plain.replacen("f3,", "\"f,\n3\",", 1);
        let t = read(&tricky);
        assert_eq!(t.rows, rows);
        assert_eq!(
            failed(&t),
            [
                ("not_null:factor".to_string(), vec![75_003]),
                ("range:ret".to_string(), vec![71_003]),
            ]
        );
    }

    /// The report of `text` in small pieces, laid out after the first, and
    /// of the same rows as CRLF, read line by line.
    fn laid_out_and_by_line(text: &str, rules: &DqSection) -> (Report, Report) {
        let read = |text: String| {
            check_bytes(
                text.into_bytes(),
                4096,
                Threads::Inline,
                "in.csv",
                rules,
                None,
            )
            .unwrap()
        };
        (read(text.to_string()), read(text.replace('\n', "\r\n")))
    }

    /// The shortcuts of laid-out blocks (a string column's cells read only
    /// when short enough to be a null, where nothing can be trimmed; the
    /// date column's cells checked in one pass with the date rules, a
    /// repeated date skipped) find what the line-by-line reading of the
    /// same rows as CRLF finds, for every shape of the date column's own
    /// rules, with padding and without.
    #[test]
    fn laid_out_shortcuts_read_as_line_by_line_reading_does() {
        let names = [
            "mom", "", "NA", "null", "NaN", "nan", "abcd", "n/a", "x", "NULL",
        ];
        let dates = [
            "2026-01-02",
            "2026-01-03",
            "NA",
            "2026-13-01",
            "",
            "2026-01-09",
        ];
        let file = |padded: bool| {
            let mut text = String::from("date,name,tag,n\n");
            for i in 0..3000usize {
                // Runs of one date text, of varying length.
                let mut date = dates[(i / 7 + i / 500) % dates.len()].to_string();
                let mut name = names[i % names.len()].to_string();
                if padded && i % 11 == 0 {
                    name = format!(" {name}");
                }
                if padded && i % 13 == 5 {
                    date = format!("{date} ");
                }
                let tag = if i % 17 == 0 { "" } else { "sector_1" };
                text.push_str(&format!("{date},{name},{tag},{i}\n"));
            }
            text
        };
        let shapes = [
            "columns: {date: date, name: string, tag: string, n: int}",
            "columns: {date: string, name: string, tag: string, n: int}",
            "columns: {name: string, tag: string, n: int}",
            "columns: {date: date, name: string, tag: string, n: int}\nranges: {date: {min: 0}}",
            "columns: {date: int, name: string, tag: string, n: int}",
        ];
        for shape in shapes {
            let yaml = format!(
                "{shape}\nnot_null: [date, name]\ndate: {{column: date, sorted: true, max_gap_days: 3}}\nmax_null_fraction: 0.01\n"
            );
            let rules: DqSection = serde_yaml_ng::from_str(&yaml).unwrap();
            for padded in [false, true] {
                let (a, b) = laid_out_and_by_line(&file(padded), &rules);
                assert_eq!(a.rows, 3000);
                assert_eq!(a.rules, b.rules, "{shape} padded {padded}");
                let failures = |rule: &str| {
                    a.rules
                        .iter()
                        .find(|r| r.rule == rule)
                        .map_or(0, |r| r.failures)
                };
                // Names: "", NA, null, NaN, nan and NULL are null, one in
                // every ten rows for each (padding changes nothing).
                let date_nulls = failures("not_null:date");
                assert_eq!(failures("not_null:name"), 1800, "{shape}");
                assert!(date_nulls > 0, "{shape}");
                if shape.contains("ranges") {
                    // A date is no number; a null is left to not-null.
                    assert_eq!(failures("range:date") + date_nulls, 3000, "{shape}");
                }
            }
        }
    }

    /// Float columns read by the last cell's shape: cells of that shape in
    /// and out of range, of that length but no decimal, and of other
    /// shapes, all find what line-by-line reading finds.
    #[test]
    fn float_cells_read_by_shape_read_as_line_by_line_reading_does() {
        let cells = [
            "0.1250", "-0.9999", "1.5000", "-1.0000", "1.0000", "0.12a4", "0..123", "2", "-0.5",
            "1.00001", "+0.2500", "9.9999", "-9.9999", ".5000", "1.", "0.1-34",
        ];
        let mut text = String::from("ret,beta\n");
        let (mut out_of_range, mut not_floats) = (0, 0);
        for i in 0..3000usize {
            // Runs of one shape, broken by the others now and then.
            let ret = if i % 9 == 0 {
                cells[(i / 9) % cells.len()]
            } else {
                "0.4321"
            };
            let beta = cells[(i * 7 + 3) % cells.len()];
            match ret.parse::<f64>() {
                Ok(v) if !(-1.0..=1.0).contains(&v) => out_of_range += 1,
                Ok(_) => {}
                Err(_) => out_of_range += 1, // no number is within a range
            }
            not_floats += usize::from(beta.parse::<f64>().is_err());
            text.push_str(&format!("{ret},{beta}\n"));
        }
        let rules: DqSection = serde_yaml_ng::from_str(
            "columns: {ret: float, beta: float}\nranges: {ret: {min: -1.0, max: 1.0}}\n",
        )
        .unwrap();
        let (a, b) = laid_out_and_by_line(&text, &rules);
        assert_eq!(a.rules, b.rules);
        let failures = |rule: &str| a.rules.iter().find(|r| r.rule == rule).map(|r| r.failures);
        assert_eq!(failures("range:ret"), Some(out_of_range as u64));
        assert_eq!(failures("type:beta"), Some(not_floats as u64));
        assert!(out_of_range > 100 && not_floats > 100);
    }

    #[test]
    fn separators_are_found_exactly() {
        let mut seed = 7u64;
        for len in 0..200 {
            let block: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    [b',', b'\n', b'a', 0x2d, 0x0b, 0xac, 0x8a, 0x00][(seed >> 61) as usize]
                })
                .collect();
            let want: Vec<(usize, bool)> = (0..len)
                .filter(|&i| matches!(block[i], b',' | b'\n'))
                .map(|i| (i, block[i] == b'\n'))
                .collect();
            assert_eq!(
                Separators::new(&block).collect::<Vec<_>>(),
                want,
                "{block:?}"
            );
        }
    }

    #[test]
    fn as_of_from_the_command_line_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.csv");
        std::fs::write(&path, GOOD).unwrap();
        let late = parse_date(b"2026-02-01");
        let r = check(&path, "in.csv", &rules(), late).unwrap();
        assert_eq!(r.as_of.as_deref(), Some("2026-02-01"));
        assert_eq!(failed(&r), [("staleness".to_string(), vec![])]);
    }

    /// The report never depends on how the input is split into reads (the
    /// fuzz target `dq_csv` checks this on random input; these are the
    /// inputs it found wrong, and their neighbours).
    /// The report of `bytes` read `chunk` bytes at a time, which must be
    /// the report of the same bytes cut in place into pieces of about
    /// `chunk` bytes, as a mapped file is.
    fn read_and_cut(bytes: &[u8], chunk: usize, threads: Threads, rules: &DqSection) -> Report {
        let cursor = std::io::Cursor::new(bytes.to_vec());
        let read = check_reader(cursor, chunk, threads, "in.csv", rules, None).unwrap();
        let cut = check_bytes(bytes.to_vec(), chunk, threads, "in.csv", rules, None).unwrap();
        assert_eq!(
            cut, read,
            "cut in place, {chunk} bytes a piece, {threads:?}"
        );
        read
    }

    /// `check` maps a regular file and reads anything else: a file and a
    /// pipe with the same bytes give the report of reading them.
    #[test]
    fn a_mapped_file_and_a_pipe_give_the_read_report() {
        let rules = rules();
        let mut text = String::from("date,factor,ret,n\n");
        for i in 0..200_000u64 {
            let day = if i == 150_000 {
                "2025-12-31"
            } else {
                "2026-01-01"
            };
            let ret = if i % 70_001 == 9 { "1.5" } else { "0.25" };
            text.push_str(&format!("{day},f{i},{ret},{i}\n"));
        }
        let want = read_and_cut(text.as_bytes(), CHUNK, Threads::Cores, &rules);
        assert!(!want.passed, "the fixture fails some rules: {want:?}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("in.csv");
        std::fs::write(&file, &text).unwrap();
        assert_eq!(check(&file, "in.csv", &rules, None).unwrap(), want);
        let fifo = dir.path().join("fifo.csv");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let writer = {
            let (fifo, text) = (fifo.clone(), text.clone());
            std::thread::spawn(move || std::fs::write(fifo, text).unwrap())
        };
        assert_eq!(check(&fifo, "in.csv", &rules, None).unwrap(), want);
        writer.join().unwrap();
        // An empty file cannot be mapped; it is read, and fails as such.
        let empty = dir.path().join("empty.csv");
        std::fs::write(&empty, "").unwrap();
        let report = check(&empty, "in.csv", &rules, None).unwrap();
        assert_eq!(report, read_and_cut(b"", CHUNK, Threads::Cores, &rules));
        assert!(!report.passed);
    }

    /// A regular file whose size or modification time moved during the
    /// pass gives an error, not a report.
    #[test]
    fn a_file_changed_while_read_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.csv");
        std::fs::write(&path, GOOD).unwrap();
        let before = std::fs::metadata(&path).unwrap();
        assert!(unchanged(&before, &std::fs::metadata(&path).unwrap()).is_ok());
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut file, b"2026-01-06,mom,0.1,5\n").unwrap();
        let err = unchanged(&before, &std::fs::metadata(&path).unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the file changed while it was read; check it again once nothing writes it"
        );
        // The same size, another modification time.
        let grown = std::fs::metadata(&path).unwrap();
        file.set_modified(grown.modified().unwrap() + std::time::Duration::from_secs(1))
            .unwrap();
        assert!(unchanged(&grown, &std::fs::metadata(&path).unwrap()).is_err());
    }

    #[test]
    fn reading_in_small_pieces_changes_nothing() {
        let rules = rules();
        for text in [
            "date,factor\r\n\"a\"\"b\",c\r\n\u{ff}\u{fe},1\n",
            "date,factor,ret,n\r\n2026-01-01,\"mom\",0.1,1\r\nbad,val,0.2,2\r\n\r\n2026-01-03,x,9,3\r\n",
            "date,factor,ret,n\r\n2026-01-01,mom,0.1,1\r2026-01-02,\"v\r\nal\",0.2,2\r\n",
            "date,factor,ret,n\n2026-01-01,mom,0.1\n",
            "",
            "\"",
            "date,fagto\u{ff}\rr\u{ff}\n\"\u{11}\0\n\u{fe},0\n",
            "date,factor\r\n\n\u{fe}or,ret,n\n2\"a\"\"b\",c\r\n\u{fe},0\n",
            "\n\r\n\ndate,factor\n\n\n\"x\",y,z\n",
            "date,factor\r\r\n\"x\",y,z\r\n",
        ] {
            let at = |chunk: usize, threads: Threads| {
                read_and_cut(text.as_bytes(), chunk, threads, &rules)
            };
            let whole = at(CHUNK, Threads::Inline);
            if text.contains("\"x\",y,z") {
                // The ragged row is on line 7 (after blank lines) or 2 (a
                // lone CR ends a record but not a line, as for `wc -l`).
                let csv = whole.rules.iter().find(|r| r.rule == "csv").unwrap();
                let want = if text.starts_with('\n') { 7 } else { 2 };
                assert_eq!(csv.first_lines, [want], "{text:?}");
            }
            for chunk in 1..=9 {
                for threads in [Threads::Inline, Threads::Cores] {
                    assert_eq!(
                        at(chunk, threads),
                        whole,
                        "{text:?} read {chunk} bytes at a time, {threads:?}"
                    );
                }
            }
        }
    }

    /// The merging thread reads on where the workers stopped (a quote sends
    /// the rest to the csv crate): a date it reads is compared with the
    /// workers' last date, not with the last one it read itself.
    #[test]
    fn after_the_workers_a_date_is_compared_with_their_last() {
        let rules = rules();
        let mut text = String::from("date,factor,ret,n\n");
        for i in 0..300 {
            let day = if i < 100 { "2026-01-01" } else { "2026-01-02" };
            text.push_str(&format!("{day},f{i},0.1,{i}\n"));
        }
        // Back to the first day, in a row only the csv crate reads.
        text.push_str("2026-01-01,\"quoted\",0.1,1\n");
        let at =
            |chunk: usize, threads: Threads| read_and_cut(text.as_bytes(), chunk, threads, &rules);
        let whole = at(text.len() + 1, Threads::Inline);
        let sorted = whole
            .rules
            .iter()
            .find(|r| r.rule == "date_sorted")
            .unwrap();
        assert_eq!(sorted.first_lines, [302], "{whole:?}");
        // Some of these cut a piece just before the quoted row, so that the
        // merging thread reads no other date first.
        for chunk in (16..=200).chain([4_096]) {
            for threads in [Threads::Inline, Threads::Cores] {
                assert_eq!(
                    at(chunk, threads),
                    whole,
                    "{chunk} bytes a read, {threads:?}"
                );
            }
        }
    }

    /// Pieces checked by the workers and merged in file order give the very
    /// report one sequential pass gives, on a file that fails every rule
    /// here and there: duplicate keys far apart, dates that go back or jump
    /// across a seam, nulls, bad numbers, bad UTF-8.
    #[test]
    fn pieces_checked_in_parallel_merge_into_the_sequential_report() {
        let rules = rules();
        let mut text = String::from("date,factor,ret,n\n");
        let mut day = time::macros::date!(2026 - 01 - 01);
        let mut bytes = text.clone().into_bytes();
        for i in 0..40_000u64 {
            if i % 7 == 0 {
                day = day.next_day().unwrap();
            }
            let date = match (i % 9_973, i % 10_007) {
                (_, 3) => "2026-01-02".to_string(), // with f0: line 2's key
                (5, _) => "2025-12-31".to_string(), // goes back
                (6, _) => (day + time::Duration::days(9)).to_string(), // a gap, then back
                (7, _) => "2026-13-01".to_string(),
                _ => day.to_string(),
            };
            let factor = match i % 10_007 {
                3 => "f0".to_string(), // the key of line 2 again, much later
                4 => String::new(),
                _ => format!("f{i}"),
            };
            let ret = match i % 4_001 {
                1 => "1.5".to_string(),
                2 => "x".to_string(),
                3 => "NA".to_string(),
                _ => format!("{:.4}", (i % 200) as f64 / 100.0 - 1.0),
            };
            let line = format!("{date},{factor},{ret},{i}\n");
            bytes.extend_from_slice(line.as_bytes());
            if i % 15_013 == 8 {
                bytes.extend_from_slice(b"2026-02-01,\xff\xfe,0.1,1\n");
            }
        }
        text.clear();
        let check_at =
            |chunk: usize, threads: Threads| read_and_cut(&bytes, chunk, threads, &rules);
        let whole = check_at(bytes.len() + 1, Threads::Inline);
        let failing: Vec<&str> = whole
            .rules
            .iter()
            .filter(|r| !r.passed)
            .map(|r| r.rule.as_str())
            .collect();
        for rule in [
            "csv",
            "type:date",
            "type:ret",
            "not_null:factor",
            "unique_key",
            "range:ret",
            "date_parse",
            "date_sorted",
            "date_gap",
        ] {
            assert!(failing.contains(&rule), "{rule} passed: {whole:?}");
        }
        for chunk in [1, 50, 1 << 12, 100_003, 1 << 20] {
            for threads in [Threads::Inline, Threads::Cores] {
                assert_eq!(
                    check_at(chunk, threads),
                    whole,
                    "read {chunk} bytes at a time, {threads:?}"
                );
            }
        }
    }
}
