//! Fuzz `moat_mcp::sse::Decoder::feed` with arbitrary chunking: the first byte says how many
//! of the next bytes are chunk sizes, the rest is the stream. Chunked and whole feeds must
//! agree (see `fuzz/common/mcp_props.rs`).
#![no_main]

#[path = "../common/mcp_props.rs"]
mod mcp_props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let n = usize::from(n % 16).min(rest.len());
    let (cuts, stream) = rest.split_at(n);
    let _ = mcp_props::sse(stream, cuts);
});
