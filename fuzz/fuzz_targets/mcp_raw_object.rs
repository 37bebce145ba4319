//! Fuzz `moat_mcp::raw::object_entries` and `with_member`: any JSON value; for an object,
//! setting a member keeps every other member's bytes (see `fuzz/common/mcp_props.rs`).
#![no_main]

#[path = "../common/mcp_props.rs"]
mod mcp_props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mcp_props::raw_object(data);
});
