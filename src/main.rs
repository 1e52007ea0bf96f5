//! The `ledger` binary: everything lives in the library; this only hands over.

fn main() {
    std::process::exit(ledger::cli::main());
}
