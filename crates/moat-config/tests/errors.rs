//! The documented configuration errors: each names the file, line, key and what was expected.

use moat_config::{parse, Origin};

fn errors(src: &str) -> Vec<String> {
    match parse(src, Origin::File("moat.toml".into())) {
        Ok(_) => panic!("expected an error for:\n{src}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn embedded_default_is_valid_and_safe() {
    let c = parse(moat_config::EMBEDDED_DEFAULT, Origin::Embedded).unwrap().config;
    assert!(c.gateway.listen.ip().is_loopback());
    assert_eq!(c.gateway.path, "/mcp");
    assert_eq!(c.upstreams.len(), 1);
    assert_eq!(c.gateway.canonical_url(), "http://127.0.0.1:8787/mcp");
}

#[test]
fn unknown_key_names_line_and_suggests() {
    let e = errors("[gateway]\nlisen = \"127.0.0.1:1\"\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("moat.toml:2:"), "{}", e[0]);
    assert!(e[0].contains("unknown key `lisen`"), "{}", e[0]);
    assert!(e[0].contains("did you mean `listen`?"), "{}", e[0]);
}

#[test]
fn unknown_top_level_table_is_refused() {
    let e = errors("[gatway]\nlisten = \"127.0.0.1:1\"\n");
    assert!(e[0].contains("unknown key `gatway`"), "{}", e[0]);
    assert!(e[0].contains("did you mean `gateway`?"), "{}", e[0]);
}

#[test]
fn wrong_type_names_key_and_expectation() {
    let e = errors("[gateway]\nmax_body_bytes = \"big\"\n");
    assert!(e[0].starts_with("moat.toml:2:"), "{}", e[0]);
    assert!(e[0].contains("`gateway.max_body_bytes`"), "{}", e[0]);
    assert!(e[0].contains("expected"), "{}", e[0]);
}

#[test]
fn inline_secret_is_refused_with_advice() {
    let e = errors(
        "[[upstream]]\nname = \"gh\"\ncommand = [\"gh-mcp\"]\nenv = { GITHUB_TOKEN = \"ghp_0123456789abcdefghijklmnopqrstuvwxyz\" }\n",
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("moat.toml:4:"), "{}", e[0]);
    assert!(e[0].contains("`upstream[0].env.GITHUB_TOKEN`"), "{}", e[0]);
    assert!(e[0].contains("inline secret refused"), "{}", e[0]);
    assert!(e[0].contains("env:GITHUB_TOKEN"), "{}", e[0]);
    assert!(!e[0].contains("ghp_0123"), "the secret itself must not be echoed: {}", e[0]);
}

#[test]
fn secret_reference_fields_refuse_literals() {
    let e = errors("[gateway]\ntls_cert = \"-----BEGIN CERTIFICATE-----\"\ntls_key = \"file:k.pem\"\n");
    assert!(e[0].contains("expected a secret reference"), "{}", e[0]);
}

#[test]
fn missing_file_is_reported() {
    let e = moat_config::load(Some(std::path::Path::new("/nonexistent/moat.toml"))).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("/nonexistent/moat.toml"), "{msg}");
    assert!(msg.contains("configuration file not found"), "{msg}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let e = errors(
        "[gateway]\nlisten = \"0.0.0.0:8787\"\npath = \"mcp\"\n\n[[upstream]]\nname = \"a\"\n\n[[upstream]]\nname = \"a\"\nurl = \"ftp://x\"\n",
    );
    let all = e.join("\n");
    assert!(all.contains("`gateway.listen`"), "{all}");
    assert!(all.contains("`gateway.path`"), "{all}");
    assert!(all.contains("neither `command` nor `url`"), "{all}");
    assert!(all.contains("used twice"), "{all}");
    assert!(all.contains("invalid upstream URL `ftp://x`"), "{all}");
    assert!(e.len() >= 5, "{all}");
}

#[test]
fn every_shipped_example_config_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            moat_config::load_file(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            n += 1;
        }
    }
    assert!(n > 0, "no example configs in {}", dir.display());
}

