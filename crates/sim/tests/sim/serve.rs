//! `serve` on a real socket: it answers, and returns once the shutdown token
//! is cancelled. The only test that opens a socket.

use backhaul_sim::{Sim, SimConfig, SimDb, SimKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn serve_answers_until_shutdown() {
    let sim = Sim::open(SimConfig::new(SimKind::Carrier), SimDb::Memory)
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();

    let client = async {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: sim\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        shutdown.cancel();
        response
    };
    let server = backhaul_sim::serve(sim, listener, shutdown.clone());
    let (served, response) = tokio::join!(server, client);

    served.unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(
        response.ends_with(r#"{"status":"ok","kind":"carrier"}"#),
        "{response}"
    );
    assert!(
        TcpStream::connect(address).await.is_err(),
        "the listener is closed after shutdown"
    );
}
