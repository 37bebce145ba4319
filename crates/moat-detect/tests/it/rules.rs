//! The built-in rule files: they load, ids are unique, every example matches its rule and no
//! negative example does, and the redaction table agrees with the files.

use moat_detect::{Detector, Verdict, BUILTIN_REDACTION_TYPES};

#[test]
fn builtin_rules_load_and_pass_their_examples() {
    let d = Detector::builtin().unwrap();
    let problems = d.check_examples();
    assert!(problems.is_empty(), "{} rule example problems:\n{}", problems.len(), problems.join("\n"));
}

#[test]
fn every_rule_family_is_present() {
    let d = Detector::builtin().unwrap();
    let ids: Vec<String> = d.rules().map(|r| r.id.clone()).collect();
    for family in ["MOAT-TP-", "MOAT-PI-", "MOAT-SEC-", "MOAT-PII-", "MOAT-HID-"] {
        assert!(ids.iter().any(|i| i.starts_with(family)), "no {family} rule");
    }
}

#[test]
fn redaction_table_matches_rule_files() {
    let d = Detector::builtin().unwrap();
    let from_files: Vec<(String, String)> =
        d.rules().filter_map(|r| Some((r.id.clone(), r.redact_as.clone()?))).collect();
    let table: Vec<(String, String)> =
        BUILTIN_REDACTION_TYPES.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    assert_eq!(from_files, table);
}

#[test]
fn user_rules_use_the_same_loader_and_checks() {
    let user = r#"
version = 1
[[rule]]
id = "USER-ACME-001"
name = "internal-hostname"
owasp = "MCP10"
severity = "medium"
scope = ["text"]
description = "An internal ACME host name."
keywords = ["corp.acme"]
redact_as = "internal_host"
pattern = '''\b[a-z0-9-]+\.corp\.acme\b'''
examples = ["connect to build-01.corp.acme now"]
negative_examples = ["acme.com is public"]
"#;
    let d = Detector::with_user_rules(&[("acme.toml", user)]).unwrap();
    assert!(d.check_examples().is_empty());
    let text = "host db-7.corp.acme is down";
    let findings = d.scan_text(text);
    assert_eq!(Verdict::of(&findings), Verdict::Warn);
    assert_eq!(d.redact(text, &findings), "host [REDACTED:internal_host] is down");

    // A duplicate id is rejected, naming both files.
    let dup = user.replace("USER-ACME-001", "MOAT-PI-001");
    let err = Detector::with_user_rules(&[("dup.toml", &dup)]).unwrap_err().to_string();
    assert!(err.contains("MOAT-PI-001") && err.contains("dup.toml"), "{err}");

    // A bad pattern is rejected with the rule named.
    let bad = user.replace(r"\b[a-z0-9-]+\.corp\.acme\b", "(unclosed");
    let err = Detector::with_user_rules(&[("bad.toml", &bad)]).unwrap_err().to_string();
    assert!(err.contains("USER-ACME-001") && err.contains("does not compile"), "{err}");

    // A wrong example is reported by the checker.
    let wrong = user.replace("connect to build-01.corp.acme now", "nothing here");
    let d = Detector::with_user_rules(&[("wrong.toml", &wrong)]).unwrap();
    assert_eq!(d.check_examples().len(), 1);
}

#[test]
fn oversized_user_patterns_are_rejected() {
    let user = r#"
version = 1
[[rule]]
id = "USER-BIG-001"
name = "big"
owasp = "MCP06"
severity = "low"
scope = ["text"]
description = "too big"
pattern = '''(?:\w{100}){100}'''
examples = ["x"]
negative_examples = ["y"]
"#;
    let err = Detector::with_user_rules(&[("big.toml", user)]).unwrap_err().to_string();
    assert!(err.contains("USER-BIG-001"), "{err}");
}
