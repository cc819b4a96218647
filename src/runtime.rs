//! Starting and stopping the hub. One root [`CancellationToken`] and one
//! [`TaskTracker`] own every task. Shutdown order: stop accepting HTTP
//! requests and finish the ones in flight → cancel the token → the group
//! committer commits what is queued and answers its callers, and the
//! dispatcher lets its attempts in flight end (each bounded by its timeout;
//! an attempt cut short stays leased and is redelivered with the same key
//! after the restart), and the broker publisher finishes the publish in
//! flight and stops (what it had not published yet is published after the
//! restart: it resumes from the stream's last message), and the broker
//! consumer finishes the message in hand (one not acknowledged yet is
//! redelivered after the restart; its dedup key makes it a duplicate if it
//! was committed), each drop folder stops between two requests of the
//! file in hand (the file stays in `processing/` and is processed again
//! after the restart, what was applied coming back as duplicates), and the
//! Kafka publisher and consumer (with the `kafka` feature) do as NATS's do:
//! a batch in flight is acknowledged and checkpointed, a message in hand is
//! applied and its offset committed → wait for every task to end.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use backhaul_api::{AppState, InboundWebhooks, router};
use backhaul_engine::{Dispatcher, Engine, Expirer, Inbox, RulesHandle, SystemClock};
use backhaul_store::AnyStore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;

