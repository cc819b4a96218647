//! Imports and writes through the store (SQLite here; the store's
//! conformance suite runs its side on both backends): all or nothing, dry
//! runs that write nothing, revisions that say when to reload.

use backhaul_master::persist::{self, Error, Mode};
use backhaul_master::{Kind, MasterData, Record};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use backhaul_store::{
    MasterBatch, MasterSnapshot, MasterStore, RevisionMismatch, SqliteStore, SqliteSync,
};
use chrono::{DateTime, Utc};

use crate::support::{account, customer, day, sku};

async fn store() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(&dir.path().join("master.db"), SqliteSync::Normal)
        .await
        .expect("open the store");
    (store, dir)
}

fn now() -> DateTime<Utc> {
    day(20)
}

const SKUS: &str = "sku,description,category,control,returnable,vendor,base_uom,conversions\n\
                    DRILL,Drill,electronics,serial,true,V-1,EA,\n\
                    BITS,Bits,consumables,,true,,EA,CS=12\n";
const VENDORS: &str = "vendor,name\nV-1,Voltline\n";

async fn import(
    store: &SqliteStore,
    base: &MasterData,
    kind: Kind,
    text: &str,
    mode: Mode,
) -> Result<persist::Outcome, Error> {
    let name = format!("{}.csv", kind.file_stem());
    persist::import_csv(store, base, kind, &name, text.as_bytes(), mode, now()).await
}

#[tokio::test]
async fn an_import_writes_a_new_revision_that_loads_back() {
    let (store, _dir) = store().await;
    let empty = persist::load(&store).await.expect("load");
    assert_eq!((empty.revision(), empty.count(Kind::Sku)), (0, 0));

    let vendors = import(&store, &empty, Kind::Vendor, VENDORS, Mode::Apply)
        .await
        .expect("vendors");
    let after_vendors = vendors.data.expect("written");
    assert_eq!(after_vendors.revision(), 1);
    let skus = import(&store, &after_vendors, Kind::Sku, SKUS, Mode::Apply)
        .await
        .expect("SKUs");
    assert_eq!(skus.changes.of(Kind::Sku).created, 2);
    let in_memory = skus.data.expect("written");
    assert_eq!(in_memory.revision(), 2);

    let loaded = persist::load(&store).await.expect("load");
    assert_eq!(loaded.revision(), 2);
    for data in [&in_memory, &loaded] {
        let bits = data.sku(&sku("BITS")).expect("BITS");
        assert_eq!(bits.conversions.len(), 1);
        assert_eq!(data.count(Kind::Vendor), 1);
    }
    // Nothing changed since: no reload needed.
    assert!(
        persist::reload_if_changed(&store, &loaded)
            .await
            .expect("check")
            .is_none()
    );
    assert!(
        persist::reload_if_changed(&store, &after_vendors)
            .await
            .expect("check")
            .is_some()
    );
}

#[tokio::test]
async fn one_bad_row_and_nothing_is_stored() {
    let (store, _dir) = store().await;
    let base = persist::load(&store).await.expect("load");
    // BITS is fine; DRILL names a vendor that exists nowhere.
    let error = import(&store, &base, Kind::Sku, SKUS, Mode::Apply)
        .await
        .expect_err("unknown vendor");
    match &error {
        Error::Invalid(errors) => assert_eq!(
            errors
                .problems()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["skus.csv:2: column \"vendor\": vendor V-1 does not exist"]
        ),
        other => panic!("expected invalid data, got {other}"),
    }
    assert_eq!(store.master_revision().await.expect("revision"), 0);
    assert!(store.load_master().await.expect("load").rows.is_empty());
    // Parse problems stop the import the same way.
    let error = import(
        &store,
        &base,
        Kind::Vendor,
        "vendor,name\nV-1,Voltline\nV 2,Bad\n",
        Mode::Apply,
    )
    .await
    .expect_err("bad vendor id");
    assert!(
        error
            .to_string()
            .contains("vendors.csv:3: column \"vendor\""),
        "{error}"
    );
    assert_eq!(store.master_revision().await.expect("revision"), 0);
}

#[tokio::test]
async fn a_dry_run_says_what_would_change_and_writes_nothing() {
    let (store, _dir) = store().await;
    let base = persist::load(&store).await.expect("load");
    let outcome = import(&store, &base, Kind::Vendor, VENDORS, Mode::DryRun)
        .await
        .expect("dry run");
    assert_eq!(outcome.changes.of(Kind::Vendor).created, 1);
    assert!(outcome.data.is_none());
    assert_eq!(store.master_revision().await.expect("revision"), 0);
    assert!(store.load_master().await.expect("load").rows.is_empty());
    // The pure dry run agrees.
    let changes = backhaul_master::dry_run(&base, Kind::Vendor, "vendors.csv", VENDORS.as_bytes())
        .expect("dry run");
    assert_eq!(changes, outcome.changes);
}

