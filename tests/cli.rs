//! The `backhaul` binary, black-box: demo, keys, replay, config check, serve.

// Test helpers panic on setup failure: that is a failed test, not a bug to handle.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use assert_cmd::cargo::CommandCargoExt;

fn backhaul(db_dir: &std::path::Path) -> Command {
    let mut cmd = Command::cargo_bin("backhaul").expect("binary");
    cmd.env(
        "BACKHAUL_STORE__URL",
        format!("sqlite://{}", db_dir.join("hub.db").display()),
    )
    .env("BACKHAUL_STORE__SQLITE_SYNC", "normal")
    .env_remove("BACKHAUL_SERVER__LISTEN");
    cmd
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

#[test]
fn demo_drives_returns_to_the_end_and_reconciles() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(
        backhaul(dir.path())
            .args(["demo", "--returns", "40", "--dir"])
            .arg(dir.path().join("demo")),
    );
    assert!(out.contains("Backhaul demo: 40 returns"), "{out}");
    assert!(out.contains("closed"), "{out}");
    // The sample policy and master data decided the returns: with the
    // default seed the policy approves most, holds some for review (high
    // value) and rejects some (blocked customers), and keeps restocking
    // fees on some units it dispositions.
    assert!(
        out.starts_with(
            "policy 2026-spring.1 (samples/policy.toml); master data: 6 vendors, 13 skus"
        ),
        "{out}"
    );
    for verdict in ["approve", "review", "reject"] {
        let count = numbers(&row(&out, verdict)[..1]);
        assert!(count[0] > 0, "no {verdict} verdict:\n{out}");
    }
    for disposition in ["→ restock", "→ scrap", "→ vendor_return"] {
        assert!(out.contains(disposition), "no {disposition}:\n{out}");
    }
    let fees: Vec<rust_decimal::Decimal> = row(&out, "restocking")[1..]
        .iter()
        .map(|c| c.parse().unwrap())
        .collect();
    assert!(
        fees.iter().any(|f| f.is_sign_positive() && !f.is_zero()),
        "no restocking fee:\n{out}"
    );
    // Every connector delivered through its simulator; the ERP refused the
    // return orders with the SKU its item master lacks, and the operator's
    // corrected retries went through.
    let header = row(&out, "deliveries");
    assert_eq!(
        header,
        ["done", "retried", "exceptions", "fixed", "dead"],
        "{out}"
    );
    for target in ["erp", "wms", "carrier", "portal"] {
        let counts = numbers(&row(&out, target)[..5]);
        assert!(counts[0] > 0, "nothing delivered to {target}:\n{out}");
    }
    let erp = numbers(&row(&out, "erp")[..5]);
    assert!(erp[2] >= 1, "no exception in the ERP's queue:\n{out}");
    assert!(erp[3] >= erp[2], "exceptions left unfixed:\n{out}");
    // The ERP's ledger matches the hub line by line.
    assert!(out.contains("ERP ledger vs hub"), "{out}");
    for what in ["credits USD", "inventory", "return orders", "ERP documents"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(what))
            .unwrap_or_else(|| panic!("no {what} line:\n{out}"));
        let values: Vec<&str> = line[28..].split_whitespace().take(2).collect();
        assert_eq!(values[0], values[1], "{line}");
    }
    assert!(out.contains("reconciled             yes"), "{out}");
    // The databases of the hub and of the simulators are left for
    // inspection, and the hub's can be replayed.
    for system in ["erp", "wms", "carrier", "portal"] {
        let file = format!("sim-{system}.db");
        assert!(dir.path().join("demo").join(file).exists());
    }
    let db = dir.path().join("demo").join("backhaul.db");
    assert!(db.exists());
    let replayed = run_ok(
        Command::cargo_bin("backhaul")
            .unwrap()
            .env("BACKHAUL_STORE__URL", format!("sqlite://{}", db.display()))
            .arg("replay"),
    );
    assert!(replayed.contains("into 40 return summaries"), "{replayed}");
}

/// The cells of the summary row that starts with `first`.
fn row(out: &str, first: &str) -> Vec<String> {
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(first))
        .unwrap_or_else(|| panic!("no {first} row:\n{out}"));
    line.split_whitespace().skip(1).map(str::to_owned).collect()
}

fn numbers(cells: &[String]) -> Vec<u64> {
    cells.iter().map(|c| c.parse().unwrap()).collect()
}

