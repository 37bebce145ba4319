//! Static checks: what can be said about a server from its definition alone. Nothing is
//! executed.

use std::sync::OnceLock;

use moat_detect::{Detector, Finding, Owasp, Severity};
use regex::Regex;

use crate::model::{ScanFinding, ServerEntry, Transport};
use crate::parse::escape_pointer;
use crate::registry::Registry;
use crate::rules::{self, ScanRule};
use crate::secrets;

/// Runs every static check on `server`.
pub fn check_server(server: &ServerEntry, detector: &Detector, registry: Option<&Registry>) -> Vec<ScanFinding> {
    let mut out = Vec::new();
    unpinned_package(server, &mut out);
    mutable_image(server, &mut out);
    plain_http(server, &mut out);
    piped_download(server, &mut out);
    inline_secrets(server, detector, &mut out);
    if let Some(registry) = registry {
        if !registry.allows(server) {
            out.push(finding(
                server,
                rules::UNREGISTERED,
                server.pointer.clone(),
                format!("server `{}` is not in the approved registry `{}`", server.name, registry.source().display()),
                server.target(),
            ));
        }
    }
    out
}

fn finding(
    server: &ServerEntry,
    rule_id: &'static str,
    location: String,
    message: String,
    evidence: String,
) -> ScanFinding {
    let meta: Option<&ScanRule> = rules::rule(rule_id);
    ScanFinding::at(
        server,
        Finding {
            rule: rule_id.to_owned(),
            severity: meta.map_or(Severity::Medium, |r| r.severity),
            owasp: meta.map_or(Owasp::Mcp04, |r| r.owasp),
            location,
            message,
            evidence: truncate(&evidence, 200),
            span: None,
        },
    )
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

/// The program's base name, without directory or Windows extension (`npx.cmd` → `npx`).
fn program(command: &str) -> String {
    let base = command.rsplit(['/', '\\']).next().unwrap_or(command);
    let lower = base.to_ascii_lowercase();
    for ext in [".exe", ".cmd", ".bat", ".ps1"] {
        if let Some(stripped) = lower.strip_suffix(ext) {
            return stripped.to_owned();
        }
    }
    lower
}

/// The command line as a list: command then arguments. A `cmd /c npx ...` wrapper (common
/// on Windows) is looked through.
fn argv(server: &ServerEntry) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(cmd) = &server.command {
        // Some configs put the whole command line in `command`.
        if server.args.is_empty() && cmd.contains(' ') && !std::path::Path::new(cmd).exists() {
            out.extend(cmd.split_whitespace().map(str::to_owned));
        } else {
            out.push(cmd.clone());
        }
    }
    out.extend(server.args.iter().cloned());
    if out.len() > 2
        && program(out.first().map_or("", String::as_str)) == "cmd"
        && out.get(1).is_some_and(|a| a.eq_ignore_ascii_case("/c") || a.eq_ignore_ascii_case("/k"))
    {
        out.drain(..2);
    }
    out
}

/// A package launcher and where its package argument starts.
enum Launcher {
    Npm,
    Python,
}

fn unpinned_package(server: &ServerEntry, out: &mut Vec<ScanFinding>) {
    let argv = argv(server);
    let Some((launcher, rest)) = launcher_of(&argv) else {
        return;
    };
    let packages = match launcher {
        Launcher::Npm => npm_packages(rest),
        Launcher::Python => python_packages(rest),
    };
    for (index, spec) in packages {
        let pinned = match launcher {
            Launcher::Npm => npm_spec_pinned(&spec),
            Launcher::Python => python_spec_pinned(&spec),
        };
        if !pinned {
            let why = if spec.ends_with("@latest") { "asks for `@latest`" } else { "has no exact version" };
            let arg_index = argv.len() - rest.len() + index;
            out.push(finding(
                server,
                rules::UNPINNED_PACKAGE,
                arg_pointer(server, arg_index),
                format!(
                    "server `{}` runs package `{spec}`, which {why}, so each start may fetch different code",
                    server.name
                ),
                spec,
            ));
        }
    }
}

