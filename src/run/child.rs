//! Runs the child with stdout and stderr on one pipe, and streams that pipe to
//! the run log and the terminal while hashing it: never the whole log in memory.
//!
//! The pipe is enlarged to 1 MiB so that a chatty child costs few wakeups; each
//! chunk is hashed once (SHA-256, SHA-NI where the CPU has it), written to the
//! log file, and copied to the terminal. If the terminal goes away the run goes
//! on and the log stays complete.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::record::canon::hex;

const CHUNK: usize = 1 << 20;
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

struct Sink {
    log: File,
    hasher: Sha256,
    bytes: u64,
    lines: u64,
    tail: Vec<u8>,
    terminal: Option<File>,
}

impl Sink {
    fn take(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.hasher.update(chunk);
        self.bytes += chunk.len() as u64;
        self.lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        let keep = chunk.len().min(TAIL_BYTES);
        self.tail.extend_from_slice(&chunk[chunk.len() - keep..]);
        if self.tail.len() > 2 * TAIL_BYTES {
            self.tail.drain(..self.tail.len() - TAIL_BYTES);
        }
        self.log.write_all(chunk)?;
        if let Some(t) = &mut self.terminal {
            if t.write_all(chunk).is_err() {
                self.terminal = None;
            }
        }
        Ok(())
    }

    fn tail_lines(&self, n: usize) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.tail);
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
        if self.bytes == 0 {
            lines.clear();
        }
        lines.reverse();
        lines
    }
}

/// Spawns `argv` and streams its output to `log_path` (created new) and to
/// this process's stdout when `echo` is set.
pub fn execute(
    argv: &[String],
    env: &[(String, String)],
    cwd: &Path,
    log_path: &Path,
    echo: bool,
    tail_lines: usize,
) -> io::Result<Exec> {
    let log = File::options()
        .write(true)
        .create_new(true)
        .open(log_path)?;
    let terminal = if echo {
        // A second handle on fd 1, unbuffered: chunks go out whole.
        Some(File::from(io::stdout().as_fd_owned()?))
    } else {
        None
    };
    let mut sink = Sink {
        log,
        hasher: Sha256::new(),
        bytes: 0,
        lines: 0,
        tail: Vec::new(),
        terminal,
    };
    let (reader, writer) = pipe()?;
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::inherit())
        .stdout(Stdio::from(writer.try_clone()?))
        .stderr(Stdio::from(writer));
    // SAFETY: only async-signal-safe calls (signal) between fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGQUIT, libc::SIG_DFL);
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            drop(command);
            let code = if e.kind() == io::ErrorKind::PermissionDenied {
                126
            } else {
                127
            };
            let message = format!("ledger: cannot start {:?}: {e}\n", argv[0]);
            sink.take(message.as_bytes())?;
            return Ok(finish(sink, Some(code), None, started, tail_lines));
        }
    };
    drop(command); // closes our copies of the pipe's write end
                   // While the child runs, a terminal Ctrl-C is the child's to handle; we
                   // record how it ended. (The child's own handlers were reset above.)
    let _guard = IgnoreInterrupts::new();
    let mut reader = File::from(reader);
    let mut buf = vec![0u8; CHUNK];
    let mut exited = None;
    loop {
        if exited.is_none() && !readable(&reader, 200)? {
            exited = child.try_wait()?;
            if exited.is_none() {
                continue;
            }
            // The child is gone but something it started may hold the pipe:
            // take what is there now and stop.
            set_nonblocking(&reader)?;
        }
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => sink.take(&buf[..n])?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    let status = match exited {
        Some(s) => s,
        None => child.wait()?,
    };
    sink.log.sync_data()?;
    Ok(finish(
        sink,
        status.code(),
        status.signal(),
        started,
        tail_lines,
    ))
}

fn finish(
    sink: Sink,
    exit_code: Option<i32>,
    signal: Option<i32>,
    started: Instant,
    tail_lines: usize,
) -> Exec {
    Exec {
        exit_code,
        signal,
        duration: started.elapsed(),
        tail: sink.tail_lines(tail_lines),
        sha256: hex(&sink.hasher.finalize()),
        bytes: sink.bytes,
        lines: sink.lines,
    }
}

trait StdoutFd {
    fn as_fd_owned(&self) -> io::Result<OwnedFd>;
}

impl StdoutFd for io::Stdout {
    fn as_fd_owned(&self) -> io::Result<OwnedFd> {
        use std::os::fd::AsFd;
        self.as_fd().try_clone_to_owned()
    }
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both are fresh descriptors we now own.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // A bigger pipe means fewer wakeups; the kernel may refuse, which is fine.
    // SAFETY: plain fcntl on a descriptor we own.
    unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, CHUNK as libc::c_int) };
    Ok((r, w))
}

fn readable(file: &File, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: file.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    match unsafe { libc::poll(&mut pfd, 1, timeout_ms) } {
        -1 => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
        0 => Ok(false),
        _ => Ok(true),
    }
}

fn set_nonblocking(file: &File) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
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
