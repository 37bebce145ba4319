//! The `sandbox` table of `moat.toml` and its conversion to a policy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use moat_sandbox::config::{NetworkConfig, SandboxConfig};
use moat_sandbox::{HostPort, Network, SandboxError, SandboxPolicy, DEFAULT_PATH};

fn parse(src: &str) -> Result<SandboxConfig, toml::de::Error> {
    toml::from_str(src)
}

#[test]
fn empty_table_is_the_safe_default() {
    let c = parse("").unwrap();
    assert_eq!(c, SandboxConfig::default());
    assert_eq!(c.network, NetworkConfig::Deny);
    assert!(!c.best_effort);
    assert_eq!(c.memory_mb, 1024);
    assert_eq!(c.address_space_mb, None);
    let p = SandboxPolicy::from_config(&c, Path::new("/state/home/up"), Vec::new()).unwrap();
    assert_eq!(p, SandboxPolicy::new("/state/home/up"));
    assert_eq!(p.network, Network::Deny);
    assert_eq!(p.path, OsString::from(DEFAULT_PATH));
}

#[test]
fn network_takes_false_true_or_a_list() {
    assert_eq!(parse("network = false").unwrap().network, NetworkConfig::Deny);
    assert_eq!(parse("network = true").unwrap().network, NetworkConfig::Allow);
    assert_eq!(
        parse(r#"network = ["api.example.com:443", "[::1]:8080"]"#).unwrap().network,
        NetworkConfig::AllowList(vec!["api.example.com:443".into(), "[::1]:8080".into()])
    );
    let err = parse(r#"network = "yes""#).unwrap_err().to_string();
    assert!(err.contains("`false`, `true` or a list"), "{err}");
}

#[test]
fn unknown_keys_are_rejected() {
    let err = parse("memory = 10").unwrap_err().to_string();
    assert!(err.contains("unknown field `memory`"), "{err}");
}

#[test]
fn full_table_converts_to_a_policy() {
    let c = parse(
        r#"
        read = ["/srv/data", "~/projects"]
        write = ["/srv/out"]
        network = ["api.example.com:443"]
        best_effort = true
        sha256 = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
        memory_mb = 512
        address_space_mb = 8192
        cpu_seconds = 60
        open_files = 256
        processes = 64
        home = "/var/lib/moat/fs-home"
        "#,
    )
    .unwrap();
    let env = vec![
        (OsString::from("PATH"), OsString::from("/opt/node/bin:/usr/bin")),
        (OsString::from("API_TOKEN"), OsString::from("t")),
        (OsString::from("HOME"), OsString::from("/root")),
    ];
    let p = SandboxPolicy::from_config(&c, Path::new("/unused"), env).unwrap();
    assert_eq!(p.home, PathBuf::from("/var/lib/moat/fs-home"));
    assert_eq!(p.path, OsString::from("/opt/node/bin:/usr/bin"));
    assert_eq!(p.env, vec![(OsString::from("API_TOKEN"), OsString::from("t"))], "HOME is the sandbox's own");
    assert_eq!(p.read[0], PathBuf::from("/srv/data"));
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap();
    assert_eq!(p.read[1], home.join("projects"));
    assert_eq!(p.network, Network::AllowList(vec![HostPort { host: "api.example.com".into(), port: 443 }]));
    assert_eq!(p.limits.memory_bytes, Some(512 * 1024 * 1024));
    assert_eq!(p.limits.address_space_bytes, Some(8192 * 1024 * 1024));
    assert_eq!(p.limits.cpu_seconds, Some(60));
    assert_eq!(p.limits.processes, Some(64));
    assert_eq!(hex::encode(p.sha256.unwrap()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

#[test]
fn bad_pin_and_bad_host_port_are_errors() {
    let c = parse(r#"sha256 = "abc""#).unwrap();
    let err = SandboxPolicy::from_config(&c, Path::new("/h"), Vec::new()).unwrap_err();
    assert!(matches!(err, SandboxError::InvalidPin { .. }));
    assert_eq!(err.to_string(), "sandbox sha256 `abc` is not 64 hexadecimal digits");
    let c = parse(r#"network = ["example.com"]"#).unwrap();
    let err = SandboxPolicy::from_config(&c, Path::new("/h"), Vec::new()).unwrap_err();
    assert_eq!(err.to_string(), "network allow-list entry `example.com` is not \"host:port\"");
}

#[test]
fn config_round_trips() {
    let c = parse(
        r#"network = ["a:1"]
memory_mb = 10"#,
    )
    .unwrap();
    let back: SandboxConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
}

#[test]
fn upstream_policy_resolves_relative_paths_from_the_config_dir() {
    let upstream: moat_config::UpstreamConfig = toml::from_str(
        r#"
        name = "files"
        command = ["node", "server.js"]
        cwd = "servers/files"
        [sandbox]
        read = ["servers/files", "/abs"]
        write = ["out"]
        "#,
    )
    .unwrap();
    let env = vec![(OsString::from("PATH"), OsString::from("/usr/bin"))];
    let p = SandboxPolicy::for_upstream(&upstream, env, Path::new("/etc/moat"), Path::new("/var/lib/moat")).unwrap();
    assert_eq!(p.read, [PathBuf::from("/etc/moat/servers/files"), PathBuf::from("/abs")]);
    assert_eq!(p.write, [PathBuf::from("/etc/moat/out")]);
    assert_eq!(p.cwd, Some(PathBuf::from("/etc/moat/servers/files")));
    assert_eq!(p.home, PathBuf::from("/var/lib/moat/sandbox-home/files"));
    assert_eq!(p.path, OsString::from("/usr/bin"));

    // No sandbox table at all: every default, home under the state dir.
    let bare: moat_config::UpstreamConfig = toml::from_str("name = \"x\"\ncommand = [\"true\"]").unwrap();
    let p = SandboxPolicy::for_upstream(&bare, Vec::new(), Path::new("/etc/moat"), Path::new("/s")).unwrap();
    assert_eq!(p, SandboxPolicy::new("/s/sandbox-home/x"));
}