/// Recognises `npx`, `bunx`, `pnpm dlx`, `yarn dlx`, `npm exec`, `bun x`, `uvx`,
/// `uv tool run`, `pipx run`; returns the launcher and the arguments after it.
fn launcher_of(argv: &[String]) -> Option<(Launcher, &[String])> {
    let first = program(argv.first()?);
    let second = argv.get(1).map(|s| s.as_str());
    match (first.as_str(), second) {
        ("npx" | "bunx", _) => Some((Launcher::Npm, argv.get(1..)?)),
        ("pnpm" | "yarn", Some("dlx")) | ("npm", Some("exec" | "x")) | ("bun", Some("x")) => {
            Some((Launcher::Npm, argv.get(2..)?))
        }
        ("uvx", _) => Some((Launcher::Python, argv.get(1..)?)),
        ("pipx", Some("run")) => Some((Launcher::Python, argv.get(2..)?)),
        ("uv", Some("tool")) if argv.get(2).map(String::as_str) == Some("run") => {
            Some((Launcher::Python, argv.get(3..)?))
        }
        _ => None,
    }
}

/// The package specs an npm-style launcher will fetch, with their index in `rest`.
fn npm_packages(rest: &[String]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut explicit = false;
    let mut i = 0;
    while let Some(arg) = rest.get(i) {
        if arg == "--" {
            i += 1;
            break;
        }
        if arg == "-p" || arg == "--package" {
            if let Some(spec) = rest.get(i + 1) {
                out.push((i + 1, spec.clone()));
                explicit = true;
            }
            i += 2;
            continue;
        }
        if let Some(spec) = arg.strip_prefix("--package=") {
            out.push((i, spec.to_owned()));
            explicit = true;
            i += 1;
            continue;
        }
        if arg.starts_with('-') {
            // Flags with a separate value.
            if matches!(arg.as_str(), "--registry" | "--cache" | "--userconfig" | "-c" | "--call") {
                i += 1;
            }
            i += 1;
            continue;
        }
        break;
    }
    if !explicit {
        if let Some(spec) = rest.get(i) {
            out.push((i, spec.clone()));
        }
    }
    out.retain(|(_, spec)| is_registry_npm_spec(spec));
    out
}

/// Local paths, URLs and git specs are not registry packages.
fn is_registry_npm_spec(spec: &str) -> bool {
    !(spec.starts_with('.')
        || spec.starts_with('/')
        || spec.starts_with('~')
        || spec.contains("://")
        || spec.starts_with("file:")
        || spec.starts_with("git")
        || spec.starts_with("github:")
        || spec.contains('\\'))
}

fn npm_spec_pinned(spec: &str) -> bool {
    // `@scope/name@version` or `name@version`: the version follows the last `@` that is not
    // the scope's leading one.
    let version = match spec.rfind('@') {
        Some(0) | None => return false,
        Some(pos) => spec.get(pos + 1..).unwrap_or(""),
    };
    let version = version.strip_prefix("npm:").unwrap_or(version);
    is_exact_semver(version)
}

/// `1.2.3`, `1.2.3-beta.1`, `1.2.3+build`: an exact version, not a range or dist-tag.
fn is_exact_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

