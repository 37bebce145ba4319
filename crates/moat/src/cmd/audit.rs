//! `moat audit verify|tail|query|export|keygen`: check and read the audit log (docs/audit.md).
//!
//! Every subcommand reads either a JSON-lines file (`--file`) or the store (`--store`,
//! default: the SQLite file under the user's data directory). Data goes to stdout; the
//! verdict of `verify` also sets the exit code: 0 verified, 1 broken, 2 could not check.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use clap::{Parser, Subcommand, ValueEnum};

use moat_audit::{verify_jsonl, verify_store, AuditRecord, AuditVerifyingKey, VerifyOptions, VerifyReport};
use moat_store::{AuditQuery, AuditRow, AuditStore, StoreUrl, UnixMillis};

/// Check and read the hash-chained audit log.
#[derive(Debug, Parser)]
pub struct Args {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the chain and the seals; name the first broken record. Exit 0 verified, 1 broken, 2 error.
    Verify(VerifyArgs),
    /// Print the newest records (oldest of them first).
    Tail(TailArgs),
    /// Print the records that match the filters, oldest first.
    Query(QueryArgs),
    /// Write entries as JSON lines (with their hashes, and seals when unfiltered) for another system.
    Export(QueryArgs),
    /// Create an Ed25519 key pair for sealing (`[audit] signing_key`).
    Keygen(KeygenArgs),
}

/// Where the log is.
#[derive(Debug, Clone, Parser)]
struct SourceArgs {
    /// A JSON-lines audit file (`[audit] jsonl`).
    #[arg(long, value_name = "PATH", conflicts_with = "store")]
    file: Option<PathBuf>,
    /// A store URL (`sqlite://PATH`); default: the SQLite file under the user's data directory.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
}

#[derive(Debug, Parser)]
struct VerifyArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Check only records at or after this time (RFC 3339, or an age like `24h`), trusting the link before it.
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// The public key that checks the seals' signatures: `file:PATH` or `env:NAME` (PEM from `moat audit keygen`).
    #[arg(long, value_name = "REF")]
    public_key: Option<String>,
    /// Fail when records after the last seal remain (use on the log of a stopped gateway: a clean stop seals).
    #[arg(long)]
    require_sealed: bool,
}

/// Filters shared by tail, query and export.
#[derive(Debug, Clone, Parser)]
struct FilterArgs {
    /// Only this principal (subject).
    #[arg(long)]
    principal: Option<String>,
    /// Only this tool, prompt or resource.
    #[arg(long)]
    tool: Option<String>,
    /// Only this decision.
    #[arg(long, value_enum)]
    decision: Option<DecisionArg>,
    /// Only records at or after this time (RFC 3339, or an age like `24h`).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only records before this time (RFC 3339, or an age like `1h`).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DecisionArg {
    Allow,
    Deny,
    Modify,
    Quarantine,
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
enum Format {
    /// One record (its JSON) a line.
    #[default]
    Json,
    /// Aligned columns for reading.
    Table,
}

#[derive(Debug, Parser)]
struct TailArgs {
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// How many records.
    #[arg(short = 'n', long, default_value_t = 20)]
    lines: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Debug, Parser)]
struct QueryArgs {
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// At most this many records (0: all).
    #[arg(long, default_value_t = 0)]
    limit: usize,
    /// Output format (`query` only; `export` always writes JSON lines).
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Debug, Parser)]
struct KeygenArgs {
    /// Where to write the private key (PKCS#8 PEM, created readable by its owner only).
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    /// Also write the public key (SPKI PEM) here; it is printed on stdout either way.
    #[arg(long, value_name = "PATH")]
    public_out: Option<PathBuf>,
    /// Replace an existing private key file.
    #[arg(long)]
    force: bool,
}

