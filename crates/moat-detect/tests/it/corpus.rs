//! Precision, recall and false-positive rate per category over the corpus in `tests/corpus/`
//! (real MCP servers' tools/list results, published attacks, benign docs, hard negatives).
//! Fails below the targets of issue 4. Run with `--nocapture` to see the figures:
//!
//! ```text
//! cargo test -p moat-detect --test corpus -- --nocapture
//! ```

use std::path::PathBuf;

use moat_detect::{Detector, Finding, Severity};
use serde_json::Value;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus")
}

fn jsonl(rel: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(corpus_dir().join(rel)).unwrap();
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A finding that flags an item: medium or above (the `warn` and `fail` verdicts).
fn flags(f: &Finding, families: &[&str]) -> bool {
    f.severity >= Severity::Medium && families.iter().any(|fam| f.rule.starts_with(fam))
}

const TOOL_FAMILIES: [&str; 3] = ["MOAT-TP-", "MOAT-PI-", "MOAT-HID-"];
const INJECTION_FAMILIES: [&str; 3] = ["MOAT-PI-", "MOAT-TP-", "MOAT-HID-"];

#[derive(Default)]
struct Tally {
    pos: usize,
    tp: usize,
    neg: usize,
    fp: usize,
    misses: Vec<String>,
    false_positives: Vec<String>,
}

impl Tally {
    fn recall(&self) -> f64 {
        self.tp as f64 / self.pos.max(1) as f64
    }
    fn fpr(&self) -> f64 {
        self.fp as f64 / self.neg.max(1) as f64
    }
    fn precision(&self) -> f64 {
        self.tp as f64 / (self.tp + self.fp).max(1) as f64
    }
    fn print(&self, name: &str) {
        println!(
            "{name}: recall {:.1}% ({}/{}), false positives {:.2}% ({}/{}), precision {:.1}%",
            100.0 * self.recall(),
            self.tp,
            self.pos,
            100.0 * self.fpr(),
            self.fp,
            self.neg,
            100.0 * self.precision()
        );
        for m in &self.misses {
            println!("    missed: {m}");
        }
        for m in &self.false_positives {
            println!("    false positive: {m}");
        }
    }
}

fn first_flag(findings: &[Finding], families: &[&str]) -> Option<String> {
    findings.iter().find(|f| flags(f, families)).map(|f| format!("{} {} `{}`", f.rule, f.location, f.evidence))
}

#[test]
fn corpus_meets_targets() {
    let d = Detector::builtin().unwrap();

    // --- Tool poisoning: published and variant malicious tools vs real servers' tools.
    let mut tools = Tally::default();
    let mut split: [(usize, usize); 4] = [(0, 0); 4]; // real, variant, dev, heldout
    for item in jsonl("tools/malicious.jsonl") {
        let id = item["id"].as_str().unwrap().to_owned();
        let findings = d.scan_tool(&item["tool"]);
        let hit = first_flag(&findings, &TOOL_FAMILIES).is_some();
        tools.pos += 1;
        let variant = item["variant"].as_bool().unwrap();
        let heldout = item["split"] == "heldout";
        for (k, on) in [(0, !variant), (1, variant), (2, !heldout), (3, heldout)] {
            if on {
                split[k].0 += 1;
                split[k].1 += usize::from(hit);
            }
        }
        if hit {
            tools.tp += 1;
        } else {
            tools.misses.push(id);
        }
    }
    let mut servers = 0;
    let mut server_meta = Tally::default();
    let mut entries: Vec<_> =
        std::fs::read_dir(corpus_dir().join("tools/benign")).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let pkg = doc["source"]["package"].as_str().unwrap().to_owned();
        servers += 1;
        for tool in doc["tools"].as_array().unwrap() {
            tools.neg += 1;
            if let Some(why) = first_flag(&d.scan_tool(tool), &TOOL_FAMILIES) {
                tools.fp += 1;
                tools.false_positives.push(format!("{pkg} {}: {why}", tool["name"]));
            }
        }
        let mut meta: Vec<Finding> = Vec::new();
        if let Some(i) = doc["instructions"].as_str() {
            meta.extend(d.scan_server_instructions(i));
        }
        for p in doc["prompts"].as_array().into_iter().flatten() {
            meta.extend(d.scan_prompt(p));
        }
        for t in doc["resourceTemplates"].as_array().into_iter().flatten() {
            meta.extend(d.scan_resource_template(t));
        }
        server_meta.neg += 1;
        if let Some(why) = first_flag(&meta, &TOOL_FAMILIES) {
            server_meta.fp += 1;
            server_meta.false_positives.push(format!("{pkg}: {why}"));
        }
    }
    println!("== tool poisoning ({servers} real servers)");
    tools.print("tool definitions");
    let pct = |(n, k): (usize, usize)| 100.0 * k as f64 / n.max(1) as f64;
    println!(
        "  recall by origin: published {:.1}% ({}/{}), variants {:.1}% ({}/{}); by split: dev {:.1}% ({}/{}), held-out {:.1}% ({}/{})",
        pct(split[0]), split[0].1, split[0].0, pct(split[1]), split[1].1, split[1].0,
        pct(split[2]), split[2].1, split[2].0, pct(split[3]), split[3].1, split[3].0
    );
    server_meta.print("server instructions, prompts and resource templates (benign servers)");

    // --- Injection in tool outputs.
    let mut inj = Tally::default();
    let mut inj_split = [(0usize, 0usize); 2];
    for item in jsonl("text/injection.jsonl") {
        let hit = first_flag(&d.scan_text(item["text"].as_str().unwrap()), &INJECTION_FAMILIES).is_some();
        inj.pos += 1;
        let k = usize::from(item["split"] == "heldout");
        inj_split[k].0 += 1;
        inj_split[k].1 += usize::from(hit);
        if hit {
            inj.tp += 1;
        } else {
            inj.misses.push(item["id"].as_str().unwrap().to_owned());
        }
    }
    let mut hard = Tally::default();
    for (file, tally) in [("text/benign.jsonl", None), ("text/hard-negatives.jsonl", Some(()))] {
        for item in jsonl(file) {
            let why = first_flag(&d.scan_text(item["text"].as_str().unwrap()), &INJECTION_FAMILIES);
            inj.neg += 1;
            if tally.is_some() {
                hard.neg += 1;
            }
            if let Some(why) = why {
                inj.fp += 1;
                let line = format!("{} ({}): {why}", item["id"].as_str().unwrap(), item["source"].as_str().unwrap());
                if tally.is_some() {
                    hard.fp += 1;
                    hard.false_positives.push(line.clone());
                }
                inj.false_positives.push(line);
            }
        }
    }
    println!("== injection in tool outputs");
    inj.print("outputs (benign = docs + hard negatives)");
    println!(
        "  recall by split: dev {:.1}% ({}/{}), held-out {:.1}% ({}/{}); hard negatives alone: {:.1}% false positives ({}/{})",
        pct(inj_split[0]), inj_split[0].1, inj_split[0].0, pct(inj_split[1]), inj_split[1].1, inj_split[1].0,
        100.0 * hard.fpr(), hard.fp, hard.neg
    );
    let mut bipia = Tally::default();
    for item in jsonl("text/bipia-text-attacks.jsonl") {
        bipia.pos += 1;
        if first_flag(&d.scan_text(item["text"].as_str().unwrap()), &INJECTION_FAMILIES).is_some() {
            bipia.tp += 1;
        }
    }
    println!(
        "== BIPIA text attacks (informational, no target): recall {:.1}% ({}/{})",
        100.0 * bipia.recall(),
        bipia.tp,
        bipia.pos
    );

    // --- Rule negative examples: no finding of their own rule (also checked in tests/rules.rs).
    let negatives: usize = d.rules().map(|r| r.negative_examples.len()).sum();
    let problems = d.check_examples();
    let neg_fp = problems.iter().filter(|p| p.contains("negative example")).count();
    println!("== rule negative examples: {neg_fp} false positives out of {negatives}");

    assert!(tools.recall() >= 0.95, "tool poisoning recall {:.3} < 0.95", tools.recall());
    assert!(tools.fpr() <= 0.02, "tool poisoning false-positive rate {:.3} > 0.02", tools.fpr());
    assert!(inj.recall() >= 0.90, "injection recall {:.3} < 0.90", inj.recall());
    assert!(inj.fpr() <= 0.02, "injection false-positive rate {:.3} > 0.02", inj.fpr());
    assert_eq!(neg_fp, 0, "rule negative examples matched: {problems:?}");
}
