//! `backhaul deliveries`: the exception queue on the command line. Lists
//! deliveries, shows one with its payload and audit trail, and retries (with
//! a corrected payload from a file), skips or cancels one, working directly
//! on the store like `backhaul keys`.
//!
//! What a delivery looks like, who should look at it, what a valid
//! correction is and which action applies to which state are decided once,
//! in `backhaul_api::deliveries`, which the HTTP API uses too; this module
//! only parses flags and prints. A retry made here is picked up by a running
//! hub's dispatcher at its next poll (it cannot be woken from another
//! process).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use backhaul_api::deliveries::{
    self, CorrectionError, DeliveryDetail, DeliveryQuery, DeliveryView, OperatorCommand, Reason,
};
use backhaul_domain::action::Target;
use backhaul_domain::values::ReturnId;
use backhaul_store::{AnyStore, DeliveryState, JsonText};
use chrono::{DateTime, Utc};

#[derive(Debug, clap::Subcommand)]
pub(crate) enum DeliveriesCommand {
    /// List deliveries in id order; `--state exception` and `--state dead`
    /// are the ones waiting for a person.
    List {
        /// pending, done, dead, exception, skipped or cancelled.
        #[arg(long, value_parser = parse_state)]
        state: Option<DeliveryState>,
        /// Only the deliveries of this return (its UUID).
        #[arg(long, value_parser = parse_return_id)]
        return_id: Option<ReturnId>,
        /// erp, wms, carrier or portal.
        #[arg(long, value_parser = parse_target)]
        target: Option<Target>,
        /// Page size, 1 to 1000 (default 100).
        #[arg(long)]
        limit: Option<u32>,
        /// Only deliveries with a greater id (the next page).
        #[arg(long)]
        after_id: Option<i64>,
    },
    /// One delivery with its payload and audit trail.
    Show {
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        id: i64,
    },
    /// Deliver a dead letter or exception again, optionally with a corrected
    /// payload.
    Retry {
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        id: i64,
        /// Why, for the audit trail (1 to 500 characters).
        #[arg(long, value_parser = parse_reason)]
        reason: Reason,
        /// JSON file with the corrected canonical action; it must keep the
        /// stored payload's kind and return_id.
        #[arg(long, value_name = "FILE")]
        payload: Option<PathBuf>,
    },
    /// Mark a dead letter or exception as handled by hand; deliveries
    /// waiting for it go ahead.
    Skip {
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        id: i64,
        /// Why, for the audit trail (1 to 500 characters).
        #[arg(long, value_parser = parse_reason)]
        reason: Reason,
    },
    /// Cancel a delivery that is pending, dead or in the exception queue.
    Cancel {
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        id: i64,
        /// Why, for the audit trail (1 to 500 characters).
        #[arg(long, value_parser = parse_reason)]
        reason: Reason,
    },
}

fn parse_state(raw: &str) -> Result<DeliveryState, String> {
    DeliveryState::parse(raw).ok_or_else(|| {
        let names = DeliveryState::ALL.map(DeliveryState::as_str).join(", ");
        format!("expected one of {names}")
    })
}

fn parse_target(raw: &str) -> Result<Target, String> {
    Target::parse(raw).ok_or_else(|| {
        let names = Target::ALL.map(Target::as_str).join(", ");
        format!("expected one of {names}")
    })
}

fn parse_return_id(raw: &str) -> Result<ReturnId, String> {
    ReturnId::parse(raw).map_err(|e| e.to_string())
}

fn parse_reason(raw: &str) -> Result<Reason, String> {
    Reason::parse(raw).map_err(|e| e.to_string())
}