#[tokio::test]
async fn importing_the_same_file_again_writes_nothing_and_a_change_writes_only_itself() {
    let (store, _dir) = store().await;
    let base = persist::load(&store).await.expect("load");
    let first = import(
        &store,
        &base,
        Kind::Vendor,
        "vendor,name\nV-1,Voltline\nV-2,KeenEdge\n",
        Mode::Apply,
    )
    .await
    .expect("first import")
    .data
    .expect("written");
    let again = import(
        &store,
        &first,
        Kind::Vendor,
        "vendor,name\nV-1,Voltline\nV-2,KeenEdge\n",
        Mode::Apply,
    )
    .await
    .expect("same file");
    let vendors = again.changes.of(Kind::Vendor);
    assert_eq!(
        (vendors.created, vendors.updated, vendors.unchanged),
        (0, 0, 2)
    );
    assert_eq!(again.data.expect("data").revision(), 1);
    assert_eq!(store.master_revision().await.expect("revision"), 1);

    let renamed = import(
        &store,
        &first,
        Kind::Vendor,
        "vendor,name\nV-1,Voltline\nV-2,KeenEdge Ltd\n",
        Mode::Apply,
    )
    .await
    .expect("rename");
    let vendors = renamed.changes.of(Kind::Vendor);
    assert_eq!(
        (vendors.created, vendors.updated, vendors.unchanged),
        (0, 1, 1)
    );
    let rows = store.load_master().await.expect("load").rows;
    let revisions: Vec<(String, i64)> = rows.iter().map(|r| (r.key.clone(), r.revision)).collect();
    assert_eq!(revisions, [("V-1".to_owned(), 1), ("V-2".to_owned(), 2)]);
}

#[tokio::test]
async fn a_write_over_stale_data_is_checked_again_against_fresh_data() {
    let (store, _dir) = store().await;
    let stale = persist::load(&store).await.expect("load");
    // Another hub adds the group account.
    persist::write(
        &store,
        &stale,
        &[Record::Customer(customer("GROUP", None))],
        now(),
    )
    .await
    .expect("other writer");
    // This one still holds revision 0, where GROUP does not exist: its
    // child of GROUP is checked against revision 1, where it does.
    let outcome = persist::write(
        &store,
        &stale,
        &[Record::Customer(customer("SHOP", Some("GROUP")))],
        now(),
    )
    .await
    .expect("write over stale data");
    let data = outcome.data.expect("written");
    assert_eq!(data.revision(), 2);
    let chain: Vec<&str> = data
        .ancestors(&account("SHOP"))
        .iter()
        .map(|c| c.account.as_str())
        .collect();
    assert_eq!(chain, ["GROUP"]);
    assert_eq!(
        persist::load(&store)
            .await
            .expect("load")
            .count(Kind::Customer),
        2
    );

    // And the fresh data is what refuses: against revision 0 this change
    // is harmless, against revision 2 it closes a cycle.
    let error = persist::write(
        &store,
        &stale,
        &[Record::Customer(customer("GROUP", Some("SHOP")))],
        now(),
    )
    .await
    .expect_err("cycle against fresh data");
    assert!(
        error.to_string().contains("GROUP → SHOP → GROUP"),
        "{error}"
    );
    assert_eq!(store.master_revision().await.expect("revision"), 2);
}

/// A store where another writer gets in just before each of the next
/// `races` writes, between validation and commit.
#[derive(Clone)]
struct Racing {
    inner: SqliteStore,
    races: Arc<AtomicU32>,
}

impl MasterStore for Racing {
    async fn put_master(
        &self,
        batch: &MasterBatch,
        at: DateTime<Utc>,
    ) -> backhaul_store::Result<Result<i64, RevisionMismatch>> {
        let left = self.races.load(Ordering::SeqCst);
        if left > 0 {
            self.races.store(left - 1, Ordering::SeqCst);
            let code = format!("OTHER-{left}");
            let other = persist::load(&self.inner).await.expect("load");
            persist::write(
                &self.inner,
                &other,
                &[Record::Customer(customer(&code, None))],
                at,
            )
            .await
            .expect("the other writer");
        }
        self.inner.put_master(batch, at).await
    }

    async fn load_master(&self) -> backhaul_store::Result<MasterSnapshot> {
        self.inner.load_master().await
    }

    async fn master_revision(&self) -> backhaul_store::Result<i64> {
        self.inner.master_revision().await
    }
}

#[tokio::test]
async fn losing_a_race_validates_again_and_keeps_the_winners_data() {
    let (inner, _dir) = store().await;
    let racing = Racing {
        inner: inner.clone(),
        races: Arc::new(AtomicU32::new(1)),
    };
    let base = persist::load(&racing).await.expect("load");
    let outcome = persist::write(
        &racing,
        &base,
        &[Record::Customer(customer("MINE", None))],
        now(),
    )
    .await
    .expect("written on the second attempt");
    let data = outcome.data.expect("written");
    assert_eq!(data.revision(), 2, "after the other writer's revision 1");
    assert!(
        data.customer(&account("OTHER-1")).is_some(),
        "the winner's record is in the result"
    );
    assert!(data.customer(&account("MINE")).is_some());
    assert_eq!(
        persist::load(&inner)
            .await
            .expect("load")
            .count(Kind::Customer),
        2
    );

    // A writer that keeps losing gives up without writing.
    racing.races.store(5, Ordering::SeqCst);
    let error = persist::write(
        &racing,
        &data,
        &[Record::Customer(customer("LATE", None))],
        now(),
    )
    .await
    .expect_err("contended");
    assert!(matches!(error, Error::Contended), "{error}");
    let stored = persist::load(&inner).await.expect("load");
    assert!(stored.customer(&account("LATE")).is_none());
    assert_eq!(
        stored.count(Kind::Customer),
        5,
        "MINE, OTHER-1 and three more winners"
    );
}