/// Runs `moat audit`.
pub fn run(args: Args) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match args.command {
            AuditCommand::Verify(a) => verify(a).await,
            AuditCommand::Tail(a) => tail(a).await.map(|()| ExitCode::SUCCESS),
            AuditCommand::Query(a) => query(a, false).await.map(|()| ExitCode::SUCCESS),
            AuditCommand::Export(a) => query(a, true).await.map(|()| ExitCode::SUCCESS),
            AuditCommand::Keygen(a) => keygen(a).map(|()| ExitCode::SUCCESS),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

// ---------------------------------------------------------------------------------------
// verify

async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let public_key = match &args.public_key {
        Some(reference) => Some(read_public_key(reference)?),
        None => None,
    };
    let options = VerifyOptions {
        public_key,
        since: args.since.as_deref().map(parse_time_arg).transpose()?,
        require_sealed: args.require_sealed,
    };
    let (name, report) = match &args.source.file {
        Some(path) => (path.display().to_string(), verify_jsonl(path, &options)?),
        None => {
            let (name, store) = open_audit_store(args.source.store.as_deref()).await?;
            (name, verify_store(&*store, &options).await?)
        }
    };
    print_report(&name, &report, &options);
    Ok(if report.is_ok() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn print_report(name: &str, report: &VerifyReport, options: &VerifyOptions) {
    let range = match (report.first_seq, report.last_seq) {
        (Some(a), Some(b)) => format!(" ({a} to {b})"),
        _ => String::new(),
    };
    let key = options.public_key.as_ref().map(|k| format!(" with key {}", k.key_id())).unwrap_or_default();
    match &report.problem {
        None => println!(
            "{name}: verified: {} records{range}, {} seals{key}, {} unsealed",
            report.records,
            report.seals,
            report.unsealed_records()
        ),
        Some(p) => println!("{name}: BROKEN at {p} ({} records before it verified)", report.records),
    }
    if options.public_key.is_none() && report.seals > 0 {
        eprintln!("warning: seal signatures were not checked; pass `--public-key` to check them");
    }
    if report.problem.is_none() && report.unsealed_records() > 0 && !options.require_sealed {
        eprintln!(
            "note: the last {} records are not sealed yet (a running gateway seals on its interval; `--require-sealed` makes this a failure)",
            report.unsealed_records()
        );
    }
}

fn read_public_key(reference: &str) -> anyhow::Result<AuditVerifyingKey> {
    let r = moat_config::SecretRef::parse(reference)
        .ok_or_else(|| anyhow!("`--public-key` must be `file:PATH` or `env:NAME`, not `{reference}`"))?;
    let secret = r.resolve(Path::new(".")).map_err(|e| anyhow!("{e}"))?;
    Ok(AuditVerifyingKey::from_key_bytes(secret.expose())?)
}

// ---------------------------------------------------------------------------------------
// tail, query, export

async fn tail(args: TailArgs) -> anyhow::Result<()> {
    let mut q = to_query(&args.filter)?;
    q.limit = args.lines;
    q.newest_first = true;
    let mut entries = read_records(&args.source, &q).await?;
    entries.reverse();
    print_records(&entries, args.format)
}

async fn query(args: QueryArgs, export: bool) -> anyhow::Result<()> {
    let mut q = to_query(&args.filter)?;
    q.limit = args.limit;
    let unfiltered = q == AuditQuery { limit: q.limit, ..AuditQuery::default() } && q.limit == 0;
    if !export {
        let entries = read_records(&args.source, &q).await?;
        return print_records(&entries, args.format);
    }
    let mut out = std::io::stdout().lock();
    if let (Some(path), true) = (&args.source.file, unfiltered) {
        // The whole file, as it is: it verifies on the other side.
        let mut f = std::fs::File::open(path).with_context(|| format!("cannot open `{}`", path.display()))?;
        std::io::copy(&mut f, &mut out)?;
        return Ok(());
    }
    if args.source.file.is_none() && unfiltered {
        let (_, store) = open_audit_store(args.source.store.as_deref()).await?;
        let rows = store.audit_records(0, 0).await?;
        let mut seals = store.audit_seals(0, 0).await?.into_iter().peekable();
        for row in rows {
            writeln!(out, "{{\"hash\":\"{}\",\"record\":{}}}", row.hash, row.body)?;
            while let Some(s) = seals.next_if(|s| s.seq <= row.seq) {
                writeln!(out, "{{\"seal\":{}}}", s.body)?;
            }
        }
        return Ok(());
    }
    // Filtered: records with their hashes, no seals (a subset cannot verify as a chain).
    for row in read_records(&args.source, &q).await? {
        writeln!(out, "{{\"hash\":\"{}\",\"record\":{}}}", row.hash, row.body)?;
    }
    Ok(())
}

fn to_query(f: &FilterArgs) -> anyhow::Result<AuditQuery> {
    Ok(AuditQuery {
        principal: f.principal.clone(),
        tool: f.tool.clone(),
        decision: f.decision.map(|d| {
            match d {
                DecisionArg::Allow => "allow",
                DecisionArg::Deny => "deny",
                DecisionArg::Modify => "modify",
                DecisionArg::Quarantine => "quarantine",
            }
            .to_owned()
        }),
        since: f.since.as_deref().map(parse_time_arg).transpose()?,
        until: f.until.as_deref().map(parse_time_arg).transpose()?,
        ..AuditQuery::default()
    })
}

/// The records matching `q`, from the file or the store.
async fn read_records(source: &SourceArgs, q: &AuditQuery) -> anyhow::Result<Vec<AuditRow>> {
    let Some(path) = &source.file else {
        let (_, store) = open_audit_store(source.store.as_deref()).await?;
        return Ok(store.query_audit(q).await?);
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        #[derive(serde::Deserialize)]
        struct RecordLine {
            hash: String,
            record: Box<serde_json::value::RawValue>,
        }
        let Ok(l) = serde_json::from_str::<RecordLine>(line) else { continue }; // seals
        let record: AuditRecord = serde_json::from_str(l.record.get())
            .with_context(|| format!("line {} of `{}` is not an audit record", i + 1, path.display()))?;
        let row = AuditRow {
            seq: record.seq,
            time: record.unix_millis().unwrap_or(UnixMillis(0)),
            principal: record.principal.map(|p| p.subject),
            tool: record.target,
            decision: record.decision.as_str().to_owned(),
            hash: l.hash,
            body: l.record.get().to_owned(),
        };
        if q.matches(&row) {
            rows.push(row);
        }
    }
    if q.newest_first {
        rows.reverse();
    }
    if q.limit > 0 {
        rows.truncate(q.limit);
    }
    Ok(rows)
}

fn print_records(rows: &[AuditRow], format: Format) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            for r in rows {
                writeln!(out, "{}", r.body)?;
            }
        }
        Format::Table => {
            writeln!(
                out,
                "{:>8}  {:<24}  {:<20}  {:<10}  {:<14}  {:<24}  RULES",
                "SEQ", "TIME", "PRINCIPAL", "DECISION", "METHOD", "UPSTREAM/TARGET"
            )?;
            for r in rows {
                let rec: Option<AuditRecord> = serde_json::from_str(&r.body).ok();
                let (time, method, target, rules) = match &rec {
                    Some(rec) => (
                        rec.time.clone(),
                        rec.method.clone(),
                        format!("{}/{}", rec.upstream.as_deref().unwrap_or("-"), rec.target.as_deref().unwrap_or("-")),
                        rec.rules.join(","),
                    ),
                    None => Default::default(),
                };
                writeln!(
                    out,
                    "{:>8}  {:<24}  {:<20}  {:<10}  {:<14}  {:<24}  {}",
                    r.seq,
                    time,
                    r.principal.as_deref().unwrap_or("-"),
                    r.decision,
                    method,
                    target,
                    rules
                )?;
            }
        }
    }
    Ok(())
}