fn python_packages(rest: &[String]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut from = false;
    let mut i = 0;
    while let Some(arg) = rest.get(i) {
        match arg.as_str() {
            "--from" | "--spec" => {
                if let Some(spec) = rest.get(i + 1) {
                    out.push((i + 1, spec.clone()));
                    from = true;
                }
                i += 2;
            }
            "--with" | "-w" => {
                if let Some(spec) = rest.get(i + 1) {
                    out.push((i + 1, spec.clone()));
                }
                i += 2;
            }
            "--python"
            | "-p"
            | "--index-url"
            | "--extra-index-url"
            | "--index"
            | "-i"
            | "--default-index"
            | "--pip-args"
            | "--directory"
            | "--constraints"
            | "-c"
            | "--overrides"
            | "--with-requirements"
            | "--env-file" => i += 2,
            a if a.starts_with("--from=") || a.starts_with("--spec=") => {
                let spec = a.split_once('=').map_or("", |(_, v)| v);
                out.push((i, spec.to_owned()));
                from = true;
                i += 1;
            }
            a if a.starts_with('-') => i += 1,
            _ => break,
        }
    }
    if !from {
        if let Some(spec) = rest.get(i) {
            out.push((i, spec.clone()));
        }
    }
    out.retain(|(_, spec)| {
        !(spec.starts_with('.') || spec.starts_with('/') || spec.contains("://") || spec.starts_with("git+"))
    });
    out
}

fn python_spec_pinned(spec: &str) -> bool {
    if let Some((_, v)) = spec.split_once("==") {
        return !v.is_empty() && !v.contains('*');
    }
    // uv accepts `pkg@1.2.3`.
    match spec.split_once('@') {
        Some((_, v)) => v != "latest" && v.chars().next().is_some_and(|c| c.is_ascii_digit()),
        None => false,
    }
}

fn mutable_image(server: &ServerEntry, out: &mut Vec<ScanFinding>) {
    let argv = argv(server);
    let prog = argv.first().map(|c| program(c)).unwrap_or_default();
    if !matches!(prog.as_str(), "docker" | "podman" | "nerdctl") {
        return;
    }
    let Some(run_at) = argv.iter().position(|a| a == "run") else {
        return;
    };
    // Flags of `docker run` that take a separate value.
    const VALUED: &[&str] = &[
        "-e",
        "--env",
        "--env-file",
        "-v",
        "--volume",
        "--mount",
        "--name",
        "--network",
        "--net",
        "-p",
        "--publish",
        "-w",
        "--workdir",
        "-u",
        "--user",
        "--entrypoint",
        "--platform",
        "--pull",
        "-l",
        "--label",
        "--cpus",
        "-m",
        "--memory",
        "--add-host",
        "--cap-add",
        "--cap-drop",
        "--security-opt",
        "--device",
        "--tmpfs",
        "--ulimit",
        "-h",
        "--hostname",
        "--restart",
        "--log-driver",
        "--log-opt",
        "--runtime",
        "--ipc",
        "--pid",
        "--dns",
        "--gpus",
        "--shm-size",
        "--stop-signal",
        "--group-add",
        "--userns",
        "--cidfile",
    ];
    let mut i = run_at + 1;
    while let Some(arg) = argv.get(i) {
        if arg.starts_with('-') {
            if VALUED.contains(&arg.as_str()) {
                i += 1;
            }
            i += 1;
            continue;
        }
        let image = arg.clone();
        if image.contains("@sha256:") {
            return;
        }
        let last = image.rsplit('/').next().unwrap_or(&image);
        let tag = last.split_once(':').map(|(_, t)| t);
        let why = match tag {
            None => "has no tag (so `latest`) and no digest".to_owned(),
            Some("latest") => "uses the mutable tag `latest`".to_owned(),
            Some(t) => format!("uses tag `{t}`, which can be moved, and no digest"),
        };
        out.push(finding(
            server,
            rules::MUTABLE_IMAGE,
            arg_pointer(server, i),
            format!("server `{}` runs container image `{image}`, which {why}", server.name),
            image,
        ));
        return;
    }
}