/// How long in-flight HTTP requests may take to finish once shutdown began.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs `backhaul serve` until SIGINT or SIGTERM.
pub(crate) async fn serve(config: Config) -> anyhow::Result<()> {
    let store = AnyStore::open(&config.store)
        .await
        .with_context(|| format!("cannot open the store at {}", config.store.url))?;
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    // Everything that can refuse the configuration is built before the
    // first task starts.
    let sinks = backhaul_connectors::build(&config.connectors, &BTreeMap::new())
        .context("invalid connector configuration")?;
    let sources = backhaul_connectors::build_sources(&config.sources, &BTreeMap::new())
        .context("invalid source configuration")?;
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let webhooks =
        InboundWebhooks::build(&config.webhooks).context("invalid webhook configuration")?;
    let server_tls = match &config.server.tls {
        Some(tls) => Some(tls.load()?),
        None => None,
    };
    let publisher = if config.broker.nats.enabled() {
        Some(
            backhaul_broker::Publisher::build(&config.broker.nats, store.clone())
                .context("invalid broker configuration")?,
        )
    } else {
        None
    };
    // The consumer needs the engine, started below; its section is checked
    // here so a bad one is refused before any task starts (a
    // `[broker.kafka]` section in a hub built without Kafka included).
    config
        .broker
        .validate()
        .context("invalid broker configuration")?;
    #[cfg(feature = "kafka")]
    let kafka_publisher = match &config.broker.kafka {
        Some(kafka) => Some(
            backhaul_broker::KafkaPublisher::build(kafka, store.clone())
                .context("invalid broker configuration")?,
        ),
        None => None,
    };
    let policy = match &config.policy.file {
        Some(file) => Some(crate::policy::load(file)?),
        None => None,
    };
    let master = backhaul_master::persist::load(&store)
        .await
        .context("cannot load master data")?;
    tracing::info!(
        policy = policy.as_ref().map_or("none", |p| p.version()),
        master_revision = master.revision(),
        "rules in force"
    );
    let mut engine_config = config.engine.clone();
    engine_config.connect(&sinks);
    engine_config.rules = RulesHandle::new(policy, master);
    engine_config.dispose_on_inspection = config.policy.dispose_on_inspection;
    let engine = Engine::open(
        store,
        engine_config,
        Arc::new(SystemClock),
        &tracker,
        shutdown.child_token(),
    )
    .await?;
    let dispatcher = Dispatcher::new(engine.clone(), config.dispatcher.clone(), sinks)
        .map_err(|e| anyhow::anyhow!("dispatcher: {e}"))?;
    let connected = (!dispatcher.targets().is_empty()).then(|| dispatcher.clone());
    if connected.is_some() {
        tracing::info!(targets = ?dispatcher.targets(), "delivering the outbox");
        tracker.spawn(dispatcher.run(shutdown.child_token()));
    }
    if config.policy.reload_secs > 0 {
        let every = std::time::Duration::from_secs(config.policy.reload_secs);
        tracker.spawn(crate::policy::reload(
            engine.clone(),
            config.policy.file.clone(),
            every,
            shutdown.child_token(),
        ));
    }
    if config.expiry.interval_secs > 0 {
        let every = std::time::Duration::from_secs(config.expiry.interval_secs);
        tracker.spawn(Expirer::new(engine.clone()).run(every, shutdown.child_token()));
    }
    if let Some(publisher) = publisher {
        tracing::info!(
            url = %config.broker.nats.url,
            stream = %config.broker.nats.stream,
            "publishing events to NATS"
        );
        tracker.spawn(publisher.run(shutdown.child_token()));
    }
    if config.broker.nats.consumer.enabled {
        let consumer = backhaul_broker::Consumer::build(&config.broker.nats, engine.clone())
            .context("invalid broker configuration")?;
        tracing::info!(
            url = %config.broker.nats.url,
            stream = %config.broker.nats.consumer.stream,
            durable = %config.broker.nats.consumer.durable,
            source = %config.broker.nats.consumer.source,
            "consuming commands from NATS"
        );
        tracker.spawn(consumer.run(shutdown.child_token()));
    }
    // Built (folders created and checked) before any of them starts, so a
    // bad folder stops the hub at start-up rather than half-way.
    let mut drops = Vec::with_capacity(config.drops.len());
    for (name, drop) in &config.drops {
        drops.push(
            backhaul_filedrop::FileDrop::build(name, drop, engine.clone())
                .context("invalid drop folder configuration")?,
        );
    }
    for drop in drops {
        tracing::info!(drop = drop.name(), "receiving files");
        tracker.spawn(drop.run(shutdown.child_token()));
    }
    #[cfg(feature = "kafka")]
    if let (Some(kafka), Some(publisher)) = (&config.broker.kafka, kafka_publisher) {
        tracing::info!(
            bootstrap_servers = %kafka.bootstrap_servers,
            topic = %kafka.topic,
            "publishing events to Kafka"
        );
        tracker.spawn(publisher.run(shutdown.child_token()));
        if kafka.consumer.enabled {
            let consumer = backhaul_broker::KafkaConsumer::build(kafka, engine.clone())
                .context("invalid broker configuration")?;
            tracing::info!(
                topic = %kafka.consumer.topic,
                group_id = %kafka.consumer.group_id,
                source = %kafka.consumer.source,
                "consuming commands from Kafka"
            );
            tracker.spawn(consumer.run(shutdown.child_token()));
        }
    }
    for source in sources {
        let inbox = Inbox::new(engine.clone(), source.name());
        tracing::info!(source = source.name(), "receiving");
        tracker.spawn(source.run(inbox, shutdown.child_token()));
    }
    let addr = config.listen_addr()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    tracing::info!(
        %addr,
        tls = server_tls.is_some(),
        store = engine.store().backend_name(),
        "backhaul listening"
    );
    let http_stop = CancellationToken::new();
    let signal_stop = http_stop.clone();
    tracker.spawn(async move {
        tokio::select! {
            () = wait_for_signal() => signal_stop.cancel(),
            () = signal_stop.cancelled() => {}
        }
    });
    for source in webhooks.names() {
        tracing::info!(source, path = %format!("/v1/webhooks/{source}"), "receiving signed webhooks");
    }
    let app = router(AppState {
        engine,
        config: config.api.clone(),
        dispatcher: connected,
        webhooks,
    });
    // In-flight requests get a grace period; a client that stalls longer
    // does not hold the shutdown (its request is dropped, nothing half-stored:
    // appends are all-or-nothing).
    let grace = {
        let stop = http_stop.clone();
        async move {
            stop.cancelled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        }
    };
    let serving: std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> =
        match server_tls {
            Some(tls) => Box::pin(backhaul_api::serve_tls(
                listener,
                tls,
                app,
                http_stop.clone(),
            )),
            None => Box::pin(backhaul_api::serve(listener, app, http_stop.clone())),
        };
    let served = tokio::select! {
        served = serving => served,
        () = grace => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "requests still open after the grace period; stopping anyway");
            Ok(())
        }
    };
    http_stop.cancel();
    shutdown.cancel();
    tracker.close();
    tracker.wait().await;
    tracing::info!("backhaul stopped");
    served.context("HTTP server failed")
}

pub(crate) async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the hub");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
