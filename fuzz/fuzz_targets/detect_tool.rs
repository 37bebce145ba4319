//! Fuzz the tool-metadata scanner: any JSON document goes through the `moat scan --tools`
//! reader and, when it has the right shape, through the per-tool and cross-server checks.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use moat_detect::{servers_from_value, Detector};
use serde_json::Value;

fn detector() -> &'static Detector {
    static D: OnceLock<Detector> = OnceLock::new();
    D.get_or_init(|| Detector::builtin().expect("built-in rules compile"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = serde_json::from_slice::<Value>(data) else { return };
    let d = detector();
    let _ = d.scan_tool(&doc);
    let _ = d.scan_prompt(&doc);
    if let Some(s) = doc.as_str() {
        let _ = d.scan_server_instructions(s);
    }
    if let Ok(servers) = servers_from_value(&doc) {
        let reports = d.scan_tools(&servers);
        assert_eq!(reports.len(), servers.len());
        for (r, s) in reports.iter().zip(&servers) {
            assert_eq!(r.tools.len(), s.tools.len());
        }
    }
});
