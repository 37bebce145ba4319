//! `moat-loadgen`: what the gateway costs, measured against the same upstream without it.
//!
//! One run starts `moat demo-server --http` and two gateways in front of it (one with the
//! demo server as an HTTP upstream, one with `moat demo-server` as a stdio upstream), then,
//! for each client count, drives `tools/call echo` with a fixed text at each target in turn
//! over keep-alive HTTP/1.1 connections, one MCP session per client. Latencies go into HDR
//! histograms; the report gives requests per second, p50 and p99 for each target, and what
//! the gateway adds. Last, it opens idle sessions on fresh gateways and reads their resident
//! memory from `/proc/PID/status`.
//!
//! Every process it starts leads its own process group and is killed (group and all) when
//! the harness is done, so a gateway's stdio upstream never outlives it.
//!
//! This is a benchmark, not a test: it asserts nothing, and says plainly which of the
//! issue's targets a run met.

mod client;
mod procs;
mod report;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use hdrhistogram::Histogram;

use crate::client::McpClient;
use crate::procs::{Processes, Target};
use crate::report::{LoadResult, RunResult};

/// Drive `tools/call echo` directly against `moat demo-server --http` and through `moat gateway`
/// (HTTP and stdio upstream) in the same run, and report what the gateway adds.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Path of the `moat` binary to measure (build it with `cargo build --release -p moat`).
    #[arg(long, value_name = "PATH")]
    moat: PathBuf,
    /// Concurrent clients, as a comma-separated list; each count is measured in turn.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    clients: Vec<usize>,
    /// Measured seconds per target and client count (ignored with `--requests`).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Measure this many requests per target and client count (split over the clients)
    /// instead of a fixed duration.
    #[arg(long)]
    requests: Option<u64>,
    /// Unmeasured seconds of load before each measurement.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Size of the echoed text, in bytes.
    #[arg(long, default_value_t = 1024)]
    text_bytes: usize,
    /// Idle sessions to open on a fresh gateway before its resident memory is read (0: skip).
    #[arg(long, default_value_t = 1000)]
    idle_sessions: usize,
    /// Complete runs; with several, the report ends with the median of each figure.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Start `moat demo-server --http` with this library in `LD_PRELOAD` (see
    /// `crates/moat-loadgen/nodelay/nodelay.c`: it turns off Nagle's algorithm on the demo
    /// server's accepted sockets, which otherwise add a delayed-ACK wait to each request).
    #[arg(long, value_name = "PATH")]
    demo_nodelay_preload: Option<PathBuf>,
    /// Targets to measure, comma-separated: `direct`, `gateway-http`, `gateway-stdio`.
    #[arg(long, value_delimiter = ',', default_value = "direct,gateway-http,gateway-stdio")]
    targets: Vec<Target>,
    /// Clients accept JSON answers only (`Accept: application/json`) instead of JSON or an
    /// event stream, to measure what the gateway's resumable streams cost.
    #[arg(long)]
    json_only: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads.max(1)).enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("error: cannot start the runtime: {e}");
                return ExitCode::from(2);
            }
        };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<()> {
    if args.clients.is_empty() || args.clients.contains(&0) {
        bail!("`--clients` needs one or more counts above zero");
    }
    let moat = std::fs::canonicalize(&args.moat)
        .with_context(|| format!("cannot find the moat binary `{}`", args.moat.display()))?;
    if let Some(p) = &args.demo_nodelay_preload {
        if !p.is_file() {
            bail!("cannot find the preload library `{}`", p.display());
        }
    }
    report::print_machine(&moat, &args_line());
    let text: Arc<str> = "x".repeat(args.text_bytes).into();

    let mut runs = Vec::new();
    for run in 1..=args.runs.max(1) {
        let procs = Processes::start(&moat, &args.targets, args.demo_nodelay_preload.as_deref()).await?;
        let mut loads = Vec::new();
        for &clients in &args.clients {
            for target in &args.targets {
                let addr = procs.addr(*target)?;
                let r = load(addr, clients, &args, text.clone())
                    .await
                    .with_context(|| format!("load on {target} with {clients} clients"))?;
                loads.push(LoadResult { target: *target, clients, ..r });
            }
        }
        let idle = if args.idle_sessions > 0 { procs.idle_rss(args.idle_sessions).await? } else { Vec::new() };
        procs.stop();
        let result = RunResult { loads, idle };
        report::print_run(run, &result);
        runs.push(result);
    }
    if runs.len() > 1 {
        report::print_median(&runs);
    }
    Ok(())
}

