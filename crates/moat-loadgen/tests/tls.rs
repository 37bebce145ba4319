//! `moat gateway` over TLS: HTTPS `initialize` works, ALPN picks HTTP/2 when the client offers
//! it (and HTTP/1.1 when that is all it offers), and a replaced certificate is served to new
//! connections without a restart (the gateway checks the files every 10 s).
//!
//! Needs the `moat` binary: `MOAT_BIN`, as `scripts/test` exports it, else the debug binary in
//! the target directory. Without it the test prints why and passes, unless
//! `MOAT_REQUIRE_PEERS=1` (then it fails).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SerialNumber,
};

/// The gateway polls every 10 s; allow two polls and a slow machine.
const RELOAD_WAIT: Duration = Duration::from_secs(25);

fn moat_bin() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("MOAT_BIN").map(PathBuf::from).into_iter().collect();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| manifest.join("../../target"));
    candidates.push(target.join("debug/moat"));
    if let Some(found) = candidates.into_iter().find(|p| p.is_file()) {
        return Some(found);
    }
    let reason = "the moat binary was not found: run `cargo build -p moat` or set MOAT_BIN";
    if std::env::var("MOAT_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("{reason}");
    }
    eprintln!("SKIPPED: {reason}");
    None
}

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn new_ca() -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, "Moat test CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca { pem: cert.pem(), issuer: Issuer::new(params, key) }
}

/// A server certificate for `localhost`: (certificate PEM, key PEM, certificate DER).
fn leaf(ca: &Ca, serial: u64, name: &str) -> (String, String, Vec<u8>) {
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.serial_number = Some(SerialNumber::from(serial));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}

/// Replaces a file by renaming a fully written sibling over it, as a deployment tool would.
fn replace(path: &Path, contents: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        // The gateway leads its own process group; its stdio upstream goes with it.
        let _ = Command::new("kill").args(["-TERM", "--", &format!("-{}", self.0.id())]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && self.0.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.0.id())]).stderr(Stdio::null()).status();
        let _ = self.0.wait();
    }
}

/// What one fresh HTTPS connection saw.
struct Seen {
    version: reqwest::Version,
    peer_cert: Vec<u8>,
}

/// `initialize` on a new connection; checks the answer and returns what TLS negotiated.
async fn initialize(url: &str, ca_pem: &str, http1_only: bool) -> Result<Seen, String> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .tls_info(true)
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10));
    if http1_only {
        builder = builder.http1_only();
    }
    let client = builder.build().map_err(|e| e.to_string())?;
    let body = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "tls-test", "version": "1"}}
    });
    let resp = client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let version = resp.version();
    let peer_cert = resp
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|t| t.peer_certificate())
        .map(<[u8]>::to_vec)
        .ok_or("no peer certificate")?;
    let status = resp.status();
    let has_session = resp.headers().contains_key("mcp-session-id");
    let text = resp.text().await.map_err(|e| e.to_string())?;
    if status != 200 || !has_session || !text.contains("\"protocolVersion\"") {
        return Err(format!("initialize over HTTPS answered {status} (session header: {has_session}): {text}"));
    }
    Ok(Seen { version, peer_cert })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_h2_by_alpn_and_certificate_reload_without_restart() {
    let Some(moat) = moat_bin() else { return };
    let dir = std::env::temp_dir().join(format!("moat-tls-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    let ca = new_ca();
    let (cert1, key1, der1) = leaf(&ca, 1001, "moat first");
    std::fs::write(&cert_path, &cert1).unwrap();
    std::fs::write(&key_path, &key1).unwrap();

    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = format!(
        "[gateway]\nlisten = \"127.0.0.1:{port}\"\ntls_cert = {}\ntls_key = {}\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n[[upstream]]\nname = \"demo\"\ncommand = [{}, \"demo-server\"]\n",
        serde_json::to_string(&format!("file:{}", cert_path.display())).unwrap(),
        serde_json::to_string(&format!("file:{}", key_path.display())).unwrap(),
        serde_json::to_string(&moat.display().to_string()).unwrap(),
    );
    let config_path = dir.join("moat.toml");
    std::fs::write(&config_path, config).unwrap();
    let log_path = dir.join("gateway.log");
    let log = std::fs::File::create(&log_path).unwrap();
    use std::os::unix::process::CommandExt;
    let child = Command::new(&moat)
        .arg("gateway")
        .arg("--config")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0)
        .spawn()
        .unwrap();
    let mut gateway = Gateway(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            gateway.0.try_wait().unwrap().is_none(),
            "gateway exited: {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        assert!(
            Instant::now() < deadline,
            "gateway did not listen: {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("https://localhost:{port}/mcp");
    let pid = gateway.0.id();

    // HTTPS initialize, HTTP/2 chosen by ALPN when offered, the first certificate served.
    let seen = initialize(&url, &ca.pem, false)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", std::fs::read_to_string(&log_path).unwrap_or_default()));
    assert_eq!(seen.version, reqwest::Version::HTTP_2, "ALPN did not negotiate h2");
    assert_eq!(seen.peer_cert, der1);
    // A client that offers only HTTP/1.1 gets it.
    let seen = initialize(&url, &ca.pem, true).await.unwrap();
    assert_eq!(seen.version, reqwest::Version::HTTP_11);

    // Replace the certificate and key; new connections must see the new certificate.
    let (cert2, key2, der2) = leaf(&ca, 2002, "moat second");
    assert_ne!(der1, der2);
    replace(&key_path, &key2);
    replace(&cert_path, &cert2);
    let replaced = Instant::now();
    loop {
        let last = match initialize(&url, &ca.pem, false).await {
            Ok(s) if s.peer_cert == der2 => break,
            Ok(s) if s.peer_cert == der1 => "still the first certificate".to_string(),
            Ok(_) => "an unknown certificate".to_string(),
            Err(e) => e,
        };
        assert!(
            replaced.elapsed() < RELOAD_WAIT,
            "the new certificate was not served within {RELOAD_WAIT:?}; last: {last}\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("new certificate served {:.1} s after the files were replaced", replaced.elapsed().as_secs_f64());
    // Same process: reloaded, not restarted.
    assert!(gateway.0.try_wait().unwrap().is_none(), "the gateway exited");
    assert_eq!(gateway.0.id(), pid);
    let seen = initialize(&url, &ca.pem, false).await.unwrap();
    assert_eq!(seen.version, reqwest::Version::HTTP_2);
    drop(gateway);
    let _ = std::fs::remove_dir_all(&dir);
}
