//! Progress of long commands on stderr, for people at a terminal only.
//!
//! The CLI turns it on ([`enable`]) when stderr is a terminal; everywhere
//! else [`begin`] and [`inc`] cost one atomic load and draw nothing, so
//! scripts, pipes and tests see exactly the output they always did.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static ENABLED: AtomicBool = AtomicBool::new(false);
static BAR: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

/// Lets [`begin`] draw on stderr from now on.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// A phase of `len` steps, shown as `label pos/len` with a bar until the
/// returned guard drops (then the line is cleared).
pub fn begin(label: &str, len: usize) -> Phase {
    start(label, len as u64, "{msg} {pos}/{len} [{bar:30}] {elapsed}")
}

/// A phase of `len` bytes, shown as `label 1.50 GiB/4.00 GiB` with a bar.
pub fn begin_bytes(label: &str, len: u64) -> Phase {
    start(
        label,
        len,
        "{msg} {bytes}/{total_bytes} [{bar:30}] {elapsed}",
    )
}

fn start(label: &str, len: u64, template: &str) -> Phase {
    if !ENABLED.load(Ordering::Relaxed) {
        return Phase { on: false };
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label.to_string());
    *BAR.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar);
    Phase { on: true }
}

/// Advances the current phase by `n` steps (any thread).
pub fn inc(n: u64) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    if let Some(bar) = BAR.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        bar.inc(n);
    }
}

/// Ends its phase when dropped.
pub struct Phase {
    on: bool,
}

impl Drop for Phase {
    fn drop(&mut self) {
        if self.on {
            if let Some(bar) = BAR.lock().unwrap_or_else(|e| e.into_inner()).take() {
                bar.finish_and_clear();
            }
        }
    }
}
