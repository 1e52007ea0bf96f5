//! Preflight: is this machine and checkout fit for an official run?
//! Pure checks over facts gathered up front, so `run` and a standalone
//! preflight give the same verdict for the same facts.

use std::path::Path;

use crate::config::PreflightSection;
use crate::record::kinds::{Check, GitFacts, HostFacts};

const GIB: u64 = 1 << 30;

/// Reads the machine's cores, memory, hostname and free disk at `dir`.
pub fn host_facts(dir: &Path) -> HostFacts {
    HostFacts {
        hostname: crate::proc::hostname(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
        memory_bytes: memory_bytes().unwrap_or(0),
        disk_free_bytes: disk_free_bytes(dir).unwrap_or(0),
    }
}

/// The checks, in a fixed order. All must pass for the run to start.
pub fn checks(
    limits: &PreflightSection,
    host: &HostFacts,
    git: &GitFacts,
    require_clean: bool,
    pinned_commit: Option<&str>,
) -> Vec<Check> {
    let mut out = vec![
        Check {
            id: "cores".into(),
            passed: host.cores >= limits.min_cores,
            observed: host.cores.to_string(),
            required: format!(">= {}", limits.min_cores),
        },
        Check {
            id: "memory".into(),
            passed: host.memory_bytes >= limits.min_memory_gb.saturating_mul(GIB),
            observed: gib(host.memory_bytes),
            required: format!(">= {} GiB", limits.min_memory_gb),
        },
        Check {
            id: "disk".into(),
            passed: host.disk_free_bytes >= limits.min_free_disk_gb.saturating_mul(GIB),
            observed: format!("{} free", gib(host.disk_free_bytes)),
            required: format!(">= {} GiB free", limits.min_free_disk_gb),
        },
    ];
    if require_clean {
        out.push(Check {
            id: "clean_tree".into(),
            passed: git.dirty == Some(false),
            observed: match git.dirty {
                Some(true) => "tracked files differ from HEAD".into(),
                Some(false) => "clean".into(),
                None => "unknown (status unreadable)".into(),
            },
            required: "clean (--require-clean)".into(),
        });
    }
    if let Some(pinned) = pinned_commit {
        let head = git.commit.as_deref().unwrap_or("(no commit)");
        out.push(Check {
            id: "freeze_commit".into(),
            passed: git.commit.as_deref().is_some_and(|c| c.starts_with(pinned)),
            observed: format!("freeze file pins commit {pinned}, HEAD is {head}"),
            required: "HEAD starts with the commit the freeze file's name pins".into(),
        });
    }
    out
}

/// `15.6 GiB`, from integers only, so the text never depends on float formatting.
pub fn gib(bytes: u64) -> String {
    let tenths = (u128::from(bytes) * 10 + u128::from(GIB) / 2) / u128::from(GIB);
    format!("{}.{} GiB", tenths / 10, tenths % 10)
}

fn memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn disk_free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `stat` is a valid out-pointer.
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut stat) };
    (rc == 0).then(|| stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_compare_against_limits() {
        let host = HostFacts {
            hostname: "h".into(),
            cores: 2,
            memory_bytes: 24 * GIB,
            disk_free_bytes: 50 * GIB,
        };
        let git = GitFacts {
            branch: Some("main".into()),
            commit: None,
            dirty: Some(true),
        };
        let limits = PreflightSection {
            min_cores: 8,
            min_memory_gb: 16,
            min_free_disk_gb: 0,
        };
        let c = checks(&limits, &host, &git, true, None);
        let verdicts: Vec<_> = c.iter().map(|c| (c.id.as_str(), c.passed)).collect();
        assert_eq!(
            verdicts,
            [
                ("cores", false),
                ("memory", true),
                ("disk", true),
                ("clean_tree", false)
            ]
        );
        assert_eq!(c[1].observed, "24.0 GiB");
        let git = GitFacts {
            commit: Some("1a2b3c4d5e".into()),
            ..git
        };
        let pinned = |hex| {
            checks(&limits, &host, &git, false, Some(hex))
                .pop()
                .unwrap()
        };
        assert!(pinned("1a2b3c4").passed);
        assert!(!pinned("9999999").passed);
        assert_eq!(
            pinned("9999999").observed,
            "freeze file pins commit 9999999, HEAD is 1a2b3c4d5e"
        );
        assert_eq!(gib(GIB + GIB / 10), "1.1 GiB");
        assert_eq!(gib(GIB + GIB / 20 + 1), "1.1 GiB", "halves round up");
    }
}