fn plain_http(server: &ServerEntry, out: &mut Vec<ScanFinding>) {
    let mut urls: Vec<(String, String)> = Vec::new();
    if let Some(url) = &server.url {
        if server.transport != Transport::Stdio {
            urls.push((format!("{}/url", server.pointer), url.clone()));
        }
    }
    // Bridges such as `mcp-remote http://...` take the remote URL as an argument.
    let argv = argv(server);
    for (i, arg) in argv.iter().enumerate() {
        if arg.to_ascii_lowercase().starts_with("http://") {
            urls.push((arg_pointer(server, i), arg.clone()));
        }
    }
    for (pointer, url) in urls {
        if let Some(host) = insecure_host(&url) {
            out.push(finding(
                server,
                rules::PLAIN_HTTP,
                pointer,
                format!(
                    "server `{}` is reached over plain http at `{host}`, which is not a loopback address",
                    server.name
                ),
                mask_url(&url),
            ));
        }
    }
}

/// The host of an `http://` URL whose host is not loopback.
fn insecure_host(url: &str) -> Option<String> {
    let lower = url.trim().to_ascii_lowercase();
    let rest = lower.strip_prefix("http://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = authority.rsplit('@').next().unwrap_or(authority);
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split(']').next().unwrap_or("").to_owned()
    } else {
        hostport.split(':').next().unwrap_or("").to_owned()
    };
    let loopback = host == "localhost"
        || host.ends_with(".localhost")
        || host == "::1"
        || host.starts_with("127.")
        || host == "0:0:0:0:0:0:0:1";
    if loopback || host.is_empty() {
        None
    } else {
        Some(host)
    }
}

fn piped_download(server: &ServerEntry, out: &mut Vec<ScanFinding>) {
    static PIPE: OnceLock<Option<Regex>> = OnceLock::new();
    static SUBST: OnceLock<Option<Regex>> = OnceLock::new();
    let pipe = PIPE.get_or_init(|| {
        Regex::new(
            r"(?i)\b(curl|wget|iwr|irm|invoke-webrequest|invoke-restmethod)\b[^|;&]*\|\s*(sudo\s+)?(sh|bash|zsh|dash|ksh|fish|python[0-9.]*|node|perl|ruby|iex|invoke-expression|powershell|pwsh)\b",
        )
        .ok()
    });
    let subst = SUBST.get_or_init(|| {
        Regex::new(r"(?i)(\$\(|<\(|`)\s*(curl|wget)\b|\b(iex|invoke-expression)\s*\(\s*(iwr|irm|invoke-webrequest|invoke-restmethod|\(?new-object)").ok()
    });
    let line = argv(server).join(" ");
    let hit = [pipe, subst].into_iter().flatten().find_map(|re| re.find(&line).map(|m| m.as_str().to_owned()));
    if let Some(evidence) = hit {
        out.push(finding(
            server,
            rules::PIPED_DOWNLOAD,
            server.pointer.clone(),
            format!("server `{}` downloads code and runs it in one step, with no version or digest", server.name),
            evidence,
        ));
    }
}

/// Env and header names that hold credentials.
fn sensitive_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    const MARKERS: &[&str] = &[
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "API_KEY",
        "APIKEY",
        "API-KEY",
        "ACCESS_KEY",
        "PRIVATE_KEY",
        "CREDENTIAL",
        "AUTHORIZATION",
        "COOKIE",
        "CLIENT_SECRET",
        "PAT",
    ];
    MARKERS.iter().any(|m| {
        if *m == "PAT" {
            upper == "PAT" || upper.ends_with("_PAT") || upper.starts_with("PAT_")
        } else {
            upper.contains(m)
        }
    })
}

/// A value that refers to a secret kept elsewhere rather than holding it.
fn is_reference(value: &str) -> bool {
    let v = value.trim();
    v.is_empty()
        || v.contains("${")
        || v.starts_with('$')
        || v.starts_with("{env:")
        || v.starts_with("env:")
        || v.starts_with("file:")
        || v.starts_with("op://")
        || v.starts_with('%') && v.ends_with('%')
}