fn args_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

/// One measurement: `clients` sessions, each on its own keep-alive connection, calling
/// `echo` back to back.
async fn load(addr: SocketAddr, clients: usize, args: &Args, text: Arc<str>) -> Result<LoadResult> {
    let mut sessions = Vec::with_capacity(clients);
    for _ in 0..clients {
        let mut c = McpClient::connect(addr, "/mcp").await?;
        if args.json_only {
            c.accept = "application/json";
        }
        c.initialize().await?;
        sessions.push(c);
    }
    let warmup = Duration::from_secs_f64(args.warmup);
    let duration = Duration::from_secs_f64(args.duration);
    let per_client = args.requests.map(|n| n.div_ceil(clients as u64));
    let start = Instant::now() + Duration::from_millis(20);
    let measure_from = start + warmup;
    let measure_until = per_client.map_or(measure_from + duration, |_| measure_from + Duration::from_secs(3600));

    let mut tasks = Vec::with_capacity(clients);
    for mut c in sessions {
        let text = text.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = new_histogram();
            let mut errors = 0u64;
            let mut first_error: Option<String> = None;
            let mut measured = 0u64;
            let mut last_done = measure_from;
            tokio::time::sleep_until(start.into()).await;
            let mut id = 10u64;
            loop {
                let t0 = Instant::now();
                if t0 >= measure_until || per_client.is_some_and(|n| measured >= n) {
                    break;
                }
                id += 1;
                let r = c.call_echo(id, &text).await;
                let t1 = Instant::now();
                if t0 >= measure_from {
                    match r {
                        Ok(()) => {
                            let _ = hist.record(u64::try_from((t1 - t0).as_nanos()).unwrap_or(u64::MAX).max(1));
                            measured += 1;
                            last_done = t1;
                        }
                        Err(e) => {
                            errors += 1;
                            first_error.get_or_insert_with(|| format!("{e:#}"));
                            if c.is_closed() {
                                break;
                            }
                        }
                    }
                } else if let Err(e) = r {
                    if c.is_closed() {
                        return (hist, 0, 1, Some(format!("{e:#}")), measure_from);
                    }
                }
            }
            (hist, measured, errors, first_error, last_done)
        }));
    }
    let mut hist = new_histogram();
    let mut count = 0;
    let mut errors = 0;
    let mut first_error = None;
    let mut end = measure_from;
    for t in tasks {
        let (h, n, e, fe, last) = t.await.context("a client task failed")?;
        hist.add(&h).context("cannot merge histograms")?;
        count += n;
        errors += e;
        if first_error.is_none() {
            first_error = fe;
        }
        end = end.max(last);
    }
    let elapsed = if per_client.is_some() { end.saturating_duration_since(measure_from) } else { duration };
    if let Some(e) = &first_error {
        eprintln!("warning: {errors} failed calls on {addr} with {clients} clients; first: {e}");
    }
    Ok(LoadResult {
        target: Target::Direct,
        clients,
        requests: count,
        errors,
        elapsed,
        p50_ns: hist.value_at_quantile(0.50),
        p99_ns: hist.value_at_quantile(0.99),
        max_ns: hist.max(),
    })
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 60 s at 3 significant digits.
    #[expect(clippy::expect_used, reason = "constant, valid bounds")]
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("valid histogram bounds")
}
