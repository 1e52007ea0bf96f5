//! Runs the child with stdout and stderr on the run log itself, and follows
//! that file as it grows: every byte is hashed, counted and echoed to the
//! terminal, and never the whole log is in memory.
//!
//! Writing straight to the file costs the child exactly what `> run.log` costs;
//! reading it back from the page cache and hashing (SHA-256, SHA-NI where the
//! CPU has it) happens here, on the other core. stdout and stderr share one
//! append-only file description, so their order is kept. Should the child
//! truncate or rewrite its output, the file is hashed again from the start at
//! the end, so the recorded digest always describes the file on disk.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

use crate::record::canon::hex;

const CHUNK: usize = 1 << 20;
/// How long to wait at the end of the log before looking again: short at
/// first, so the terminal sees output promptly, longer while the child is quiet.
const IDLE_MIN: Duration = Duration::from_millis(1);
const IDLE_MAX: Duration = Duration::from_millis(25);
const TAIL_BYTES: usize = 64 * 1024;
const TAIL_LINE_CHARS: usize = 1000;

/// How the child ended and what it printed.
#[derive(Debug)]
pub struct Exec {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub duration: Duration,
    pub sha256: String,
    pub bytes: u64,
    pub lines: u64,
    pub tail: Vec<String>,
}

impl Exec {
    /// The shell convention: the exit code, or 128 + signal.
    pub fn code(&self) -> i32 {
        match (self.exit_code, self.signal) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => 1,
        }
    }
}

/// Line count and last bytes of the stream, kept on the writer thread.
#[derive(Default)]
struct Tail {
    lines: u64,
    bytes: Vec<u8>,
}

impl Tail {
    fn take(&mut self, chunk: &[u8]) {
        self.lines += bytecount::count(chunk, b'\n') as u64;
        let keep = chunk.len().min(TAIL_BYTES);
        self.bytes.extend_from_slice(&chunk[chunk.len() - keep..]);
        if self.bytes.len() > 2 * TAIL_BYTES {
            self.bytes.drain(..self.bytes.len() - TAIL_BYTES);
        }
    }

    fn lines(&self, n: usize) -> Vec<String> {
        if self.bytes.is_empty() {
            return Vec::new();
        }
        let text = String::from_utf8_lossy(&self.bytes);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let mut lines: Vec<String> = text
            .rsplit('\n')
            .take(n)
            .map(|l| {
                l.trim_end_matches('\r')
                    .chars()
                    .take(TAIL_LINE_CHARS)
                    .collect()
            })
            .collect();
        lines.reverse();
        lines
    }
}

/// Spawns `argv` with its output on `log_path` (created new) and follows the
/// file, echoing to this process's stdout when `echo` is set.
pub fn execute(
    argv: &[String],
    env: &[(String, String)],
    cwd: &Path,
    log_path: &Path,
    echo: bool,
    tail_lines: usize,
) -> io::Result<Exec> {
    let log = File::options()
        .append(true)
        .create_new(true)
        .open(log_path)?;
    let mut reader = File::open(log_path)?;
    let mut terminal = if echo {
        // A second handle on fd 1, unbuffered: chunks go out whole.
        Some(File::from(io::stdout().as_fd().try_clone_to_owned()?))
    } else {
        None
    };
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::inherit())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log));
    // SAFETY: only async-signal-safe calls (signal) between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGQUIT, libc::SIG_DFL);
            Ok(())
        });
    }
    let started = Instant::now();
    let spawned = command.spawn();
    drop(command); // closes our handles on the log's write side
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let code = if e.kind() == io::ErrorKind::PermissionDenied {
                126
            } else {
                127
            };
            let message = format!("ledger: cannot start {:?}: {e}\n", argv[0]);
            File::options()
                .append(true)
                .open(log_path)?
                .write_all(message.as_bytes())?;
            let follow = follow(&mut reader, &mut terminal, None)?;
            return Ok(finish(follow, Some(code), None, started, tail_lines));
        }
    };
    // While the child runs, a terminal Ctrl-C is the child's to handle; we
    // record how it ended. (The child's own handlers were reset above.)
    let _guard = IgnoreInterrupts::new();
    let (done_tx, done_rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        let _ = done_tx.send(());
        status
    });
    let mut followed = follow(&mut reader, &mut terminal, Some(&done_rx))?;
    let status = waiter
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("waiting for the command panicked")))?;
    let size = std::fs::metadata(log_path)?.len();
    if size != followed.bytes {
        // The child truncated or rewrote its output: describe the file as it is.
        let mut again = File::open(log_path)?;
        followed = follow(&mut again, &mut None, None)?;
    }
    Ok(finish(
        followed,
        status.code(),
        status.signal(),
        started,
        tail_lines,
    ))
}

/// What following the log saw.
struct Followed {
    hasher: Sha256,
    bytes: u64,
    tail: Tail,
}

/// Reads `file` to its end, again and again until `done` fires (or at once
/// when there is no `done`), then once more to take the last bytes.
fn follow(
    file: &mut File,
    terminal: &mut Option<File>,
    done: Option<&mpsc::Receiver<()>>,
) -> io::Result<Followed> {
    let mut seen = Followed {
        hasher: Sha256::new(),
        bytes: 0,
        tail: Tail::default(),
    };
    let mut buf = vec![0u8; CHUNK];
    let mut finished = done.is_none();
    let mut idle = IDLE_MIN;
    loop {
        let n = match file.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n > 0 {
            let chunk = &buf[..n];
            seen.hasher.update(chunk);
            seen.bytes += n as u64;
            seen.tail.take(chunk);
            if let Some(t) = terminal {
                if t.write_all(chunk).is_err() {
                    *terminal = None; // the terminal went away; the log goes on
                }
            }
            idle = IDLE_MIN;
            continue;
        }
        if finished {
            return Ok(seen);
        }
        // At the end of what is written so far: wait for more, or for the exit.
        match done.map(|rx| rx.recv_timeout(idle)) {
            Some(Err(mpsc::RecvTimeoutError::Timeout)) => idle = (idle * 2).min(IDLE_MAX),
            _ => finished = true, // exited: one more pass takes the rest
        }
    }
}

fn finish(
    followed: Followed,
    exit_code: Option<i32>,
    signal: Option<i32>,
    started: Instant,
    tail_lines: usize,
) -> Exec {
    Exec {
        exit_code,
        signal,
        duration: started.elapsed(),
        sha256: hex(&followed.hasher.finalize()),
        bytes: followed.bytes,
        lines: followed.tail.lines,
        tail: followed.tail.lines(tail_lines),
    }
}

/// Ignores SIGINT and SIGQUIT in this process until dropped.
struct IgnoreInterrupts {
    int: libc::sighandler_t,
    quit: libc::sighandler_t,
}

impl IgnoreInterrupts {
    fn new() -> Self {
        // SAFETY: installing SIG_IGN is always sound.
        unsafe {
            IgnoreInterrupts {
                int: libc::signal(libc::SIGINT, libc::SIG_IGN),
                quit: libc::signal(libc::SIGQUIT, libc::SIG_IGN),
            }
        }
    }
}

impl Drop for IgnoreInterrupts {
    fn drop(&mut self) {
        // SAFETY: restores the dispositions saved in `new`.
        unsafe {
            libc::signal(libc::SIGINT, self.int);
            libc::signal(libc::SIGQUIT, self.quit);
        }
    }
}
