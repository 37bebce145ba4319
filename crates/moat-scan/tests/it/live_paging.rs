//! The live client follows `nextCursor`, answers a server's `ping` in the middle of a request,
//! and skips notifications and stdout lines that are not JSON.
#![cfg(unix)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use moat_scan::live::fetch_one;
use moat_scan::{Client, Scope, ServerEntry, Transport};

const PAGER_SH: &str = r#"#!/bin/sh
printf 'pager: starting (a log line on stdout)\n'
while IFS= read -r line; do
  id=$(printf '%s\n' "$line" | sed -n 's/.*"id":\([0-9][0-9]*\).*/\1/p')
  case "$line" in
    *'"method":"initialize"'*)
      printf '{"jsonrpc":"2.0","id":%s,"result":{"protocolVersion":"2025-11-25","capabilities":{"tools":{},"resources":{}},"serverInfo":{"name":"pager","version":"1"}}}\n' "$id" ;;
    *'"method":"tools/list"'*'"cursor":"p2"'*)
      printf '{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"second","inputSchema":{"type":"object"}}]}}\n' "$id" ;;
    *'"method":"tools/list"'*)
      printf '{"jsonrpc":"2.0","id":"s1","method":"ping"}\n'
      IFS= read -r reply
      case "$reply" in *'"id":"s1"'*'"result"'*) ;; *) echo "no pong: $reply" >&2; exit 7 ;; esac
      printf '{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}\n'
      printf '{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"first","inputSchema":{"type":"object"}}],"nextCursor":"p2"}}\n' "$id" ;;
    *'"method":"resources/list"'*'"cursor":"r2"'*)
      printf '{"jsonrpc":"2.0","id":%s,"result":{"resources":[{"uri":"file:///b","name":"b"}]}}\n' "$id" ;;
    *'"method":"resources/list"'*)
      printf '{"jsonrpc":"2.0","id":%s,"result":{"resources":[{"uri":"file:///a","name":"a"}],"nextCursor":"r2"}}\n' "$id" ;;
    *'"id":'*)
      printf '{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"method not found"}}\n' "$id" ;;
  esac
done
"#;

#[test]
fn pages_are_followed_and_server_requests_answered() {
    let dir = std::env::temp_dir().join(format!("moat-scan-paging-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("pager.sh");
    std::fs::write(&script, PAGER_SH).unwrap();
    let server = ServerEntry {
        client: Client::Cursor,
        scope: Scope::User,
        file: PathBuf::from("/fixture/mcp.json"),
        line: None,
        project: None,
        name: "pager".into(),
        transport: Transport::Stdio,
        command: Some("/bin/sh".into()),
        args: vec![script.display().to_string()],
        env: BTreeMap::new(),
        cwd: None,
        url: None,
        headers: BTreeMap::new(),
        disabled: false,
        pointer: "/mcpServers/pager".into(),
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let r = rt.block_on(fetch_one(0, &server, Duration::from_secs(20)));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(r.error.is_none(), "{r:?}");
    let snap = r.snapshot.unwrap();
    let tools: Vec<&str> = snap.tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(tools, ["first", "second"]);
    let uris: Vec<&str> = snap.resources.iter().map(|t| t["uri"].as_str().unwrap()).collect();
    assert_eq!(uris, ["file:///a", "file:///b"]);
    assert_eq!(snap.server_info.unwrap()["name"], "pager");
}