#[test]
fn keys_are_created_listed_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let created = run_ok(backhaul(dir.path()).args([
        "keys",
        "create",
        "--partner",
        "wms",
        "--scope",
        "warehouse:write",
        "returns:read",
    ]));
    let token = created
        .lines()
        .find_map(|l| l.strip_prefix("token:"))
        .map(str::trim)
        .expect("token line")
        .to_owned();
    let key_id = created
        .lines()
        .find_map(|l| l.strip_prefix("key_id:"))
        .map(str::trim)
        .expect("key_id line")
        .to_owned();
    assert!(token.starts_with(&format!("bh_{key_id}_")), "{token}");
    let listed = run_ok(backhaul(dir.path()).args(["keys", "list"]));
    assert!(
        listed.contains(&key_id) && listed.contains("active"),
        "{listed}"
    );
    assert!(
        !listed.contains(&token),
        "the token must never be shown again"
    );
    run_ok(backhaul(dir.path()).args(["keys", "revoke", &key_id]));
    let listed = run_ok(backhaul(dir.path()).args(["keys", "list"]));
    assert!(listed.contains("revoked"), "{listed}");

    let bad = backhaul(dir.path())
        .args([
            "keys",
            "create",
            "--partner",
            "wms",
            "--scope",
            "warehouse:delete",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("warehouse:delete"));
}

#[test]
fn config_check_names_the_file_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let ok =
        run_ok(backhaul(dir.path()).args(["config", "check", "--config", "backhaul.example.toml"]));
    assert!(ok.contains("is valid"), "{ok}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[store]\nurl = \"mysql://x\"\n").unwrap();
    let out = Command::cargo_bin("backhaul")
        .unwrap()
        .args(["config", "check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("store.url"), "{err}");
}

#[test]
fn config_check_names_a_missing_webhook_secret_variable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hooks.toml");
    std::fs::write(
        &file,
        "[webhooks.inbound.wms]\nkind = \"wms\"\nsecret_env = \"BACKHAUL_TEST_WMS_SECRET\"\n",
    )
    .unwrap();
    let out = backhaul(dir.path())
        .args(["config", "check", "--config"])
        .arg(&file)
        .env_remove("BACKHAUL_TEST_WMS_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("webhooks.inbound.wms.secret_env") && err.contains("BACKHAUL_TEST_WMS_SECRET"),
        "{err}"
    );
    let ok = run_ok(
        backhaul(dir.path())
            .args(["config", "check", "--config"])
            .arg(&file)
            .env(
                "BACKHAUL_TEST_WMS_SECRET",
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            ),
    );
    assert!(ok.contains("is valid"), "{ok}");
}

