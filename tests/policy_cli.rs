//! `backhaul policy` and `backhaul master`, black-box: a policy is checked
//! with every problem located, master data is imported all or nothing per
//! file with each bad row named, and a simulation reads without writing.

// Test helpers panic on setup failure: that is a failed test, not a bug to handle.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use assert_cmd::cargo::CommandCargoExt;

fn backhaul(db_dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("backhaul").expect("binary");
    cmd.env(
        "BACKHAUL_STORE__URL",
        format!("sqlite://{}", db_dir.join("hub.db").display()),
    )
    .env("BACKHAUL_STORE__SQLITE_SYNC", "normal");
    cmd
}

fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "failed: {stdout}\n{stderr}");
    stdout
}

fn run_err(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run");
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "should have failed: {stdout}");
    stderr
}

/// The sample files in dependency order.
fn sample_files() -> Vec<PathBuf> {
    [
        "vendors",
        "skus",
        "customers",
        "sites",
        "orders",
        "crosswalks",
    ]
    .iter()
    .map(|s| samples().join("master").join(format!("{s}.csv")))
    .collect()
}

#[test]
fn policy_check_accepts_the_sample_and_locates_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(
        backhaul(dir.path())
            .args(["policy", "check"])
            .arg(samples().join("policy.toml")),
    );
    assert!(out.contains("version 2026-spring.1"), "{out}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "version = \"x\"\ntimezone = \"UTC\"\napproval_valid_days = 30\n\
         default_disposition = \"quarantine\"\n\n[[eligibility]]\nid = \"window\"\n\
         require = \"line.days_since_shipp <= 30\"\non_fail = \"reject\"\nmessage = \"m\"\n\
         [[eligibility]]\nid = \"window\"\nrequire = \"line.quantity\"\non_fail = \"reject\"\nmessage = \"m\"\n",
    )
    .unwrap();
    let err = run_err(backhaul(dir.path()).args(["policy", "check"]).arg(&bad));
    assert!(err.contains("nothing was activated"), "{err}");
    // The misspelt field, on line 8, with the rule named and a hint.
    assert!(err.contains("bad.toml:8:"), "{err}");
    assert!(err.contains("rule \"window\""), "{err}");
    assert!(
        err.contains("did you mean \"line.days_since_ship\""),
        "{err}"
    );
    // The duplicate id and the non-boolean condition are reported too.
    assert!(err.contains("bad.toml:12:"), "{err}");
    assert!(err.contains("bad.toml:13:"), "{err}");
}

#[test]
fn master_import_is_all_or_nothing_per_file_and_names_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(
        backhaul(dir.path())
            .args(["master", "import", "--dry-run"])
            .arg(&sample_files()[0]),
    );
    assert!(out.contains("6 new") && out.contains("dry run"), "{out}");
    let status = run_ok(backhaul(dir.path()).args(["master", "status"]));
    assert!(status.contains("revision 0"), "{status}");

    let out = run_ok(
        backhaul(dir.path())
            .args(["master", "import"])
            .args(sample_files()),
    );
    assert!(out.contains("13 new"), "{out}");
    assert!(out.contains("13 skus"), "{out}");
    let status = run_ok(backhaul(dir.path()).args(["master", "status"]));

    // A file with one good and three bad rows stores nothing, and every
    // problem is reported in one round: values that do not parse and
    // references to nothing alike.
    let bad = dir.path().join("skus.csv");
    std::fs::write(
        &bad,
        "sku,description,category,control,returnable,vendor,base_uom,conversions\n\
         NEW-1,Fine,apparel,none,true,,EA,\n\
         NEW-2,Lower case unit,apparel,none,true,,ea,\n\
         NEW-3,Not a flag,apparel,none,perhaps,,EA,\n\
         NEW-4,Unknown vendor,apparel,none,true,V-NOBODY,EA,\n",
    )
    .unwrap();
    let err = run_err(backhaul(dir.path()).args(["master", "import"]).arg(&bad));
    assert!(err.contains("3 problems"), "{err}");
    assert!(err.contains("skus.csv:3: column \"base_uom\""), "{err}");
    assert!(err.contains("skus.csv:4: column \"returnable\""), "{err}");
    assert!(err.contains("skus.csv:5: column \"vendor\""), "{err}");
    assert!(err.contains("nothing was stored"), "{err}");
    assert_eq!(
        run_ok(backhaul(dir.path()).args(["master", "status"])),
        status
    );

    // A file whose kind cannot be told is refused by name.
    let odd = dir.path().join("things.csv");
    std::fs::write(&odd, "a\n1\n").unwrap();
    let err = run_err(backhaul(dir.path()).args(["master", "import"]).arg(&odd));
    assert!(
        err.contains("things.csv") && err.contains("skus.csv"),
        "{err}"
    );
}

#[test]
fn simulate_reads_the_log_and_refuses_a_bad_candidate() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(
        backhaul(dir.path())
            .args(["policy", "simulate"])
            .arg(samples().join("policy.toml")),
    );
    assert!(out.contains("against 0 return requests"), "{out}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "version = 1\n").unwrap();
    let err = run_err(backhaul(dir.path()).args(["policy", "simulate"]).arg(&bad));
    assert!(err.contains("bad.toml:1:"), "{err}");
}
