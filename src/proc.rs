//! Facts about processes on this machine (Linux `/proc`), for supervising a
//! run and for telling a run that is still going from one whose supervisor
//! died. A pid alone can be reused; a pid with its start time and the boot id
//! cannot.

use std::path::Path;

use crate::record::kinds::Process;

/// This machine as a run's `started` record names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Here {
    pub hostname: String,
    pub boot_id: Option<String>,
}

impl Here {
    pub fn read() -> Here {
        Here {
            hostname: hostname(),
            boot_id: boot_id(),
        }
    }
}

/// Whether the process that supervised a run is still there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Gone,
    /// Another machine's process: nothing can be said from here.
    Unknown,
}

/// Is `pid` (started at `start`, in clock ticks after boot `boot`) on `host` alive?
pub fn liveness(
    here: &Here,
    host: &str,
    boot: Option<&str>,
    pid: u32,
    start: Option<u64>,
) -> Liveness {
    if host != here.hostname {
        return Liveness::Unknown;
    }
    match (boot, here.boot_id.as_deref()) {
        (Some(then), Some(now)) if then != now => return Liveness::Gone, // rebooted since
        _ => {}
    }
    match (start_time(pid), start) {
        (None, _) => Liveness::Gone,
        (Some(now), Some(then)) if now != then => Liveness::Gone, // pid reused
        _ => Liveness::Alive,
    }
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; we stop at the first NUL.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The kernel's id of this boot.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

/// Fields of `/proc/<pid>/stat` after the command name: state is index 0,
/// ppid 1, pgrp 2, … starttime 19.
fn stat_fields(pid: u32) -> Option<(String, Vec<String>)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let rest = text
        .get(close + 1..)?
        .split_whitespace()
        .map(str::to_string)
        .collect();
    Some((comm, rest))
}

/// When `pid` started, in clock ticks after boot; `None` if there is no such process.
pub fn start_time(pid: u32) -> Option<u64> {
    let (_, fields) = stat_fields(pid)?;
    fields.get(19)?.parse().ok()
}

/// Live (not zombie) processes whose process group is `pgid`, by pid.
pub fn group_members(pgid: u32) -> Vec<Process> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Some((comm, fields)) = stat_fields(pid) else {
            continue;
        };
        let in_group = fields.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid);
        if in_group && fields.first().map(String::as_str) != Some("Z") {
            out.push(Process {
                pid,
                command: cmdline(&entry.path()).unwrap_or(comm),
            });
        }
    }
    out.sort_by_key(|m| m.pid);
    out
}

/// Whether any process on this machine has `path` open. `None` when that
/// cannot be known: some process's descriptors are not readable to us.
pub fn open_by_any_process(path: &Path) -> Option<bool> {
    let target = std::fs::canonicalize(path).ok()?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        if !entry
            .file_name()
            .to_str()
            .is_some_and(|s| s.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        let fds = match std::fs::read_dir(entry.path().join("fd")) {
            Ok(fds) => fds,
            // Exited meanwhile (ENOENT, or ESRCH while it was exiting).
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::ESRCH) =>
            {
                continue
            }
            Err(_) => return None,
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l == target) {
                return Some(true);
            }
        }
    }
    Some(false)
}

fn cmdline(proc_dir: &Path) -> Option<String> {
    let raw = std::fs::read(proc_dir.join("cmdline")).ok()?;
    let words: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|w| !w.is_empty())
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let here = Here::read();
        let me = std::process::id();
        let start = start_time(me);
        assert!(start.is_some());
        assert_eq!(
            liveness(&here, &here.hostname, here.boot_id.as_deref(), me, start),
            Liveness::Alive
        );
        assert_eq!(
            liveness(
                &here,
                &here.hostname,
                here.boot_id.as_deref(),
                me,
                start.map(|s| s + 1)
            ),
            Liveness::Gone
        );
        assert_eq!(
            liveness(&here, &here.hostname, Some("another-boot"), me, start),
            Liveness::Gone
        );
        assert_eq!(
            liveness(&here, "another-host", None, me, start),
            Liveness::Unknown
        );
        assert_eq!(
            liveness(&here, &here.hostname, None, u32::MAX - 1, None),
            Liveness::Gone
        );
    }

    #[test]
    fn open_files_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("held.lock");
        let file = std::fs::File::create(&path).unwrap();
        assert_eq!(open_by_any_process(&path), Some(true));
        drop(file);
        assert_eq!(open_by_any_process(&path), Some(false));
    }

    #[test]
    fn group_members_lists_a_sleeping_child() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .process_group(0)
            .spawn()
            .unwrap();
        // Right after spawn the exec may not have happened yet.
        let mut members = group_members(child.id());
        for _ in 0..200 {
            if members.first().is_some_and(|m| m.command == "sleep 5") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            members = group_members(child.id());
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(members.len(), 1, "{members:?}");
        assert_eq!(members[0].command, "sleep 5");
    }
}
