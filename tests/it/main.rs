//! One integration test binary, a module per area (see ../shared/STYLE.md §5).

mod bad_input;
mod committee;
mod common;
mod concurrency;
mod core;
mod demo;
mod dq;
mod errors;
mod faults;
mod finalize;
mod help;
mod index;
mod intoto;
mod report;
mod schemas;
mod shapes;
mod ssh;
mod supervise;
mod sync;
mod tamper;
mod terminal;
