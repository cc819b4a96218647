//! The real HTTP transport: a connector with an `http://` URL talking to a
//! simulator served on a socket, and one pointing at a port nobody listens
//! on. The server runs joined with the client in the test's own task, so
//! nothing outlives the test.

use std::collections::BTreeMap;

use backhaul_domain::action::{ActionKind, Target};
use backhaul_engine::SinkError;
use backhaul_sim::{Sim, SimConfig, SimDb, SimKind};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::helpers::{
    RMA, action, assert_technical, build_one, config, deliver, document, no_prerequisites,
};

#[tokio::test]
async fn a_connector_with_an_http_url_delivers_over_a_socket() {
    let sim = Sim::open(SimConfig::new(SimKind::Erp), SimDb::Memory)
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sink = build_one(Target::Erp, config(Target::Erp, &url), BTreeMap::new()).unwrap();
    let shutdown = CancellationToken::new();
    let order = action(ActionKind::ErpReturnOrder);

    let client = async {
        let health = sink.health().await;
        let first = deliver(sink.as_ref(), &order, "remote-1", &no_prerequisites()).await;
        let again = deliver(sink.as_ref(), &order, "remote-1", &no_prerequisites()).await;
        // The client's pooled connections go with the sink, so the server's
        // graceful shutdown has nothing left to wait for.
        drop(sink);
        shutdown.cancel();
        (health, first, again)
    };
    let server = backhaul_sim::serve(sim.clone(), listener, shutdown.clone());
    let (served, (health, first, again)) = tokio::join!(server, client);

    served.unwrap();
    assert_eq!(health, Ok(()));
    assert_eq!(first, Ok(document("RO-000001")));
    assert_eq!(again, first, "a repeated key is answered again");
    let postings = sim.postings().await.unwrap();
    assert_eq!(postings.len(), 1);
    assert_eq!(postings[0].number.as_deref(), Some("RO-000001"));
    assert_eq!(postings[0].idempotency_key, "remote-1");
    assert_eq!(postings[0].rma, RMA);
}

#[tokio::test]
async fn a_connector_pointing_at_a_closed_port_fails_technically() {
    // Bind to learn a free port, then close it.
    let address = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{address}");
    let sink = build_one(
        Target::Portal,
        config(Target::Portal, &url),
        BTreeMap::new(),
    )
    .unwrap();

    let result = deliver(
        sink.as_ref(),
        &action(ActionKind::PortalStatus),
        "closed",
        &no_prerequisites(),
    )
    .await;
    let health = sink.health().await;

    assert_technical(result, "connection", None);
    assert!(
        matches!(&health, Err(SinkError::Technical { code, .. }) if code == "connection"),
        "{health:?}"
    );
}
