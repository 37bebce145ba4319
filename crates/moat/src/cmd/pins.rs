//! `moat pins list|diff|approve|revoke|export|import`: review and release the definitions the
//! gateway pinned (MCP03, rug pulls), and move them to and from a lock file (`moat.lock`).
//!
//! The gateway pins every tool, prompt and resource template definition and every server's
//! instructions in the store, per upstream identity (`<name>|stdio:<command line>` or
//! `<name>|http:<url>`). A definition that changes is quarantined until someone approves
//! it here. Approving is tied to a hash: the store approves a pin only if its definition is
//! still the one shown (and, with `--hash`, the one the operator reviewed), so a server cannot
//! swap in another definition between review and approval.
//!
//! Exit codes: 0 done, 1 nothing matched (or nothing was approved or revoked), 2 bad input or
//! an error.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use moat_config::LoadedConfig;
use moat_detect::canonical::{pin_hash, PinDomain};
use moat_detect::lockfile::{LockFile, Pin};
use moat_scan::model::FieldDiff;
use moat_store::{PinKind, PinRecord, PinState, Store, UnixMillis};
use serde_json::{json, Value};

/// Review, approve and revoke pinned tool definitions; export and import `moat.lock`.
#[derive(Debug, Parser)]
pub struct Args {
    /// Configuration file whose `[store]` holds the pins and whose `[[upstream]]` entries
    /// name the upstreams. Default: `./moat.toml` if it exists, else the embedded default.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Only pins of this upstream: its `name` in the configuration, or a full identity
    /// (`NAME|stdio:COMMAND LINE` or `NAME|http:URL`) for one that is no longer configured.
    #[arg(long, global = true, value_name = "UPSTREAM")]
    upstream: Option<String>,

    /// Only the tool with this name (short for `--kind tool --name TOOL`).
    #[arg(long, global = true, value_name = "TOOL")]
    tool: Option<String>,

    /// Only definitions with this name, of any kind (a resource template's name is its
    /// `uriTemplate`).
    #[arg(long, global = true, value_name = "NAME")]
    name: Option<String>,

    /// Only definitions of this kind.
    #[arg(long, global = true, value_enum, value_name = "KIND")]
    kind: Option<KindArg>,

    /// Output format of `list`, `diff`, `approve`, `revoke` and `import`.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    format: Format,

    #[command(subcommand)]
    command: PinsCommand,
}

#[derive(Debug, Subcommand)]
enum PinsCommand {
    /// List pins: state, kind, upstream, name, hash, first seen and last update.
    List,
    /// Show what changed in each quarantined definition, field by field.
    Diff,
    /// Approve the current definition of a pin (or, with `--all`, of every quarantined pin
    /// of the selection), so the gateway serves it again.
    Approve(ApproveArgs),
    /// Withdraw trust: quarantine a pin (or, with `--all`, every pin of the selection).
    Revoke(RevokeArgs),
    /// Write the trusted pins (pinned or approved) of the configured upstreams to a lock file.
    Export(LockArgs),
    /// Approve every pin of the store whose current hash is the one the lock file names.
    Import(LockArgs),
}

#[derive(Debug, clap::Args)]
struct ApproveArgs {
    /// Approve every quarantined pin of the selection, not exactly one.
    #[arg(long)]
    all: bool,
    /// Approve only if the current definition still has this hash (the full `sha256:…`
    /// that `moat pins diff` or `list --format json` showed).
    #[arg(long, value_name = "HASH", conflicts_with = "all")]
    hash: Option<String>,
}

#[derive(Debug, clap::Args)]
struct RevokeArgs {
    /// Revoke every pin of the selection, not exactly one.
    #[arg(long)]
    all: bool,
}