/// Runs one `backhaul deliveries` command against `store`. `actor` is
/// recorded in the audit trail of a retry, skip or cancel; `now` is when it
/// happened.
pub(crate) async fn run(
    store: AnyStore,
    cmd: DeliveriesCommand,
    actor: &str,
    now: DateTime<Utc>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match cmd {
        DeliveriesCommand::List {
            state,
            return_id,
            target,
            limit,
            after_id,
        } => {
            let query = DeliveryQuery {
                state,
                return_id,
                target,
                limit,
                after_id,
            };
            let page = deliveries::list(&store, &query).await?;
            print_table(out, &page.items)?;
            if let Some(after) = page.next_after_id {
                writeln!(out, "(more: --after-id {after})")?;
            }
        }
        DeliveriesCommand::Show { id } => {
            let detail = deliveries::detail(&store, id).await?;
            print_detail(out, &detail)?;
        }
        DeliveriesCommand::Retry {
            id,
            reason,
            payload,
        } => {
            let correction = match &payload {
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .with_context(|| format!("--payload {}: cannot read", path.display()))?,
                ),
                None => None,
            };
            let command = OperatorCommand::Retry { correction };
            let view = deliveries::operate(&store, id, command, actor, &reason, now)
                .await
                .map_err(|e| match (e, &payload) {
                    (deliveries::Error::InvalidCorrection(problem), Some(path)) => {
                        correction_error(path, &problem)
                    }
                    (other, _) => anyhow::Error::new(other),
                })?;
            print_done(out, "retried", &view)?;
        }
        DeliveriesCommand::Skip { id, reason } => {
            let view =
                deliveries::operate(&store, id, OperatorCommand::Skip, actor, &reason, now).await?;
            print_done(out, "skipped", &view)?;
        }
        DeliveriesCommand::Cancel { id, reason } => {
            let view =
                deliveries::operate(&store, id, OperatorCommand::Cancel, actor, &reason, now)
                    .await?;
            print_done(out, "cancelled", &view)?;
        }
    }
    Ok(())
}

/// A refused correction, named by its file and, for a document that does
/// not parse, the position in it.
fn correction_error(path: &std::path::Path, problem: &CorrectionError) -> anyhow::Error {
    match problem {
        CorrectionError::Unparsable {
            line,
            column,
            message,
            ..
        } => anyhow::anyhow!(
            "--payload {}: line {line}, column {column}: {message}",
            path.display()
        ),
        CorrectionError::KindChanged { .. } | CorrectionError::ReturnChanged { .. } => {
            anyhow::anyhow!("--payload {}: {problem}", path.display())
        }
    }
}

/// The `code` of a delivery's last error, if it has one.
fn error_code(last_error: Option<&JsonText>) -> String {
    last_error
        .map(JsonText::to_value)
        .and_then(|e| e.get("code").and_then(|c| c.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "-".to_owned())
}

fn print_table(out: &mut impl Write, items: &[DeliveryView]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>8}  {:<36}  {:<8}  {:<28}  {:<10}  {:>8}  {:<24}  suggested_owner",
        "id", "return/rma", "target", "kind", "state", "attempts", "error"
    )?;
    for d in items {
        let reference = d.rma.clone().unwrap_or_else(|| d.return_id.to_string());
        writeln!(
            out,
            "{:>8}  {:<36}  {:<8}  {:<28}  {:<10}  {:>8}  {:<24}  {}",
            d.id,
            reference,
            d.target,
            d.kind,
            // `as_str`, not `Display`, which ignores the column width.
            d.state.as_str(),
            d.attempts,
            error_code(d.last_error.as_ref()),
            d.suggested_owner.as_deref().unwrap_or("-"),
        )?;
    }
    Ok(())
}

fn print_done(out: &mut impl Write, verb: &str, view: &DeliveryView) -> std::io::Result<()> {
    writeln!(
        out,
        "{verb} delivery {} ({} {}): now {}",
        view.id, view.target, view.kind, view.state
    )
}