/// Opens the audit store of a store URL. A SQLite file must already exist: reading the log
/// never creates an empty one.
async fn open_audit_store(url: Option<&str>) -> anyhow::Result<(String, Arc<dyn AuditStore>)> {
    let url = match url {
        Some(u) => StoreUrl::parse(u)?,
        None => StoreUrl::Sqlite { path: moat_store_open::default_sqlite_path()?, synchronous_full: false },
    };
    if let StoreUrl::Sqlite { path, .. } = &url {
        if !path.exists() {
            bail!("no store at `{}`; pass `--store sqlite://PATH` or `--file PATH`", path.display());
        }
    }
    let name = url.display_redacted();
    let store = moat_store_open::open_parsed(&url).await?;
    let audit =
        store.audit().ok_or_else(|| anyhow!("the {} store keeps no audit records; use `--file`", store.backend()))?;
    Ok((name, audit))
}

/// RFC 3339 (`2026-01-31T12:00:00Z`), or an age (`24h`, `30m`) counted back from now.
fn parse_time_arg(s: &str) -> anyhow::Result<UnixMillis> {
    let t = if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        t
    } else if let Ok(age) = humantime::parse_duration(s) {
        SystemTime::now().checked_sub(age).unwrap_or(UNIX_EPOCH)
    } else {
        bail!("invalid time `{s}`; expected RFC 3339 (`2026-01-31T12:00:00Z`) or an age (`24h`)");
    };
    let ms = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_millis();
    Ok(UnixMillis(i64::try_from(ms).unwrap_or(i64::MAX)))
}

// ---------------------------------------------------------------------------------------
// keygen

fn keygen(args: KeygenArgs) -> anyhow::Result<()> {
    let pair = moat_audit::generate_key_pair()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if args.force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(&args.out).with_context(|| {
        format!("cannot create `{}` (it may exist already: `--force` replaces it)", args.out.display())
    })?;
    f.write_all(pair.private_pem.as_bytes())?;
    f.sync_all()?;
    if let Some(path) = &args.public_out {
        std::fs::write(path, &pair.public_pem).with_context(|| format!("cannot write `{}`", path.display()))?;
    }
    print!("{}", pair.public_pem);
    eprintln!("wrote the private key to `{}` (key id {})", args.out.display(), pair.key_id);
    eprintln!("seal with:   [audit] signing_key = \"file:{}\"", args.out.display());
    eprintln!("verify with: moat audit verify --public-key file:PUBLIC.pem");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_rfc3339_or_age() {
        assert_eq!(parse_time_arg("2025-11-26T15:31:02.123Z").unwrap(), UnixMillis(1_764_171_062_123));
        let a_day_ago = parse_time_arg("24h").unwrap();
        let expected = UnixMillis::now().0 - 86_400_000;
        assert!((a_day_ago.0 - expected).abs() < 5_000);
        assert!(parse_time_arg("yesterday").is_err());
    }

    #[test]
    fn flags_parse() {
        use clap::CommandFactory;
        Args::command().debug_assert();
        let a = Args::try_parse_from([
            "audit",
            "verify",
            "--file",
            "a.jsonl",
            "--public-key",
            "file:k.pem",
            "--require-sealed",
        ])
        .unwrap();
        assert!(matches!(a.command, AuditCommand::Verify(VerifyArgs { require_sealed: true, .. })));
        assert!(Args::try_parse_from(["audit", "tail", "--file", "a", "--store", "sqlite://b"]).is_err());
        let q =
            Args::try_parse_from(["audit", "query", "--decision", "deny", "--tool", "x", "--format", "table"]).unwrap();
        assert!(matches!(q.command, AuditCommand::Query(_)));
    }
}
