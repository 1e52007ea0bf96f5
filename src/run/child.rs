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
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

use crate::record::canon::hex;
use crate::record::kinds::Process;

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
    /// Processes left in the command's group when it ended (since terminated).
    pub leftovers: Vec<Process>,
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
    // The command gets a process group of its own, so that everything it
    // starts can be signalled and found afterwards. On an interactive terminal
    // that group becomes the foreground, as a shell would do, so the command
    // can read the terminal and gets Ctrl-C itself.
    command.process_group(0);
    let foreground = terminal_is_ours();
    if foreground {
        // SAFETY: between fork and exec only async-signal-safe calls:
        // signal, tcsetpgrp, getpid.
        unsafe {
            command.pre_exec(|| {
                let old = libc::signal(libc::SIGTTOU, libc::SIG_IGN);
                libc::tcsetpgrp(libc::STDIN_FILENO, libc::getpid());
                libc::signal(libc::SIGTTOU, old);
                Ok(())
            });
        }
    }
    let forwarding = Forwarding::install();
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
            return Ok(finish(
                follow,
                Some(code),
                None,
                started,
                tail_lines,
                Vec::new(),
            ));
        }
    };
    let pgid = child.id();
    let _terminal = foreground.then(|| Foreground::hand_to(pgid));
    forwarding.target(pgid);
    let (done_tx, done_rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        // What the command left behind is listed, then ended, before the
        // log is read for the last time.
        let leftovers = crate::proc::group_members(pgid);
        if !leftovers.is_empty() {
            terminate_group(pgid);
        }
        let _ = done_tx.send(());
        status.map(|s| (s, leftovers))
    });
    let mut followed = follow(&mut reader, &mut terminal, Some(&done_rx))?;
    let (status, leftovers) = waiter
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
        leftovers,
    ))
}

/// Digest, size, lines and tail of everything `reader` yields.
pub fn digest(reader: &mut impl Read, tail_lines: usize) -> io::Result<Exec> {
    let started = Instant::now();
    let followed = follow(reader, &mut None, None)?;
    Ok(finish(
        followed,
        None,
        None,
        started,
        tail_lines,
        Vec::new(),
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
    file: &mut impl Read,
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
    leftovers: Vec<Process>,
) -> Exec {
    Exec {
        leftovers,
        exit_code,
        signal,
        duration: started.elapsed(),
        sha256: hex(&followed.hasher.finalize()),
        bytes: followed.bytes,
        lines: followed.tail.lines,
        tail: followed.tail.lines(tail_lines),
    }
}

/// The process group that SIGINT, SIGTERM and SIGHUP sent to ledger go to.
static FORWARD_TO: AtomicI32 = AtomicI32::new(0);
/// A signal that came before the command's group existed, delivered once it does.
static PENDING: AtomicI32 = AtomicI32::new(0);
const FORWARDED: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

extern "C" fn forward(signal: libc::c_int) {
    let pgid = FORWARD_TO.load(Ordering::SeqCst);
    if pgid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(-pgid, signal) };
    } else {
        PENDING.store(signal, Ordering::SeqCst);
    }
}

/// Forwards SIGINT, SIGTERM and SIGHUP to the command's process group while
/// it runs, so that ledger outlives the command and records how it ended.
struct Forwarding {
    old: Vec<(libc::c_int, libc::sigaction)>,
}

impl Forwarding {
    /// Installed before the command starts, so no signal can slip between.
    fn install() -> Forwarding {
        FORWARD_TO.store(0, Ordering::SeqCst);
        PENDING.store(0, Ordering::SeqCst);
        let mut old = Vec::new();
        for signal in FORWARDED {
            // SAFETY: a zeroed sigaction is a valid starting value; the handler
            // only calls async-signal-safe functions.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = forward as *const () as libc::sighandler_t;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                let mut previous: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(signal, &action, &mut previous) == 0 {
                    old.push((signal, previous));
                }
            }
        }
        Forwarding { old }
    }

    /// From now on signals go to `pgid`, starting with any that came early.
    fn target(&self, pgid: u32) {
        FORWARD_TO.store(pgid as i32, Ordering::SeqCst);
        let early = PENDING.swap(0, Ordering::SeqCst);
        if early != 0 {
            // SAFETY: kill on the process group we just created.
            unsafe { libc::kill(-(pgid as libc::pid_t), early) };
        }
    }
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        for (signal, previous) in &self.old {
            // SAFETY: restores the action saved by `install`.
            unsafe { libc::sigaction(*signal, previous, std::ptr::null_mut()) };
        }
        FORWARD_TO.store(0, Ordering::SeqCst);
    }
}

/// Whether stdin is a terminal whose foreground process group is ours.
fn terminal_is_ours() -> bool {
    // SAFETY: plain queries on fd 0 and our own process group.
    unsafe {
        libc::isatty(libc::STDIN_FILENO) == 1
            && libc::tcgetpgrp(libc::STDIN_FILENO) == libc::getpgrp()
    }
}

/// Makes the command's group the terminal's foreground; gives it back on drop.
struct Foreground;

impl Foreground {
    fn hand_to(pgid: u32) -> Foreground {
        set_foreground(pgid as libc::pid_t);
        Foreground
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        // SAFETY: getpgrp has no preconditions.
        set_foreground(unsafe { libc::getpgrp() });
    }
}

fn set_foreground(pgid: libc::pid_t) {
    // SAFETY: SIGTTOU is ignored around tcsetpgrp, which a background group
    // may then call; both calls are plain syscalls.
    unsafe {
        let old = libc::signal(libc::SIGTTOU, libc::SIG_IGN);
        libc::tcsetpgrp(libc::STDIN_FILENO, pgid);
        libc::signal(libc::SIGTTOU, old);
    }
}

/// Ends what is left of a process group: SIGTERM, up to 2 s of grace, then SIGKILL.
fn terminate_group(pgid: u32) {
    let group = -(pgid as libc::pid_t);
    // SAFETY: kill on a process group id we created.
    unsafe { libc::kill(group, libc::SIGTERM) };
    for _ in 0..40 {
        if crate::proc::group_members(pgid).is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: as above.
    unsafe { libc::kill(group, libc::SIGKILL) };
}