fn print_detail(out: &mut impl Write, detail: &DeliveryDetail) -> anyhow::Result<()> {
    let d = &detail.delivery;
    let or_dash = |v: Option<&str>| v.unwrap_or("-").to_owned();
    writeln!(out, "id:              {}", d.id)?;
    writeln!(
        out,
        "return:          {} ({})",
        d.return_id,
        or_dash(d.rma.as_deref())
    )?;
    writeln!(
        out,
        "stage / owner:   {} / {}",
        or_dash(d.stage.as_deref()),
        or_dash(d.owner.as_deref())
    )?;
    writeln!(out, "target / kind:   {} / {}", d.target, d.kind)?;
    writeln!(out, "state:           {}", d.state)?;
    writeln!(out, "attempts:        {}", d.attempts)?;
    writeln!(out, "next attempt:    {}", d.next_attempt_at.to_rfc3339())?;
    writeln!(out, "delivery key:    {}", d.delivery_key)?;
    writeln!(
        out,
        "suggested owner: {}",
        or_dash(d.suggested_owner.as_deref())
    )?;
    writeln!(out, "created:         {}", d.created_at.to_rfc3339())?;
    writeln!(out, "updated:         {}", d.updated_at.to_rfc3339())?;
    let json =
        |v: Option<&JsonText>| v.map_or_else(|| "-".to_owned(), |j| j.to_value().to_string());
    writeln!(out, "last error:      {}", json(d.last_error.as_ref()))?;
    writeln!(out, "result:          {}", json(d.result.as_ref()))?;
    writeln!(out, "payload:")?;
    writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(&detail.payload.to_value())?
    )?;
    if detail.audit.is_empty() {
        writeln!(out, "audit:           (none)")?;
    } else {
        writeln!(out, "audit:")?;
        for entry in &detail.audit {
            writeln!(
                out,
                "  {}  {} by {}: {}  {}",
                entry.at.to_rfc3339(),
                entry.action,
                entry.actor,
                entry.reason,
                entry.detail.to_value()
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use backhaul_domain::Command;
    use backhaul_engine::{CommandMeta, Engine, EngineConfig, ManualClock};
    use backhaul_store::{ClaimRequest, DeliveryStore, Finish, SqliteStore, SqliteSync};
    use chrono::TimeZone;
    use serde_json::json;
    use tokio_util::sync::CancellationToken;
    use tokio_util::task::TaskTracker;

    use super::*;

    struct Fixture {
        store: AnyStore,
        now: DateTime<Utc>,
        /// The ERP return order, refused by the ERP.
        erp: i64,
        /// The portal's status update, still pending.
        portal: i64,
        return_id: ReturnId,
        shutdown: CancellationToken,
        dir: tempfile::TempDir,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            self.shutdown.cancel();
        }
    }

    /// An approved return whose ERP return order is in the exception queue.
    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = AnyStore::Sqlite(
            SqliteStore::open(&dir.path().join("cli.db"), SqliteSync::Normal)
                .await
                .unwrap(),
        );
        let now = Utc.with_ymd_and_hms(2025, 3, 3, 9, 0, 0).unwrap();
        let tracker = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let engine = Engine::start(
            store.clone(),
            EngineConfig {
                outbound: [Target::Erp, Target::Portal].into(),
                ..EngineConfig::default()
            },
            Arc::new(ManualClock::new(now)),
            &tracker,
            shutdown.clone(),
        );
        let request = serde_json::from_value(json!({
            "channel": "portal", "customer": "CUST-001", "order_ref": "SO-1001",
            "currency": "USD", "site": "DC1",
            "lines": [{
                "line_no": 1, "sku": "SKU-RED", "quantity": "3", "uom": "EA",
                "reason_code": "DAMAGED", "requested_outcome": "refund",
                "unit_price": { "amount": "20.00", "currency": "USD" },
                "unit_tax": { "amount": "2.00", "currency": "USD" }
            }]
        }))
        .unwrap();
        let meta = || CommandMeta {
            partner: "test".into(),
            ..CommandMeta::default()
        };
        let return_id = engine.create(request, meta()).await.unwrap().return_id;
        let approve = Command::Approve(serde_json::from_value(json!({})).unwrap());
        engine.execute(return_id, approve, meta()).await.unwrap();

        let claimed = store
            .claim_deliveries(&ClaimRequest {
                now,
                owner: "test".into(),
                lease_until: now + chrono::Duration::minutes(1),
                quota: HashMap::from([("erp".to_owned(), 1)]),
                scan_limit: 100,
            })
            .await
            .unwrap();
        let erp = claimed[0].delivery.id;
        let error = JsonText::from(json!({
            "class": "business", "code": "period_closed", "message": "closed"
        }));
        assert!(
            store
                .finish_delivery(erp, "test", Finish::Exception { error }, now)
                .await
                .unwrap()
        );
        let portal = store
            .list_deliveries(&backhaul_store::DeliveryFilter {
                target: Some("portal".into()),
                ..Default::default()
            })
            .await
            .unwrap()[0]
            .id;
        Fixture {
            store,
            now,
            erp,
            portal,
            return_id,
            shutdown,
            dir,
        }
    }

    async fn run_cli(f: &Fixture, args: &[&str]) -> anyhow::Result<String> {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(subcommand)]
            cmd: DeliveriesCommand,
        }
        let cli = Cli::try_parse_from(std::iter::once("deliveries").chain(args.iter().copied()))?;
        let mut out = Vec::new();
        run(f.store.clone(), cli.cmd, "alice", f.now, &mut out).await?;
        Ok(String::from_utf8(out)?)
    }

    #[tokio::test]
    async fn list_prints_one_row_per_delivery_with_who_should_look() {
        let f = fixture().await;
        let out = run_cli(&f, &["list", "--state", "exception"])
            .await
            .unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(lines[0].contains("suggested_owner"), "{out}");
        let row: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(row[0], f.erp.to_string());
        assert!(row[1].starts_with("RMA-"), "{out}");
        assert_eq!(
            &row[2..],
            [
                "erp",
                "erp_return_order",
                "exception",
                "1",
                "period_closed",
                "finance"
            ]
        );
        // Fixed width: every column starts where its header does.
        assert_eq!(lines[0].find("kind"), lines[1].find("erp_return_order"));
        assert_eq!(lines[0].find("attempts"), lines[1].find("       1"));
        assert_eq!(lines[0].find("suggested_owner"), lines[1].find("finance"));

        let all = run_cli(&f, &["list", "--limit", "1"]).await.unwrap();
        assert!(all.contains("(more: --after-id "), "{all}");
        let error = run_cli(&f, &["list", "--limit", "0"]).await.unwrap_err();
        assert!(error.to_string().contains("limit"), "{error}");
        assert!(run_cli(&f, &["list", "--state", "stuck"]).await.is_err());
    }

    #[tokio::test]
    async fn retry_with_a_corrected_file_records_the_actor() {
        let f = fixture().await;
        let shown = deliveries::detail(&f.store, f.erp).await.unwrap();
        let mut corrected = shown.payload.to_value();
        corrected["site"] = json!("DC2");
        let path = f.dir.path().join("fix.json");
        std::fs::write(&path, serde_json::to_string_pretty(&corrected).unwrap()).unwrap();
        let id = f.erp.to_string();
        let out = run_cli(
            &f,
            &[
                "retry",
                &id,
                "--reason",
                "site fixed",
                "--payload",
                path.to_str().unwrap(),
            ],
        )
        .await
        .unwrap();
        assert!(out.contains("now pending"), "{out}");
        let shown = deliveries::detail(&f.store, f.erp).await.unwrap();
        assert_eq!(shown.payload.to_value(), corrected);
        assert_eq!(shown.audit[0].actor, "alice");
        assert_eq!(shown.audit[0].action, "retry_with_correction");
        let printed = run_cli(&f, &["show", &id]).await.unwrap();
        assert!(
            printed.contains("retry_with_correction by alice: site fixed"),
            "{printed}"
        );
        assert!(printed.contains(&f.return_id.to_string()), "{printed}");
    }

    #[tokio::test]
    async fn a_broken_correction_names_the_file_and_the_position() {
        let f = fixture().await;
        let path = f.dir.path().join("x.json");
        std::fs::write(
            &path,
            "{\n  \"kind\": \"erp_return_order\",\n    \"foo\": 1\n}",
        )
        .unwrap();
        let id = f.erp.to_string();
        let error = run_cli(
            &f,
            &[
                "retry",
                &id,
                "--reason",
                "fix",
                "--payload",
                path.to_str().unwrap(),
            ],
        )
        .await
        .unwrap_err()
        .to_string();
        let expected = format!(
            "--payload {}: line 3, column 9: unknown field `foo`",
            path.display()
        );
        assert!(error.starts_with(&expected), "{error}");

        let mut other_kind = deliveries::detail(&f.store, f.erp)
            .await
            .unwrap()
            .payload
            .to_value();
        other_kind["kind"] = json!("erp_credit_memo");
        std::fs::write(&path, other_kind.to_string()).unwrap();
        let error = run_cli(
            &f,
            &[
                "retry",
                &id,
                "--reason",
                "fix",
                "--payload",
                path.to_str().unwrap(),
            ],
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(error.contains("must keep the kind"), "{error}");
        let missing = f.dir.path().join("missing.json");
        let error = run_cli(
            &f,
            &[
                "retry",
                &id,
                "--reason",
                "fix",
                "--payload",
                missing.to_str().unwrap(),
            ],
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(error.contains("cannot read"), "{error}");
        let shown = deliveries::detail(&f.store, f.erp).await.unwrap();
        assert!(shown.audit.is_empty(), "nothing was applied");
    }

    #[tokio::test]
    async fn skip_and_cancel_follow_the_state_rules() {
        let f = fixture().await;
        let (erp, portal) = (f.erp.to_string(), f.portal.to_string());
        let error = run_cli(&f, &["skip", &portal, "--reason", "x"])
            .await
            .unwrap_err();
        assert_eq!(error.to_string(), "cannot skip a delivery that is pending");
        let out = run_cli(&f, &["skip", &erp, "--reason", "posted by hand"])
            .await
            .unwrap();
        assert!(out.contains("now skipped"), "{out}");
        let out = run_cli(&f, &["cancel", &portal, "--reason", "not needed"])
            .await
            .unwrap();
        assert!(out.contains("now cancelled"), "{out}");
        let error = run_cli(&f, &["cancel", "999999", "--reason", "x"])
            .await
            .unwrap_err();
        assert_eq!(error.to_string(), "delivery 999999 does not exist");
        assert!(run_cli(&f, &["skip", &erp, "--reason", " "]).await.is_err());
    }
}
