//! `backhaul connectors` and `backhaul sim`, black-box: a simulator process
//! answers the health check, a closed port does not, and the command fails
//! naming the unreachable target.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use assert_cmd::cargo::CommandCargoExt;

#[test]
fn connectors_check_names_what_cannot_be_reached() {
    let dir = tempfile::tempdir().unwrap();
    let mut sim = Command::cargo_bin("backhaul")
        .unwrap()
        .args(["sim", "erp", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("erp.db"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(sim.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let erp_url = line.split_whitespace().last().unwrap().to_owned();
    assert!(erp_url.starts_with("http://127.0.0.1:"), "{line}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    let config = dir.path().join("hub.toml");
    let store = format!("sqlite://{}", dir.path().join("hub.db").display());
    let write = |wms: bool| {
        let mut text = format!(
            "[store]\nurl = \"{store}\"\n\n[connectors.erp]\nkind = \"sim-erp\"\nurl = \"{erp_url}\"\n"
        );
        if wms {
            text.push_str(&format!(
                "\n[connectors.wms]\nkind = \"sim-wms\"\nurl = \"http://127.0.0.1:{closed}\"\n"
            ));
        }
        std::fs::write(&config, text).unwrap();
    };

    write(true);
    let out = Command::cargo_bin("backhaul")
        .unwrap()
        .args(["connectors", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("erp") && l.ends_with("ok")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("wms") && l.contains("unreachable")),
        "{stdout}"
    );
    assert!(stderr.contains("cannot reach: wms"), "{stderr}");

    write(false);
    let out = Command::cargo_bin("backhaul")
        .unwrap()
        .args(["connectors", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let _ = sim.kill();
    let _ = sim.wait();
}
