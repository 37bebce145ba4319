//! What a run prints: machine facts, one table per client count, what the gateway adds,
//! the targets met or missed, and the median over runs.

use std::path::Path;
use std::time::Duration;

use crate::procs::{IdleRss, Target};

/// Issue 3's targets.
const TARGET_P50_ADD_MS: f64 = 0.2;
const TARGET_P99_ADD_MS: f64 = 1.0;
const TARGET_THROUGHPUT_RATIO: f64 = 0.5;
const TARGET_THROUGHPUT_CLIENTS: usize = 16;
const TARGET_RSS_MIB: f64 = 50.0;

/// One measurement of one target at one client count.
#[derive(Debug, Clone)]
pub struct LoadResult {
    pub target: Target,
    pub clients: usize,
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

impl LoadResult {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    fn p50_ms(&self) -> f64 {
        self.p50_ns as f64 / 1e6
    }
    fn p99_ms(&self) -> f64 {
        self.p99_ns as f64 / 1e6
    }
}

/// Everything one run measured.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub loads: Vec<LoadResult>,
    pub idle: Vec<IdleRss>,
}

impl RunResult {
    fn find(&self, target: Target, clients: usize) -> Option<&LoadResult> {
        self.loads.iter().find(|l| l.target == target && l.clients == clients)
    }
    fn client_counts(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self.loads.iter().map(|l| l.clients).collect();
        v.dedup();
        v
    }
}

/// The figures compared across runs, per (target, clients).
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Gateway minus direct, in ms; ratio of gateway to direct throughput.
    add_p50_ms: Option<f64>,
    add_p99_ms: Option<f64>,
    ratio: Option<f64>,
}

fn figures(run: &RunResult, l: &LoadResult) -> Figures {
    let direct = run.find(Target::Direct, l.clients).filter(|_| l.target != Target::Direct);
    Figures {
        rps: l.rps(),
        p50_ms: l.p50_ms(),
        p99_ms: l.p99_ms(),
        add_p50_ms: direct.map(|d| l.p50_ms() - d.p50_ms()),
        add_p99_ms: direct.map(|d| l.p99_ms() - d.p99_ms()),
        ratio: direct.map(|d| l.rps() / d.rps().max(1e-9)),
    }
}

pub fn print_machine(moat: &Path, command: &str) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = mem.lines().find_map(|l| l.strip_prefix("MemTotal:")).map(|v| v.trim().to_string()).unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!("# moat-loadgen");
    println!("command:  {command}");
    println!("binary:   {}", moat.display());
    println!("machine:  {cpus} CPUs ({model}), {mem} memory, Linux {}", kernel.trim());
    println!("load avg: {}", load.trim());
    println!();
}

pub fn print_run(n: usize, run: &RunResult) {
    println!("## run {n}");
    for clients in run.client_counts() {
        println!();
        println!("{clients} client(s):");
        println!("  {:<14} {:>10} {:>9} {:>9} {:>9} {:>8}", "target", "req/s", "p50 ms", "p99 ms", "max ms", "errors");
        for l in run.loads.iter().filter(|l| l.clients == clients) {
            println!(
                "  {:<14} {:>10.0} {:>9.3} {:>9.3} {:>9.3} {:>8}",
                l.target.to_string(),
                l.rps(),
                l.p50_ms(),
                l.p99_ms(),
                l.max_ns as f64 / 1e6,
                l.errors
            );
        }
        for l in run.loads.iter().filter(|l| l.clients == clients && l.target != Target::Direct) {
            let f = figures(run, l);
            if let (Some(a50), Some(a99), Some(r)) = (f.add_p50_ms, f.add_p99_ms, f.ratio) {
                println!("  {} adds {a50:+.3} ms at p50, {a99:+.3} ms at p99; throughput {r:.2}× direct", l.target);
            }
        }
    }
    print_idle(&run.idle);
    println!();
}

fn print_idle(idle: &[IdleRss]) {
    for i in idle {
        println!(
            "idle sessions: {} with {} sessions: VmRSS {:.1} MiB (with one session: {:.1} MiB; {:.1} KiB per session)",
            i.target,
            i.sessions,
            i.after_kib as f64 / 1024.0,
            i.before_kib as f64 / 1024.0,
            (i.after_kib.saturating_sub(i.before_kib)) as f64 / i.sessions.max(1) as f64
        );
    }
}

