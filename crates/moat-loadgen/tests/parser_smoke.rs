//! A bounded, deterministic stand-in for the cargo-fuzz targets of `moat-mcp`'s parsers
//! (`fuzz/fuzz_targets/mcp_*.rs`), for CI on a stable toolchain: 100,000 seeded inputs, random
//! and mutated from a corpus of real messages and event streams, through the same property
//! checks the fuzz targets run (`fuzz/common/mcp_props.rs`). A failure prints the seed and the
//! input; turn it into a named regression test below.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

#[path = "../../../fuzz/common/mcp_props.rs"]
mod mcp_props;

const SEED: u64 = 0x6d6f_6174_2d66_757a;
const ITERATIONS: usize = 100_000;

/// splitmix64: small, seeded, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const JSON_CORPUS: &[&str] = &[
    r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}"#,
    r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    r#"{"jsonrpc":"2.0","id":"a-7","method":"tools/call","params":{"name":"echo","arguments":{"text":"h\u00e9llo \"q\" \\ [x]"},"_meta":{"progressToken":3}}}"#,
    r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"ok"}],"isError":false}}"#,
    r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}"#,
    r#"{"jsonrpc":"2.0","id":-12,"error":{"code":-32601,"message":"no","data":[1,2,{"a":null}]}}"#,
    r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":0.5},"extra":[true,false]}"#,
    r#"{"id":1,"jsonrpc":"2.0","method":"ping","x":{},"y":"z"}"#,
    r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
    r#"{"a":{"b":{"c":{"d":{"e":[[[[1]]]]}}}},"k":"v","k":"w"}"#,
    r#"  {"name" : "a__echo" , "arguments" : { } , "\u006eame" : 1 }  "#,
    "3.5e10",
    "\"a string\"",
];

const SSE_CORPUS: &[&str] = &[
    "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n",
    "id: 0\ndata:\n\n",
    "\u{feff}: comment\r\nid: 1\r\ndata: a\r\n\r\ndata:b\rdata: c\r\rdata: d\n\n",
    "retry: 1000\nid: x\0y\ndata: one\ndata: two\n\nevent: e\ndata\n\n",
    "data: {\"a\":\n data: 1}\n\n: keep-alive\n\n",
];

const INTERESTING: &[u8] = b"{}[]\":,\\ \r\n0123456789-+.eE\0abtnru\xff\xc3\xa9\xef\xbb\xbf";

fn mutate(rng: &mut Rng, base: &[u8], corpus: &[&str]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..=rng.below(4) {
        let len = v.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(len + 1);
                v.insert(i, *rng.pick(INTERESTING));
            }
            2 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(8)).min(len);
                v.drain(a..b);
            }
            3 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(16)).min(len);
                let piece = v[a..b].to_vec();
                let at = rng.below(len + 1);
                v.splice(at..at, piece);
            }
            4 => {
                let other = rng.pick(corpus).as_bytes();
                let cut = rng.below(v.len() + 1);
                let from = rng.below(other.len() + 1);
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            5 if len > 0 => v.truncate(rng.below(len)),
            6 if len > 0 => {
                let i = rng.below(len);
                v[i] = *rng.pick(INTERESTING);
            }
            _ => {
                let depth = 1 + rng.below(200);
                let i = rng.below(len + 1);
                let open = if rng.below(2) == 0 { b'[' } else { b'{' };
                v.splice(i..i, std::iter::repeat_n(open, depth));
            }
        }
    }
    v
}

fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(64);
    (0..len).map(|_| if rng.below(2) == 0 { *rng.pick(INTERESTING) } else { rng.next() as u8 }).collect()
}

