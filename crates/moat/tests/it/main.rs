//! Integration tests of `moat`, in one binary (one link instead of one per file).

mod cli_audit;
mod cli_detect;
mod cli_pins;
mod cli_sandbox;
mod cli_scan;