/// The median of each figure over runs, and the targets checked against those medians.
pub fn print_median(runs: &[RunResult]) {
    let Some(first) = runs.first() else { return };
    println!("## median of {} runs", runs.len());
    let mut checks: Vec<String> = Vec::new();
    for clients in first.client_counts() {
        println!();
        println!("{clients} client(s):");
        println!(
            "  {:<14} {:>10} {:>9} {:>9} {:>12} {:>12} {:>8}",
            "target", "req/s", "p50 ms", "p99 ms", "+p50 ms", "+p99 ms", "ratio"
        );
        for l in first.loads.iter().filter(|l| l.clients == clients) {
            let all: Vec<Figures> =
                runs.iter().filter_map(|r| r.find(l.target, clients).map(|x| figures(r, x))).collect();
            let m = |f: fn(&Figures) -> Option<f64>| median(all.iter().filter_map(f).collect());
            let rps = m(|f| Some(f.rps));
            let p50 = m(|f| Some(f.p50_ms));
            let p99 = m(|f| Some(f.p99_ms));
            let a50 = m(|f| f.add_p50_ms);
            let a99 = m(|f| f.add_p99_ms);
            let ratio = m(|f| f.ratio);
            let opt = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |v| format!("{v:+.p$}"));
            println!(
                "  {:<14} {:>10.0} {:>9.3} {:>9.3} {:>12} {:>12} {:>8}",
                l.target.to_string(),
                rps.unwrap_or(0.0),
                p50.unwrap_or(0.0),
                p99.unwrap_or(0.0),
                opt(a50, 3),
                opt(a99, 3),
                ratio.map_or("-".to_string(), |r| format!("{r:.2}"))
            );
            if l.target == Target::Direct {
                continue;
            }
            if clients == 1 {
                if let (Some(a50), Some(a99)) = (a50, a99) {
                    checks.push(verdict(
                        a50 <= TARGET_P50_ADD_MS,
                        &format!("{} with 1 client adds ≤ {TARGET_P50_ADD_MS} ms at p50: {a50:+.3} ms", l.target),
                    ));
                    checks.push(verdict(
                        a99 <= TARGET_P99_ADD_MS,
                        &format!("{} with 1 client adds ≤ {TARGET_P99_ADD_MS} ms at p99: {a99:+.3} ms", l.target),
                    ));
                }
            }
            if clients == TARGET_THROUGHPUT_CLIENTS {
                if let Some(r) = ratio {
                    checks.push(verdict(
                        r >= TARGET_THROUGHPUT_RATIO,
                        &format!(
                            "{} with {clients} clients ≥ {TARGET_THROUGHPUT_RATIO}× direct throughput: {r:.2}×",
                            l.target
                        ),
                    ));
                }
            }
        }
    }
    let idle: Vec<&IdleRss> = runs.iter().flat_map(|r| r.idle.iter()).collect();
    for target in [Target::GatewayHttp, Target::GatewayStdio] {
        let of: Vec<&&IdleRss> = idle.iter().filter(|i| i.target == target).collect();
        let Some(sessions) = of.first().map(|i| i.sessions) else { continue };
        let after = median(of.iter().map(|i| i.after_kib as f64 / 1024.0).collect()).unwrap_or(0.0);
        let before = median(of.iter().map(|i| i.before_kib as f64 / 1024.0).collect()).unwrap_or(0.0);
        println!();
        println!("idle sessions: {target} with {sessions} sessions: VmRSS {after:.1} MiB (with one session: {before:.1} MiB)");
        checks.push(verdict(
            after <= TARGET_RSS_MIB,
            &format!("{target} VmRSS ≤ {TARGET_RSS_MIB} MiB with {sessions} idle sessions: {after:.1} MiB"),
        ));
    }
    println!();
    println!("targets (issue 3), on the medians:");
    for c in checks {
        println!("  {c}");
    }
}

fn verdict(ok: bool, what: &str) -> String {
    format!("{} {what}", if ok { "MET   " } else { "MISSED" })
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v.get(mid).copied()
    } else {
        Some((v.get(mid - 1).copied()? + v.get(mid).copied()?) / 2.0)
    }
}