#[derive(Debug, clap::Args)]
struct LockArgs {
    /// The lock file. Default: the configuration's `[guards] lock_file`, else `moat.lock`,
    /// relative to the configuration file (the current directory for the embedded default).
    #[arg(long, value_name = "PATH")]
    lock: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum KindArg {
    Tool,
    Prompt,
    #[value(name = "resource_template", alias = "resource-template")]
    ResourceTemplate,
    Instructions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
}

pub fn run(args: Args) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run_async(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Exit code 1: nothing matched, or nothing was done.
fn nothing(message: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("{message}");
    Ok(ExitCode::from(1))
}

async fn run_async(args: Args) -> anyhow::Result<ExitCode> {
    let Some(loaded) = super::config::load_or_report(args.config.as_deref()) else {
        return Ok(ExitCode::from(2));
    };
    let ctx = Selection::resolve(&args, &loaded)?;
    let store = moat_store_open::open(loaded.config.store.url.as_deref()).await.context("cannot open the pin store")?;
    match &args.command {
        PinsCommand::List => list(&ctx, &*store, args.format).await,
        PinsCommand::Diff => diff(&ctx, &*store, args.format).await,
        PinsCommand::Approve(a) => approve(&ctx, &*store, a, args.format).await,
        PinsCommand::Revoke(r) => revoke(&ctx, &*store, r, args.format).await,
        PinsCommand::Export(l) => export(&ctx, &*store, &lock_path(l, &loaded)).await,
        PinsCommand::Import(l) => import(&ctx, &*store, &lock_path(l, &loaded), args.format).await,
    }
}

// ---------------------------------------------------------------------------------------
// The selection

/// What the flags select, resolved against the configuration.
struct Selection {
    /// Configured upstreams: (name, identity).
    upstreams: Vec<(String, String)>,
    /// `--upstream`, as an identity.
    identity: Option<String>,
    kind: Option<PinKind>,
    name: Option<String>,
}

impl Selection {
    fn resolve(args: &Args, loaded: &LoadedConfig) -> anyhow::Result<Selection> {
        let upstreams: Vec<(String, String)> =
            loaded.config.upstreams.iter().map(|u| (u.name.clone(), u.identity())).collect();
        let identity = match &args.upstream {
            None => None,
            Some(u) if u.contains('|') => Some(u.clone()),
            Some(u) => match upstreams.iter().find(|(n, _)| n == u) {
                Some((_, id)) => Some(id.clone()),
                None => {
                    let known: Vec<String> = upstreams.iter().map(|(n, _)| format!("`{n}`")).collect();
                    bail!(
                        "no upstream named `{u}` in {}; configured: {}",
                        loaded.origin,
                        if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                    );
                }
            },
        };
        let kind = args.kind.map(|k| match k {
            KindArg::Tool => PinKind::Tool,
            KindArg::Prompt => PinKind::Prompt,
            KindArg::ResourceTemplate => PinKind::ResourceTemplate,
            KindArg::Instructions => PinKind::Instructions,
        });
        let (kind, name) = match (&args.tool, &args.name) {
            (Some(_), Some(_)) => bail!("`--tool` and `--name` cannot be used together"),
            (Some(t), None) => {
                if kind.is_some_and(|k| k != PinKind::Tool) {
                    bail!("`--tool` selects a tool; use `--name` with `--kind`");
                }
                (Some(PinKind::Tool), Some(t.clone()))
            }
            (None, n) => (kind, n.clone()),
        };
        Ok(Selection { upstreams, identity, kind, name })
    }

    fn matches_kind_name(&self, kind: PinKind, name: &str) -> bool {
        self.kind.is_none_or(|k| k == kind) && self.name.as_deref().is_none_or(|n| n == name)
    }

    /// The pins of the store that the selection names.
    async fn select(&self, store: &dyn Store) -> anyhow::Result<Vec<PinRecord>> {
        let all = store.list_pins(self.identity.as_deref()).await.context("cannot read the pin store")?;
        Ok(all.into_iter().filter(|r| self.matches_kind_name(r.key.kind, &r.key.name)).collect())
    }

    /// The configured name of an upstream identity, else the identity itself.
    fn upstream_label<'a>(&'a self, identity: &'a str) -> &'a str {
        self.upstreams.iter().find(|(_, id)| id == identity).map_or(identity, |(n, _)| n.as_str())
    }

    fn configured_name(&self, identity: &str) -> Option<&str> {
        self.upstreams.iter().find(|(_, id)| id == identity).map(|(n, _)| n.as_str())
    }

    /// The selection in words, for "nothing matched" messages.
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(k) = self.kind {
            parts.push(noun(k).to_owned());
        }
        if let Some(n) = &self.name {
            parts.push(format!("`{n}`"));
        }
        if let Some(id) = &self.identity {
            parts.push(format!("of upstream `{}`", self.upstream_label(id)));
        }
        if parts.is_empty() {
            "the store".to_owned()
        } else {
            parts.join(" ")
        }
    }

    /// "tool `add` of upstream `demo`".
    fn what(&self, r: &PinRecord) -> String {
        let upstream = self.upstream_label(&r.key.upstream);
        match r.key.kind {
            PinKind::Instructions => format!("the instructions of upstream `{upstream}`"),
            k => format!("{} `{}` of upstream `{upstream}`", noun(k), r.key.name),
        }
    }

    fn json(&self, r: &PinRecord) -> Value {
        json!({
            "upstream": self.configured_name(&r.key.upstream),
            "identity": r.key.upstream,
            "kind": r.key.kind.as_str(),
            "name": r.key.name,
            "state": r.state.as_str(),
            "hash": r.hash,
            "trusted_hash": r.trusted_hash,
            "first_seen": time(r.first_seen),
            "updated": time(r.updated),
        })
    }
}

/// Without `--all`, a command that changes pins must name exactly one.
fn exactly_one(ctx: &Selection, matched: &[PinRecord]) -> anyhow::Result<()> {
    if matched.len() > 1 {
        let names: Vec<String> = matched.iter().take(5).map(|r| ctx.what(r)).collect();
        bail!(
            "{} pins match {} ({}{}); narrow the selection with `--upstream`, `--kind`, `--tool` or `--name`, or pass `--all`",
            matched.len(),
            ctx.describe(),
            names.join(", "),
            if matched.len() > 5 { ", …" } else { "" }
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// list, diff

async fn list(ctx: &Selection, store: &dyn Store, format: Format) -> anyhow::Result<ExitCode> {
    let pins = ctx.select(store).await?;
    if pins.is_empty() {
        return nothing(format!("no pin matches {}", ctx.describe()));
    }
    match format {
        Format::Json => {
            let rows: Vec<Value> = pins
                .iter()
                .map(|r| {
                    let mut v = ctx.json(r);
                    if let Some(obj) = v.as_object_mut() {
                        obj.insert("definition".into(), parse_definition(&r.definition));
                    }
                    v
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&rows)?);
        }
        Format::Table => {
            let header = ["STATE", "KIND", "UPSTREAM", "NAME", "HASH", "FIRST SEEN", "UPDATED"].map(str::to_owned);
            let rows: Vec<[String; 7]> = pins
                .iter()
                .map(|r| {
                    [
                        r.state.as_str().to_owned(),
                        r.key.kind.as_str().to_owned(),
                        ctx.upstream_label(&r.key.upstream).to_owned(),
                        if r.key.name.is_empty() { "-".to_owned() } else { r.key.name.clone() },
                        short_hash(&r.hash),
                        time(r.first_seen),
                        time(r.updated),
                    ]
                })
                .collect();
            print_table(&header, &rows);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn diff(ctx: &Selection, store: &dyn Store, format: Format) -> anyhow::Result<ExitCode> {
    let pins: Vec<PinRecord> =
        ctx.select(store).await?.into_iter().filter(|r| r.state == PinState::Quarantined).collect();
    if pins.is_empty() {
        return nothing(format!("no quarantined pin matches {}", ctx.describe()));
    }
    let mut out = Vec::new();
    for r in &pins {
        let current = parse_definition(&r.definition);
        let trusted = r.trusted_definition.as_deref().map(parse_definition);
        let changes = trusted.as_ref().map(|t| {
            let mut d = Vec::new();
            moat_scan::pins::diff_values("", t, &current, &mut d);
            d
        });
        match format {
            Format::Json => {
                let mut v = ctx.json(r);
                if let Some(obj) = v.as_object_mut() {
                    let changes: Option<Vec<Value>> = changes.as_ref().map(|c| {
                        c.iter()
                            .map(|d| json!({"pointer": d.pointer, "trusted": d.pinned, "current": d.live}))
                            .collect()
                    });
                    obj.insert("changes".into(), json!(changes));
                    obj.insert("definition".into(), current.clone());
                }
                out.push(v);
            }
            Format::Table => print_diff(ctx, r, &current, changes.as_deref()),
        }
    }
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_diff(ctx: &Selection, r: &PinRecord, current: &Value, changes: Option<&[FieldDiff]>) {
    println!("quarantined: {} ({})", ctx.what(r), r.key.upstream);
    match changes {
        Some(changes) => {
            println!("  trusted  {}", r.trusted_hash.as_deref().unwrap_or("-"));
            println!("  current  {}", r.hash);
            for d in changes {
                println!("  {}", if d.pointer.is_empty() { "/" } else { &d.pointer });
                println!("    - {}", d.pinned.as_ref().map_or_else(|| "(absent)".to_owned(), compact));
                println!("    + {}", d.live.as_ref().map_or_else(|| "(absent)".to_owned(), compact));
            }
            if changes.len() >= moat_scan::pins::MAX_DIFFS {
                println!("  (only the first {} differences are shown)", moat_scan::pins::MAX_DIFFS);
            }
        }
        None => {
            println!("  current  {}", r.hash);
            println!("  no trusted definition to compare with (new, revoked, or withheld on first sight); current definition:");
            let pretty = serde_json::to_string_pretty(current).unwrap_or_default();
            for line in pretty.lines() {
                println!("    {line}");
            }
        }
    }
    let selector = match r.key.kind {
        PinKind::Tool => format!("--tool {}", shell_word(&r.key.name)),
        PinKind::Instructions => "--kind instructions".to_owned(),
        k => format!("--kind {} --name {}", k.as_str(), shell_word(&r.key.name)),
    };
    println!(
        "  approve: moat pins approve --upstream {} {selector} --hash {}",
        shell_word(ctx.upstream_label(&r.key.upstream)),
        r.hash
    );
    println!();
}

// ---------------------------------------------------------------------------------------
// approve, revoke

async fn approve(ctx: &Selection, store: &dyn Store, a: &ApproveArgs, format: Format) -> anyhow::Result<ExitCode> {
    let matched = ctx.select(store).await?;
    if matched.is_empty() {
        return nothing(format!("nothing approved: no pin matches {}", ctx.describe()));
    }
    if !a.all {
        exactly_one(ctx, &matched)?;
    }
    // `--all` releases what is quarantined; one named pin may also be a pinned definition the
    // gateway withholds (its metadata looks poisoned), which approving releases.
    let candidates: Vec<&PinRecord> = matched
        .iter()
        .filter(|r| if a.all { r.state == PinState::Quarantined } else { r.state != PinState::Approved })
        .collect();
    if candidates.is_empty() {
        return nothing(match matched.as_slice() {
            [one] => format!("nothing approved: {} is already approved", ctx.what(one)),
            _ => format!("nothing approved: no quarantined pin matches {}", ctx.describe()),
        });
    }
    let now = UnixMillis::now();
    let mut approved = Vec::new();
    for r in candidates {
        if let Some(h) = &a.hash {
            if *h != r.hash {
                eprintln!(
                    "not approved: {} has hash `{}`, not `{h}`; it changed since it was reviewed: review it again with `moat pins diff`",
                    ctx.what(r),
                    r.hash
                );
                continue;
            }
        }
        if store.approve_pin(&r.key, &r.hash, now).await.context("cannot update the pin store")? {
            approved.push(r);
        } else {
            eprintln!(
                "not approved: {} changed while it was being approved; review it again with `moat pins diff`",
                ctx.what(r)
            );
        }
    }
    report_changes(ctx, "approved", &approved, format)
}

async fn revoke(ctx: &Selection, store: &dyn Store, a: &RevokeArgs, format: Format) -> anyhow::Result<ExitCode> {
    let matched = ctx.select(store).await?;
    if matched.is_empty() {
        return nothing(format!("nothing revoked: no pin matches {}", ctx.describe()));
    }
    if !a.all {
        exactly_one(ctx, &matched)?;
    }
    let candidates: Vec<&PinRecord> = matched.iter().filter(|r| r.state != PinState::Quarantined).collect();
    if candidates.is_empty() {
        return nothing(match matched.as_slice() {
            [one] => format!("nothing revoked: {} is already quarantined", ctx.what(one)),
            _ => format!("nothing revoked: every pin matching {} is already quarantined", ctx.describe()),
        });
    }
    let now = UnixMillis::now();
    let mut revoked = Vec::new();
    for r in candidates {
        if store.revoke_pin(&r.key, now).await.context("cannot update the pin store")? {
            revoked.push(r);
        }
    }
    report_changes(ctx, "revoked", &revoked, format)
}

/// Prints what was approved or revoked (stdout); exit 1 when nothing was.
fn report_changes(ctx: &Selection, verb: &str, done: &[&PinRecord], format: Format) -> anyhow::Result<ExitCode> {
    if done.is_empty() {
        return nothing(format!("nothing {verb}"));
    }
    match format {
        Format::Json => {
            let rows: Vec<Value> = done.iter().map(|r| ctx.json(r)).collect();
            println!("{}", serde_json::to_string_pretty(&rows)?);
        }
        Format::Table => {
            for r in done {
                println!("{verb} {} ({})", ctx.what(r), r.hash);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------
// export, import

/// `--lock`, else the configuration's `[guards] lock_file`, else `moat.lock`, both relative
/// to the configuration file (as the gateway resolves `lock_file`).
fn lock_path(l: &LockArgs, loaded: &LoadedConfig) -> PathBuf {
    match &l.lock {
        Some(p) => p.clone(),
        None => {
            let configured = loaded.config.guards.lock_file.as_deref().unwrap_or(Path::new("moat.lock"));
            loaded.base_dir().join(configured)
        }
    }
}

async fn export(ctx: &Selection, store: &dyn Store, path: &Path) -> anyhow::Result<ExitCode> {
    // The lock goes with this configuration: by default, only its upstreams.
    let identities: Vec<String> = match &ctx.identity {
        Some(id) => vec![id.clone()],
        None => ctx.upstreams.iter().map(|(_, id)| id.clone()).collect(),
    };
    let mut lock = if path.exists() { read_lock(path)? } else { LockFile::default() };
    let mut written = 0usize;
    let mut skipped = Vec::new();
    for identity in &identities {
        let records = store.list_pins(Some(identity)).await.context("cannot read the pin store")?;
        // The lock's entries that the selection covers are replaced by what the store trusts.
        lock.remove_where(identity, |domain, name| {
            let kind = kind_of(domain);
            ctx.matches_kind_name(kind, name)
        });
        for r in records.iter().filter(|r| ctx.matches_kind_name(r.key.kind, &r.key.name)) {
            let trusted = match r.state {
                PinState::Pinned | PinState::Approved => Some((r.hash.as_str(), r.definition.as_str())),
                PinState::Quarantined => r.trusted_hash.as_deref().zip(r.trusted_definition.as_deref()),
            };
            let Some((hash, definition)) = trusted else {
                skipped.push(ctx.what(r));
                continue;
            };
            let domain = domain_of(r.key.kind);
            let definition: Value = serde_json::from_str(definition)
                .with_context(|| format!("the stored definition of {} is not JSON", ctx.what(r)))?;
            // INVARIANT: a lock's definition hashes to its `sha256` (LockFile::parse checks it).
            if pin_hash(domain, &definition) != hash {
                bail!(
                    "the stored definition of {} does not match its hash `{hash}`; refusing to export it",
                    ctx.what(r)
                );
            }
            lock.insert(identity, domain, &r.key.name, Pin { sha256: hash.to_owned(), definition: Some(definition) });
            written += 1;
        }
    }
    for s in &skipped {
        eprintln!("skipped {s}: it is quarantined and has no trusted definition");
    }
    if written == 0 {
        return nothing(format!("nothing exported: no trusted pin matches {}", ctx.describe()));
    }
    write_lock(path, &lock)?;
    eprintln!("wrote {written} pin(s) to `{}`", path.display());
    Ok(ExitCode::SUCCESS)
}

async fn import(ctx: &Selection, store: &dyn Store, path: &Path, format: Format) -> anyhow::Result<ExitCode> {
    let lock = read_lock(path)?;
    let matched = ctx.select(store).await?;
    let now = UnixMillis::now();
    let mut approved = Vec::new();
    for r in &matched {
        let Some(expected) = lock.expected_hash(&r.key.upstream, domain_of(r.key.kind), &r.key.name) else { continue };
        if expected != r.hash {
            eprintln!("not approved: {} has hash `{}`, the lock file names `{expected}`", ctx.what(r), r.hash);
            continue;
        }
        if r.state == PinState::Approved {
            continue;
        }
        // Approves only if the definition is still the one the lock names.
        if store.approve_pin(&r.key, expected, now).await.context("cannot update the pin store")? {
            approved.push(r);
        } else {
            eprintln!("not approved: {} changed while it was being approved", ctx.what(r));
        }
    }
    if approved.is_empty() {
        return nothing(format!(
            "nothing approved: no unapproved pin matching {} has the hash `{}` names",
            ctx.describe(),
            path.display()
        ));
    }
    report_changes(ctx, "approved", &approved, format)
}

fn read_lock(path: &Path) -> anyhow::Result<LockFile> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read lock file `{}`", path.display()))?;
    LockFile::parse(&text).with_context(|| format!("lock file `{}` is not valid", path.display()))
}

fn write_lock(path: &Path, lock: &LockFile) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, lock.to_json_string()).with_context(|| format!("cannot write `{}`", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write lock file `{}`", path.display()))
}

// ---------------------------------------------------------------------------------------
// Helpers

fn domain_of(kind: PinKind) -> PinDomain {
    match kind {
        PinKind::Tool => PinDomain::Tool,
        PinKind::Prompt => PinDomain::Prompt,
        PinKind::ResourceTemplate => PinDomain::ResourceTemplate,
        PinKind::Instructions => PinDomain::Instructions,
    }
}

fn kind_of(domain: PinDomain) -> PinKind {
    match domain {
        PinDomain::Tool => PinKind::Tool,
        PinDomain::Prompt => PinKind::Prompt,
        PinDomain::ResourceTemplate => PinKind::ResourceTemplate,
        PinDomain::Instructions => PinKind::Instructions,
    }
}

fn noun(kind: PinKind) -> &'static str {
    match kind {
        PinKind::Tool => "tool",
        PinKind::Prompt => "prompt",
        PinKind::ResourceTemplate => "resource template",
        PinKind::Instructions => "instructions",
    }
}

/// A stored definition (canonical JSON text); text that is not JSON is shown as a string.
fn parse_definition(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// `sha256:` and the first 12 hex digits.
fn short_hash(hash: &str) -> String {
    hash.char_indices().nth(19).map_or_else(|| hash.to_owned(), |(i, _)| hash.get(..i).unwrap_or(hash).to_owned())
}

fn time(t: UnixMillis) -> String {
    let ms = u64::try_from(t.0).unwrap_or(0);
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}

/// A word as a POSIX shell reads it back (quoted when it needs to be).
fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:@%+=,".contains(&b)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn print_table<const N: usize>(header: &[String; N], rows: &[[String; N]]) {
    let mut widths = header.each_ref().map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String; N]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header);
    for row in rows {
        line(row);
    }
}
