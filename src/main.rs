//! The `ledger` binary: everything lives in the library; this only hands over.

// Reading a large ledger allocates and frees millions of small buffers
// (payloads, JSON values); mimalloc does that far faster than glibc malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // Large (2 MiB) OS pages where the kernel allows them, and freed memory
    // kept until exit instead of handed back to the OS: reading a 10,000-run
    // ledger otherwise spends a third of its time faulting in fresh pages.
    // libmimalloc-sys names no constant for `mi_option_purge_delay`; it is 15
    // in both mimalloc.h versions it vendors (v2 and v3).
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: mi_option_set only stores the option; nothing runs concurrently yet.
    unsafe {
        libmimalloc_sys::mi_option_set(libmimalloc_sys::mi_option_large_os_pages, 1);
        libmimalloc_sys::mi_option_set(PURGE_DELAY, -1);
    }
    std::process::exit(ledger::cli::main());
}