#[test]
fn config_check_refuses_a_bad_tls_file_and_warns_about_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hub.toml");
    // A relative path is the configuration file's neighbour.
    std::fs::write(
        &file,
        "[connectors.erp]\nkind = \"sim-erp\"\nurl = \"https://erp.example.com\"\n\
         [connectors.erp.tls]\nca_file = \"company-ca.pem\"\n",
    )
    .unwrap();
    let out = backhaul(dir.path())
        .args(["config", "check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let expected = dir.path().join("company-ca.pem").display().to_string();
    assert!(
        err.contains("connectors.erp: tls.ca_file: cannot read") && err.contains(&expected),
        "{err}"
    );

    std::fs::write(
        &file,
        "[connectors.erp]\nkind = \"sim-erp\"\nurl = \"http://erp.internal:8000\"\n",
    )
    .unwrap();
    let ok = run_ok(
        backhaul(dir.path())
            .args(["config", "check", "--config"])
            .arg(&file),
    );
    assert!(
        ok.contains("is valid") && ok.contains("warning: connectors.erp.url:"),
        "{ok}"
    );
}

/// One HTTP/1.1 request over a plain socket; returns the status code and body.
fn http(addr: &str, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.write_all(request.as_bytes()).expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

#[test]
fn serve_answers_health_and_refuses_requests_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = backhaul(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("BACKHAUL_LOG__FORMAT", "json")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // The hub logs the address it bound; wait for that line (not a sleep).
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("hub exited before listening").unwrap();
        if let Some(rest) = line.split("\"addr\":\"").nth(1) {
            break rest.split('"').next().unwrap().to_owned();
        }
    };
    let (status, body) = http(
        &addr,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = http(
        &addr,
        "GET /v1/returns HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"code\":\"unauthenticated\""), "{body}");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A throwaway CA, and a certificate for `127.0.0.1` it signed written to
/// `hub.pem` and `hub.key` in `dir`: the CA's certificate.
fn server_certificate(dir: &std::path::Path) -> rustls::pki_types::CertificateDer<'static> {
    let mut ca = rcgen::CertificateParams::default();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    std::fs::write(dir.join("hub.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("hub.key"), key.serialize_pem()).unwrap();
    ca.der().clone()
}

/// One HTTP/1.1 request over TLS trusting `ca`; the whole answer.
fn https(addr: &str, ca: rustls::pki_types::CertificateDer<'static>, request: &str) -> String {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let mut socket = TcpStream::connect(addr).expect("connect");
    let mut stream = rustls::Stream::new(&mut connection, &mut socket);
    stream.write_all(request.as_bytes()).expect("send request");
    let mut response = Vec::new();
    // The server may close without a TLS close_notify after the answer.
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

#[test]
fn serve_with_server_tls_answers_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let ca = server_certificate(dir.path());
    let config = dir.path().join("hub.toml");
    // Relative paths: the configuration file's neighbours.
    std::fs::write(
        &config,
        "[server.tls]\ncert_file = \"hub.pem\"\nkey_file = \"hub.key\"\n",
    )
    .unwrap();
    let mut child = backhaul(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("BACKHAUL_LOG__FORMAT", "json")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("hub exited before listening").unwrap();
        if let Some(rest) = line.split("\"addr\":\"").nth(1) {
            assert!(line.contains("\"tls\":true"), "{line}");
            break rest.split('"').next().unwrap().to_owned();
        }
    };
    let response = https(
        &addr,
        ca,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");

    // A key that is not there fails the check, naming the setting and file.
    std::fs::remove_file(dir.path().join("hub.key")).unwrap();
    let out = backhaul(dir.path())
        .args(["config", "check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let expected = dir.path().join("hub.key").display().to_string();
    assert!(
        err.contains("server.tls.key_file: cannot read") && err.contains(&expected),
        "{err}"
    );
}

#[test]
fn serve_applies_a_file_dropped_in_a_drop_folder() {
    let dir = tempfile::tempdir().unwrap();
    let created = run_ok(backhaul(dir.path()).args([
        "keys",
        "create",
        "--partner",
        "ops",
        "--scope",
        "returns:read",
    ]));
    let token = created
        .lines()
        .find_map(|l| l.strip_prefix("token:"))
        .map(str::trim)
        .expect("token line")
        .to_owned();
    let drops = dir.path().join("drops");
    let config = dir.path().join("hub.toml");
    std::fs::write(
        &config,
        format!(
            "[drops.returns]\nkind = \"csv-returns\"\ndir = {:?}\ninterval_ms = 50\n",
            drops.display().to_string()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(&drops).unwrap();
    std::fs::write(
        drops.join("batch.csv.tmp"),
        "request_ref,customer,order_ref,currency,site,sku,quantity,uom,reason,requested_outcome,unit_price,unit_tax\n\
         R-1,C1,SO-1,USD,DC1,SKU-1,2,EA,DAMAGED,refund,19.99,1.60\n",
    )
    .unwrap();
    std::fs::rename(drops.join("batch.csv.tmp"), drops.join("batch.csv")).unwrap();

    let mut child = backhaul(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("BACKHAUL_LOG__FORMAT", "json")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the hub to say it listens and that it processed the file
    // (log lines, not a sleep).
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut addr = None;
    let mut processed = None;
    while addr.is_none() || processed.is_none() {
        let line = lines.next().expect("hub exited early").unwrap();
        if let Some(rest) = line.split("\"addr\":\"").nth(1) {
            addr = Some(rest.split('"').next().unwrap().to_owned());
        }
        if line.contains("file processed") {
            processed = Some(line);
        }
    }
    let processed = processed.unwrap();
    assert!(processed.contains("\"applied\":1"), "{processed}");
    let (status, body) = http(
        &addr.unwrap(),
        &format!(
            "GET /v1/returns HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        ),
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"order_ref\":\"SO-1\""), "{body}");
    let archived = std::fs::read_dir(drops.join("archive")).unwrap().count();
    assert_eq!(archived, 2, "the file and its summary");
}
