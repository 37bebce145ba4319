//! `moat inspect [FILE|-]`: scan text the way the gateway scans a tool result (injection,
//! hidden text, secrets, PII) and print the verdict and findings. With `--jsonl`, each input line
//! is `{"id": ..., "text": ...}` and each output line `{"id": ..., "verdict": ..., "findings": [...]}`.
//! Exit 0 after a scan (whatever it found), 2 on bad input.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;
use moat_detect::{Detector, Finding, Verdict};
use serde_json::{json, Value};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The text to scan; `-` or nothing reads stdin.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Output format for a single text (`--jsonl` always writes JSON lines).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Treat the input as JSON lines `{"id": ..., "text": ...}` and answer one JSON line each.
    #[arg(long)]
    pub jsonl: bool,
}

/// How `moat inspect` writes its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Verdict and one line per finding, for people.
    Text,
    /// `{"verdict": ..., "findings": [...]}`.
    Json,
}

pub fn run(args: Args) -> ExitCode {
    match run_inner(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}

fn open_input(file: Option<&PathBuf>) -> Result<Box<dyn Read>, String> {
    match file {
        Some(p) if p.as_os_str() != "-" => std::fs::File::open(p)
            .map(|f| Box::new(f) as Box<dyn Read>)
            .map_err(|e| format!("cannot read `{}`: {e}", p.display())),
        _ => Ok(Box::new(std::io::stdin())),
    }
}

fn run_inner(args: &Args) -> Result<(), String> {
    let detector = Detector::builtin().map_err(|e| format!("built-in rules failed to load: {e}"))?;
    let input = open_input(args.file.as_ref())?;
    let mut stdout = std::io::stdout().lock();
    let write_err = |e: std::io::Error| format!("cannot write output: {e}");
    if args.jsonl {
        for (n, line) in BufReader::new(input).lines().enumerate() {
            let line = line.map_err(|e| format!("cannot read input line {}: {e}", n + 1))?;
            if line.trim().is_empty() {
                continue;
            }
            let item: Value =
                serde_json::from_str(&line).map_err(|e| format!("input line {} is not valid JSON: {e}", n + 1))?;
            let text = item
                .get("text")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("input line {} has no string `text`", n + 1))?;
            let id = item.get("id").cloned().unwrap_or(Value::Null);
            let findings = detector.scan_text(text);
            let out = json!({ "id": id, "verdict": Verdict::of(&findings), "findings": findings });
            writeln!(stdout, "{out}").map_err(write_err)?;
        }
        return stdout.flush().map_err(write_err);
    }
    let mut bytes = Vec::new();
    let mut input = input;
    input.read_to_end(&mut bytes).map_err(|e| format!("cannot read input: {e}"))?;
    let text = String::from_utf8(bytes)
        .map_err(|e| format!("input is not UTF-8 (invalid byte at offset {})", e.utf8_error().valid_up_to()))?;
    let findings = detector.scan_text(&text);
    let verdict = Verdict::of(&findings);
    match args.format {
        Format::Json => {
            let out = json!({ "verdict": verdict, "findings": findings });
            writeln!(stdout, "{out}").map_err(write_err)?;
        }
        Format::Text => {
            writeln!(stdout, "verdict: {verdict} ({} findings)", findings.len()).map_err(write_err)?;
            for f in &findings {
                writeln!(stdout, "{}", text_line(f)).map_err(write_err)?;
            }
        }
    }
    stdout.flush().map_err(write_err)
}

fn text_line(f: &Finding) -> String {
    let at = f.span.as_ref().map(|s| format!(" at bytes {}..{}", s.start, s.end)).unwrap_or_default();
    format!("{:<8} {}{at}: {}\n         evidence: {}", f.severity, f.rule, f.message, f.evidence)
}
