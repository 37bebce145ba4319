//! No secret from the scanner's environment reaches a server it starts: the server gets
//! `PATH`, `HOME` and the `env` entries of its own definition, nothing else.
#![cfg(unix)]

use crate::support;

use std::time::Duration;

use moat_scan::live::fetch_one;

#[test]
fn a_started_server_sees_only_path_home_and_its_own_env() {
    const SECRET: &str = "moat-scan-test-secret-7f3a9c";
    // This test binary holds only this test, so setting a variable races with nothing.
    std::env::set_var("MOAT_SCAN_TEST_SECRET", SECRET);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET);

    let s = support::scratch("env");
    let env_out = s.dir.join("env.txt");
    let mut server = support::sh_server("envdump", &s.script, &env_out, "0", "echo", "Echo.");
    server.env.insert("GIVEN_BY_CONFIG".into(), "yes".into());
    server.env.insert("REFERENCED".into(), "${MOAT_SCAN_TEST_SECRET}".into());

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let result = rt.block_on(fetch_one(0, &server, Duration::from_secs(20)));
    assert!(result.error.is_none(), "{result:?}");
    assert_eq!(result.snapshot.unwrap().tools.len(), 1);
    assert!(result.stderr.contains("sh-server starting"), "stderr is captured: {:?}", result.stderr);

    let dumped = std::fs::read_to_string(&env_out).unwrap();
    assert!(!dumped.contains(SECRET), "a secret leaked into the server's environment:\n{dumped}");
    let names: Vec<&str> = dumped.lines().filter_map(|l| l.split_once('=').map(|(k, _)| k)).collect();
    assert!(names.contains(&"PATH") && names.contains(&"HOME") && names.contains(&"GIVEN_BY_CONFIG"), "{names:?}");
    // `${VAR}` references are passed as written, never expanded from the scanner's environment.
    assert!(dumped.contains("REFERENCED=${MOAT_SCAN_TEST_SECRET}"), "{dumped}");
    // Whatever else is there was set by the shell itself.
    for name in names {
        assert!(
            matches!(name, "PATH" | "HOME" | "GIVEN_BY_CONFIG" | "REFERENCED" | "PWD" | "OLDPWD" | "SHLVL" | "_"),
            "unexpected variable `{name}` in the server's environment"
        );
    }
}