#[test]
fn upstream_oauth_parses_with_defaults() {
    let src = "[[upstream]]\nname = \"api\"\nurl = \"https://api.example/mcp\"\n\n[upstream.oauth]\ntoken_url = \"https://login.example/token\"\nclient_id = \"moat\"\nclient_secret = \"env:MOAT_UPSTREAM_SECRET\"\nscope = \"mcp:read mcp:write\"\n";
    let c = parse(src, Origin::File("moat.toml".into())).unwrap().config;
    let u = &c.upstreams[0];
    let o = u.oauth.as_ref().unwrap();
    assert_eq!(o.scope.0, ["mcp:read", "mcp:write"]);
    assert_eq!(o.grant, moat_config::upstream::UpstreamGrant::ClientCredentials);
    assert_eq!(o.effective_resource(u.url.as_deref()), Some("https://api.example/mcp"));
    let list = src.replace(
        "scope = \"mcp:read mcp:write\"",
        "scope = [\"mcp:read\"]\ngrant = \"token_exchange\"\nresource = \"https://api.example\"",
    ) + "[auth]\nmode = \"oauth\"\nissuer = \"https://login.example\"\n";
    let c = parse(&list, Origin::File("moat.toml".into())).unwrap().config;
    let o = c.upstreams[0].oauth.as_ref().unwrap();
    assert_eq!(o.scope.0, ["mcp:read"]);
    assert_eq!(o.grant, moat_config::upstream::UpstreamGrant::TokenExchange);
    assert_eq!(o.effective_resource(Some("https://api.example/mcp")), Some("https://api.example"));
    let none = list.replace("resource = \"https://api.example\"", "resource = \"\"");
    let c = parse(&none, Origin::File("moat.toml".into())).unwrap().config;
    assert_eq!(c.upstreams[0].oauth.as_ref().unwrap().effective_resource(Some("https://api.example/mcp")), None);
}

#[test]
fn upstream_oauth_problems_are_located() {
    // An inline secret, an unknown grant, an unknown key: serde refuses each.
    let base = "[[upstream]]\nname = \"api\"\nurl = \"https://api.example/mcp\"\n[upstream.oauth]\ntoken_url = \"https://login.example/token\"\nclient_id = \"moat\"\n";
    let e = errors(&format!("{base}client_secret = \"hunter2\"\n"));
    assert!(e[0].starts_with("moat.toml:7:") && e[0].contains("secret reference"), "{}", e[0]);
    assert!(!e[0].contains("hunter2"), "{}", e[0]);
    let e = errors(&format!("{base}client_secret = \"env:S\"\ngrant = \"password\"\n"));
    assert!(e[0].starts_with("moat.toml:8:"), "{}", e[0]);
    let e = errors(&format!("{base}client_secret = \"env:S\"\nscopes = \"a\"\n"));
    assert!(e[0].contains("did you mean `scope`?"), "{}", e[0]);
    // Meaning errors, all at once, each at its key.
    let src = "[[upstream]]\nname = \"api\"\nurl = \"https://api.example/mcp\"\ncredential = \"env:T\"\nheaders = { Authorization = \"env:H\" }\n[upstream.oauth]\ntoken_url = \"http://login.example/token\"\nclient_id = \"\"\nclient_secret = \"env:S\"\nscope = [\"ok\", \"bad\\\"scope\"]\nresource = \"https://api.example/#frag\"\naudience = \"\"\n";
    let e = errors(src);
    let has = |line: &str, key: &str, what: &str| {
        assert!(
            e.iter().any(|m| m.starts_with(&format!("moat.toml:{line}:")) && m.contains(key) && m.contains(what)),
            "no `{what}` at {key}:{line} in {e:#?}"
        )
    };
    has("6", "`upstream[0].oauth`", "by `credential` and by `[upstream.oauth]`");
    has("6", "`upstream[0].oauth`", "in `headers` and by `[upstream.oauth]`");
    has("7", "`upstream[0].oauth.token_url`", "plain http on a non-loopback host");
    has("8", "`upstream[0].oauth.client_id`", "client id is empty");
    has("10", "`upstream[0].oauth.scope`", "is not a valid scope");
    has("11", "`upstream[0].oauth.resource`", "without a fragment");
    has("12", "`upstream[0].oauth.audience`", "audience is empty");
    // Only for HTTP upstreams; http is fine on loopback.
    let stdio = "[[upstream]]\nname = \"s\"\ncommand = [\"x\"]\n[upstream.oauth]\ntoken_url = \"http://127.0.0.1:9/token\"\nclient_id = \"m\"\nclient_secret = \"env:S\"\n";
    let e = errors(stdio);
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(e[0].contains("`oauth` applies only to HTTP upstreams"), "{}", e[0]);
    // Token exchange needs OAuth callers.
    let exchange = format!("{base}client_secret = \"env:S\"\ngrant = \"token_exchange\"\n");
    let e = errors(&exchange);
    assert!(e[0].starts_with("moat.toml:8:") && e[0].contains("needs callers with OAuth access tokens"), "{}", e[0]);
    let with_oauth = format!("{exchange}[auth]\nmode = \"oauth\"\nissuer = \"https://login.example\"\n");
    assert!(parse(&with_oauth, Origin::File("moat.toml".into())).is_ok());
}