/// Example values copied from a README (`YOUR_API_KEY`, `<token>`, `xxx`).
fn is_placeholder(value: &str) -> bool {
    let v = value.trim();
    let lower = v.to_ascii_lowercase();
    let stripped = lower.strip_prefix("bearer ").unwrap_or(&lower);
    stripped.contains('<')
        || stripped.contains("your")
        || stripped.contains("xxx")
        || stripped.contains("placeholder")
        || stripped.contains("changeme")
        || stripped.contains("example")
        || stripped.len() < 6
        || stripped.chars().all(|c| c == '*' || c == 'x' || c == '.')
}

fn inline_secrets(server: &ServerEntry, detector: &Detector, out: &mut Vec<ScanFinding>) {
    let mut flagged: Vec<String> = Vec::new();
    let mut push = |out: &mut Vec<ScanFinding>, pointer: String, what: String, secret: &str| {
        if flagged.contains(&pointer) {
            return;
        }
        flagged.push(pointer.clone());
        out.push(finding(
            server,
            rules::INLINE_SECRET,
            pointer,
            format!("server `{}` has {what} written in plain text", server.name),
            secrets::mask(secret),
        ));
    };

    // 1. The secret rules of the detection engine, over every string the client passes on.
    let mut fields: Vec<(String, &str)> = Vec::new();
    for (k, v) in &server.env {
        fields.push((format!("{}/env/{}", server.pointer, escape_pointer(k)), v));
    }
    for (k, v) in &server.headers {
        fields.push((format!("{}/headers/{}", server.pointer, escape_pointer(k)), v));
    }
    for (i, a) in server.args.iter().enumerate() {
        fields.push((format!("{}/args/{i}", server.pointer), a));
    }
    if let Some(url) = &server.url {
        fields.push((format!("{}/url", server.pointer), url));
    }
    for (pointer, value) in &fields {
        if is_reference(value) {
            continue;
        }
        if let Some(hit) = secrets::find(detector, value).into_iter().next() {
            push(out, pointer.clone(), format!("a {} (rule {})", hit.kind, hit.rule), &hit.secret);
        }
    }

    // 2. Credential-named variables and headers that hold a literal value.
    for (k, v) in &server.env {
        if sensitive_name(k) && !is_reference(v) && !is_placeholder(v) {
            let pointer = format!("{}/env/{}", server.pointer, escape_pointer(k));
            push(out, pointer, format!("the credential `{k}`"), v);
        }
    }
    for (k, v) in &server.headers {
        if sensitive_name(k) && !is_reference(v) && !is_placeholder(v) {
            let pointer = format!("{}/headers/{}", server.pointer, escape_pointer(k));
            push(out, pointer, format!("the `{k}` header"), v);
        }
    }

    // 3. Passwords in URLs (`https://user:pass@host`) and `--token=...`-style arguments.
    let mut urls: Vec<(String, &str)> =
        server.args.iter().enumerate().map(|(i, a)| (format!("{}/args/{i}", server.pointer), a.as_str())).collect();
    if let Some(url) = &server.url {
        urls.push((format!("{}/url", server.pointer), url));
    }
    for (pointer, value) in urls {
        if let Some(password) = url_password(value) {
            if !is_placeholder(password) && !is_reference(password) {
                push(out, pointer.clone(), "a password in a URL".to_owned(), password);
            }
        }
        if let Some((flag, secret)) = value.split_once('=') {
            let flag = flag.trim_start_matches('-');
            if value.starts_with("--")
                && sensitive_name(&flag.replace('-', "_"))
                && !is_reference(secret)
                && !is_placeholder(secret)
            {
                push(out, pointer, format!("the credential argument `--{flag}`"), secret);
            }
        }
    }
}

fn url_password(value: &str) -> Option<&str> {
    let (_, rest) = value.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty()).then_some(password)
}

/// The URL with any password masked, for evidence.
fn mask_url(url: &str) -> String {
    match url_password(url) {
        Some(p) => url.replacen(p, "***", 1),
        None => url.to_owned(),
    }
}