#[test]
fn parsers_hold_their_properties_on_100k_seeded_inputs() {
    let mut rng = Rng(SEED);
    // How often each parser reached its interesting path, so that a generator that only
    // makes garbage cannot pass unnoticed.
    let (mut messages, mut events, mut objects) = (0usize, 0usize, 0usize);
    for i in 0..ITERATIONS {
        let which = i % 3;
        let corpus = if which == 1 { SSE_CORPUS } else { JSON_CORPUS };
        let input = if rng.below(10) == 0 {
            random_bytes(&mut rng)
        } else {
            let base = rng.pick(corpus).as_bytes();
            mutate(&mut rng, base, corpus)
        };
        let cuts: Vec<u8> = (0..rng.below(6)).map(|_| 1 + rng.below(9) as u8).collect();
        let run = std::panic::catch_unwind(|| match which {
            0 => usize::from(mcp_props::jsonrpc(&input)),
            1 => mcp_props::sse(&input, &cuts),
            _ => usize::from(mcp_props::raw_object(&input)),
        });
        match (which, &run) {
            (0, Ok(n)) => messages += n,
            (1, Ok(n)) => events += n,
            (_, Ok(n)) => objects += n,
            _ => {}
        }
        if run.is_err() {
            panic!(
                "iteration {i} (seed {SEED:#x}) failed on {:?} (cuts {cuts:?}): {:?}",
                ["jsonrpc", "sse", "raw_object"][which],
                String::from_utf8_lossy(&input)
            );
        }
    }
    println!("accepted messages: {messages}, decoded events: {events}, objects edited: {objects}");
    let third = ITERATIONS / 3;
    assert!(messages > third / 50, "only {messages} of {third} JSON-RPC inputs parsed");
    assert!(events > third / 20, "only {events} events from {third} streams");
    assert!(objects > third / 20, "only {objects} of {third} JSON inputs were objects");
}

#[test]
fn the_unmutated_corpus_holds_too() {
    let accepted = JSON_CORPUS.iter().filter(|s| mcp_props::jsonrpc(s.as_bytes())).count();
    assert_eq!(accepted, 8, "the eight well-formed messages of the corpus parse");
    for s in JSON_CORPUS {
        mcp_props::raw_object(s.as_bytes());
    }
    // Events per stream, whatever the chunk size (the priming-only stream has none).
    for (s, expected) in SSE_CORPUS.iter().zip([1, 0, 3, 1, 1]) {
        for cut in 1..=s.len() {
            assert_eq!(mcp_props::sse(s.as_bytes(), &[cut as u8]), expected, "events in {s:?}");
        }
    }
}

/// Found by `fuzz/fuzz_targets/mcp_raw_object.rs`: a member whose value is a number too large for
/// `f64` is valid JSON and must survive `with_member` byte for byte.
#[test]
fn regression_huge_number_survives_with_member() {
    let input =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/regressions/mcp_raw_object-huge-number.json"))
            .unwrap();
    assert!(mcp_props::raw_object(&input));
}

/// Found by `fuzz/fuzz_targets/mcp_raw_object.rs` (fuzz/regressions/mcp_raw_object-lone-surrogate-key.json):
/// `Message::parse` accepts a message whose `params` hold an unpaired surrogate escape, because it
/// keeps `params` as raw JSON, but nothing can then read those params as a JSON value:
/// `params_as` returns `None`. The gateway's argument guard reads `params.arguments` that way and
/// falls back to `{}` (moat-gateway `router.rs`, `guarded_call_inner`:
/// `msg.params_as::<Args>()…unwrap_or_else(|| json!({}))`), so it checks empty arguments while
/// the original bytes, real arguments included, go to the upstream. Every message the parser
/// accepts must have readable params (or the parser must refuse it).
#[test]
fn accepted_messages_have_readable_params() {
    let raw = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_document","arguments":{"path":"/etc/shadow","pad":"\udc00"}}}"#;
    let Ok(msg) = moat_mcp::Message::parse(bytes::Bytes::from_static(raw), &moat_mcp::Limits::default()) else {
        return;
    };
    assert!(
        msg.params_as::<serde_json::Value>().is_some(),
        "the parser accepted a message whose params cannot be read: {}",
        String::from_utf8_lossy(raw)
    );
}
