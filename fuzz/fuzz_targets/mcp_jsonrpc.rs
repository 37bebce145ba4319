//! Fuzz `moat_mcp::Message::parse`: arbitrary bytes under two sets of limits; an accepted
//! message keeps its bytes and survives id remapping (see `fuzz/common/mcp_props.rs`).
#![no_main]

#[path = "../common/mcp_props.rs"]
mod mcp_props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mcp_props::jsonrpc(data);
});