/// JSON pointer of argv element `i` (0 = the command) inside the server definition.
fn arg_pointer(server: &ServerEntry, i: usize) -> String {
    if i == 0 {
        format!("{}/command", server.pointer)
    } else {
        format!("{}/args/{}", server.pointer, i - 1)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;
    use crate::model::{Client, Scope};

    fn stdio(command: &str, args: &[&str]) -> ServerEntry {
        ServerEntry {
            client: Client::Cursor,
            scope: Scope::User,
            file: PathBuf::from("/h/.cursor/mcp.json"),
            line: Some(3),
            project: None,
            name: "s".into(),
            transport: Transport::Stdio,
            command: Some(command.into()),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: BTreeMap::new(),
            cwd: None,
            url: None,
            headers: BTreeMap::new(),
            disabled: false,
            pointer: "/mcpServers/s".into(),
        }
    }

    fn remote(url: &str) -> ServerEntry {
        let mut s = stdio("", &[]);
        s.command = None;
        s.transport = Transport::Http;
        s.url = Some(url.into());
        s
    }

    fn detector() -> Detector {
        static D: std::sync::OnceLock<Detector> = std::sync::OnceLock::new();
        D.get_or_init(|| Detector::builtin().unwrap()).clone()
    }

    fn rules_of(s: &ServerEntry) -> Vec<String> {
        check_server(s, &detector(), None).into_iter().map(|f| f.finding.rule).collect()
    }

    #[test]
    fn npx_without_version_is_unpinned() {
        let f = check_server(&stdio("npx", &["-y", "@modelcontextprotocol/server-github"]), &detector(), None);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].finding.rule, rules::UNPINNED_PACKAGE);
        assert_eq!(f[0].finding.location, "/mcpServers/s/args/1");
        assert_eq!(f[0].finding.evidence, "@modelcontextprotocol/server-github");
    }

    #[test]
    fn npx_latest_and_ranges_are_unpinned_exact_versions_are_not() {
        assert_eq!(rules_of(&stdio("npx", &["-y", "pkg@latest"])), [rules::UNPINNED_PACKAGE]);
        assert_eq!(rules_of(&stdio("npx", &["pkg@^1.2.0"])), [rules::UNPINNED_PACKAGE]);
        assert!(rules_of(&stdio("npx", &["-y", "@scope/pkg@1.2.3"])).is_empty());
        assert!(rules_of(&stdio("npx.cmd", &["pkg@0.6.2-beta.1"])).is_empty());
        assert!(rules_of(&stdio("npx", &["./local/server.js"])).is_empty());
    }

    #[test]
    fn bunx_pnpm_dlx_and_cmd_wrappers_are_recognised() {
        assert_eq!(rules_of(&stdio("bunx", &["pkg"])), [rules::UNPINNED_PACKAGE]);
        assert_eq!(rules_of(&stdio("pnpm", &["dlx", "pkg"])), [rules::UNPINNED_PACKAGE]);
        assert_eq!(rules_of(&stdio("cmd", &["/c", "npx", "-y", "pkg"])), [rules::UNPINNED_PACKAGE]);
        assert!(rules_of(&stdio("pnpm", &["dlx", "pkg@2.0.0"])).is_empty());
    }

    #[test]
    fn uvx_and_pipx_need_double_equals() {
        assert_eq!(rules_of(&stdio("uvx", &["mcp-server-git"])), [rules::UNPINNED_PACKAGE]);
        assert!(rules_of(&stdio("uvx", &["mcp-server-git==2025.1.14"])).is_empty());
        assert!(rules_of(&stdio("uvx", &["--from", "mcp-server-git==1.0", "mcp-server-git"])).is_empty());
        assert_eq!(rules_of(&stdio("uvx", &["--from", "mcp-server-git", "mcp-server-git"])), [rules::UNPINNED_PACKAGE]);
        assert_eq!(rules_of(&stdio("pipx", &["run", "pkg"])), [rules::UNPINNED_PACKAGE]);
        assert!(rules_of(&stdio("pipx", &["run", "pkg==1.0.0"])).is_empty());
    }

    #[test]
    fn container_images_need_a_digest() {
        let f = check_server(
            &stdio("docker", &["run", "-i", "--rm", "-e", "X", "ghcr.io/github/github-mcp-server"]),
            &detector(),
            None,
        );
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].finding.rule, rules::MUTABLE_IMAGE);
        assert_eq!(f[0].finding.evidence, "ghcr.io/github/github-mcp-server");
        assert_eq!(rules_of(&stdio("docker", &["run", "mcp/fetch:latest"])), [rules::MUTABLE_IMAGE]);
        assert!(rules_of(&stdio("podman", &["run", "-i", "mcp/fetch@sha256:0123abcd"])).is_empty());
    }

    #[test]
    fn plain_http_is_flagged_unless_loopback() {
        assert_eq!(rules_of(&remote("http://mcp.example.com/mcp")), [rules::PLAIN_HTTP]);
        assert!(rules_of(&remote("http://127.0.0.1:8080/mcp")).is_empty());
        assert!(rules_of(&remote("http://localhost/mcp")).is_empty());
        assert!(rules_of(&remote("http://[::1]:9/mcp")).is_empty());
        assert!(rules_of(&remote("https://mcp.example.com/mcp")).is_empty());
        assert_eq!(rules_of(&stdio("npx", &["-y", "mcp-remote@0.1.29", "http://10.1.2.3/sse"])), [rules::PLAIN_HTTP]);
    }

    #[test]
    fn download_piped_to_shell_is_flagged() {
        let s = stdio("sh", &["-c", "curl -fsSL https://get.example.sh | bash"]);
        assert_eq!(rules_of(&s), [rules::PIPED_DOWNLOAD]);
        let s = stdio("bash", &["-c", "bash <(wget -qO- https://x.example/i.sh)"]);
        assert_eq!(rules_of(&s), [rules::PIPED_DOWNLOAD]);
        let s = stdio("powershell", &["-c", "iwr https://x.example/i.ps1 | iex"]);
        assert_eq!(rules_of(&s), [rules::PIPED_DOWNLOAD]);
        assert!(rules_of(&stdio("curl", &["https://x.example/health"])).is_empty());
    }

    #[test]
    fn literal_credentials_are_flagged_and_masked_references_are_not() {
        let mut s = stdio("node", &["server.js"]);
        s.env.insert("GITHUB_TOKEN".into(), "ghp_abcdefghijklmnopqrstuvwxyz0123456789".into());
        s.env.insert("OTHER_TOKEN".into(), "${env:OTHER_TOKEN}".into());
        s.env.insert("API_KEY".into(), "<your-api-key>".into());
        s.env.insert("LOG_LEVEL".into(), "debug".into());
        let f = check_server(&s, &detector(), None);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].finding.rule, rules::INLINE_SECRET);
        assert_eq!(f[0].finding.owasp, Owasp::Mcp01);
        assert_eq!(f[0].finding.location, "/mcpServers/s/env/GITHUB_TOKEN");
        assert!(!f[0].finding.evidence.contains("abcdefghijklmnop"), "{}", f[0].finding.evidence);
    }

    #[test]
    fn authorization_header_and_url_password_are_secrets() {
        let mut s = remote("https://user:hunter2secret@mcp.example.com/mcp");
        s.headers.insert("Authorization".into(), "Bearer sk-live-0123456789abcdef".into());
        let f = check_server(&s, &detector(), None);
        let locs: Vec<_> = f.iter().map(|f| f.finding.location.as_str()).collect();
        assert!(locs.contains(&"/mcpServers/s/headers/Authorization"), "{locs:?}");
        assert!(locs.contains(&"/mcpServers/s/url"), "{locs:?}");
        assert!(f.iter().all(|f| !f.finding.evidence.contains("hunter2secret")));
    }
}
