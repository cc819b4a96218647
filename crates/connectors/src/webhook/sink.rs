//! [`WebhookSink`]: signs one delivery per subscriber, sends them together,
//! remembers who answered 2xx, and sorts the answers into one result. The
//! fan-out and failure rules are in the module above.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use backhaul_domain::action::{ActionResult, Target};
use backhaul_domain::values::ExternalRef;
use backhaul_engine::{BoxFuture, Clock, DeliveryRequest, Sink, SinkError};
use backhaul_webhooks::{EndpointUrl, EventPattern, MessageId, Secret, Subscription};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::Method;
use sha2::{Digest, Sha256};

use super::config::SubscriberConfig;
use super::encoder::{self, Encoded};
use crate::http::{ClientTls, Remote, TlsConfig, Transport, classify};
use crate::{BuildError, ConnectorConfig};

/// Delivery keys whose acknowledgements are remembered at most. A key is
/// forgotten once all its subscribers answered 2xx; the ones left are
/// deliveries still failing somewhere, so this bounds memory, not
/// correctness (a forgotten key costs repeats the `webhook-id` absorbs).
const ACK_MEMORY: usize = 4096;

/// One subscriber, ready to send to.
struct Subscriber {
    name: String,
    subscription: Subscription,
    transport: Arc<dyn Transport>,
    /// Path and query of the subscriber's URL; the transport holds the
    /// origin.
    path: String,
}

/// Which subscribers answered 2xx, per delivery key.
#[derive(Default)]
struct Acked {
    by_key: HashMap<String, HashSet<String>>,
    /// Keys in the order they were first acknowledged, for eviction.
    order: VecDeque<String>,
}

impl Acked {
    fn contains(&self, key: &str, subscriber: &str) -> bool {
        self.by_key
            .get(key)
            .is_some_and(|names| names.contains(subscriber))
    }

    fn insert(&mut self, key: &str, subscriber: &str) {
        if !self.by_key.contains_key(key) {
            if self.order.len() >= ACK_MEMORY
                && let Some(oldest) = self.order.pop_front()
            {
                self.by_key.remove(&oldest);
            }
            self.order.push_back(key.to_owned());
        }
        self.by_key
            .entry(key.to_owned())
            .or_default()
            .insert(subscriber.to_owned());
    }

    fn forget(&mut self, key: &str) {
        if self.by_key.remove(key).is_some() {
            self.order.retain(|k| k != key);
        }
    }
}

/// The webhook connector's sink.
pub struct WebhookSink {
    system: ExternalRef,
    subscribers: Vec<Subscriber>,
    /// Signs each attempt with the time it is made.
    clock: Arc<dyn Clock>,
    acked: Mutex<Acked>,
}

impl WebhookSink {
    /// Checks `config` (a `[connectors.<section>]` of kind `webhook`) and
    /// resolves the subscribers' secrets through `env`. Errors name the key.
    pub fn from_config(
        section: &str,
        config: &ConnectorConfig,
        env: &dyn Fn(&str) -> Option<String>,
        clock: Arc<dyn Clock>,
    ) -> Result<WebhookSink, BuildError> {
        let invalid = |key: String, message: String| BuildError::Invalid {
            target: format!("connectors.{section}{key}"),
            message,
        };
        if !config.url.is_empty() {
            return Err(invalid(
                ".url".into(),
                "a webhook connector has no url of its own; each subscriber has one".into(),
            ));
        }
        if config.subscribers.is_empty() {
            return Err(invalid(
                ".subscribers".into(),
                "a webhook connector needs at least one [[connectors.portal.subscribers]]".into(),
            ));
        }
        let system = ExternalRef::parse(config.system.as_deref().unwrap_or(section))
            .map_err(|e| invalid(".system".into(), e.to_string()))?;
        // The connector's TLS settings, for the subscribers without their
        // own; checked once, even if every subscriber has its own.
        let shared_tls = ClientTls::build(config.tls.as_ref().unwrap_or(&TlsConfig::default()))
            .map_err(|e| invalid(format!(".{}", e.field), e.message))?;
        let mut subscribers: Vec<Subscriber> = Vec::new();
        for (i, sub) in config.subscribers.iter().enumerate() {
            let key = |field: &str| format!(".subscribers[{i}].{field}");
            subscribers.push(
                subscriber(sub, &shared_tls, env)
                    .map_err(|(field, message)| invalid(key(&field), message))?,
            );
            if subscribers[..i].iter().any(|s| s.name == sub.name) {
                return Err(invalid(
                    key("name"),
                    format!("{:?} names another subscriber too", sub.name),
                ));
            }
        }
        Ok(WebhookSink {
            system,
            subscribers,
            clock,
            acked: Mutex::new(Acked::default()),
        })
    }

    /// The names of the subscribers, in configuration order.
    pub fn subscriber_names(&self) -> Vec<&str> {
        self.subscribers.iter().map(|s| s.name.as_str()).collect()
    }

    fn acked(&self) -> std::sync::MutexGuard<'_, Acked> {
        // A set of names holds no invariant a panic could break half-way.
        self.acked.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One signed POST to one subscriber.
    async fn send(
        &self,
        subscriber: &Subscriber,
        id: &MessageId,
        now: DateTime<Utc>,
        event: &Encoded,
    ) -> Result<(), SinkError> {
        let mut builder = http::Request::builder()
            .method(Method::POST)
            .uri(&subscriber.path)
            .header(http::header::CONTENT_TYPE, "application/json");
        for (name, value) in subscriber.subscription.headers(id, now, &event.body) {
            builder = builder.header(name, value);
        }
        let request = builder
            .body(Bytes::from(event.body.clone()))
            .map_err(|e| SinkError::business("encode_failed", e.to_string()))?;
        let (status, headers, body) = subscriber.transport.send(request).await?;
        classify(status, &headers, &body)
    }
}

/// Builds one subscriber (with `shared_tls` unless it has TLS settings of
/// its own), or the field at fault and why.
fn subscriber(
    config: &SubscriberConfig,
    shared_tls: &ClientTls,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Subscriber, (String, String)> {
    let field = |name: &str, message: String| (name.to_owned(), message);
    let name_ok = !config.name.is_empty()
        && config.name.len() <= 64
        && config.name.bytes().all(|b| b.is_ascii_graphic());
    if !name_ok {
        return Err(field("name", "1 to 64 visible ASCII characters".to_owned()));
    }
    let url = EndpointUrl::parse(&config.url).map_err(|e| field("url", e.to_string()))?;
    let (origin, path) = split_url(url.as_str()).map_err(|m| field("url", m))?;
    let own_tls = match &config.tls {
        Some(settings) => Some(ClientTls::build(settings).map_err(|e| field(e.field, e.message))?),
        None => None,
    };
    let remote = Remote::with_tls(&origin, own_tls.as_ref().unwrap_or(shared_tls))
        .map_err(|m| field("url", m))?;
    if own_tls.is_some() && !remote.is_https() {
        return Err(field(
            "tls",
            format!(
                "the settings are for an https:// url, and `{}` is plain http",
                config.url
            ),
        ));
    }
    let transport: Arc<dyn Transport> = Arc::new(remote);
    let secret = Secret::from_env(&config.secret_env, env)
        .map_err(|e| field("secret_env", e.to_string()))?;
    let previous = config
        .previous_secret_envs
        .iter()
        .enumerate()
        .map(|(i, variable)| {
            Secret::from_env(variable, env)
                .map_err(|e| field(&format!("previous_secret_envs[{i}]"), e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let event_types = config
        .event_types
        .iter()
        .enumerate()
        .map(|(i, pattern)| {
            EventPattern::parse(pattern)
                .map_err(|e| field(&format!("event_types[{i}]"), e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let statuses = config
        .statuses
        .as_ref()
        .map(|list| list.iter().map(|s| s.as_str().to_owned()).collect());
    let subscription =
        Subscription::new(url, secret, previous, event_types, statuses).map_err(|e| {
            let name = if config.event_types.is_empty() {
                "event_types"
            } else {
                "statuses"
            };
            field(name, e.to_string())
        })?;
    Ok(Subscriber {
        name: config.name.clone(),
        subscription,
        transport,
        path,
    })
}

/// `http://host:port/a/b?c` → (`http://host:port`, `/a/b?c`): the transport
/// joins the path to the origin, so the subscriber's URL is used exactly.
fn split_url(text: &str) -> Result<(String, String), String> {
    let url = url::Url::parse(text).map_err(|e| e.to_string())?;
    let origin = url.origin().ascii_serialization();
    let mut path = url.path().to_owned();
    if let Some(query) = url.query() {
        path.push('?');
        path.push_str(query);
    }
    Ok((origin, path))
}

/// The `webhook-id` of a delivery: its key, which is the same on every
/// attempt. A key that is not a valid message id (none the domain makes
/// today, but a vendor name may bring a `.`) becomes a digest of itself, as
/// stable as the key.
fn message_id(key: &str) -> Result<MessageId, SinkError> {
    MessageId::parse(key)
        .or_else(|_| MessageId::parse(&format!("msg_{}", hex::encode(Sha256::digest(key)))))
        .map_err(|e| SinkError::business("invalid_message_id", e.to_string()))
}

/// One result out of every subscriber's: technical if any was (a retry may
/// help), else business if any was, naming each failing subscriber.
fn combine(failures: Vec<(&str, SinkError)>) -> SinkError {
    let describe = |failures: &[(&str, SinkError)]| {
        failures
            .iter()
            .map(|(name, e)| format!("subscriber {name}: {e}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let (technical, business): (Vec<_>, Vec<_>) = failures
        .into_iter()
        .partition(|(_, e)| matches!(e, SinkError::Technical { .. }));
    if let Some((_, SinkError::Technical { code, status, .. })) = technical.first() {
        let retry_after = technical
            .iter()
            .filter_map(|(_, e)| match e {
                SinkError::Technical { retry_after, .. } => *retry_after,
                SinkError::Business { .. } => None,
            })
            .max();
        let mut message = describe(&technical);
        if !business.is_empty() {
            message = format!("{message}; also refused by {}", describe(&business));
        }
        return SinkError::Technical {
            code: code.clone(),
            message,
            status: *status,
            retry_after,
        };
    }
    match business.first() {
        Some((_, SinkError::Business { code, status, .. })) => SinkError::Business {
            code: code.clone(),
            message: describe(&business),
            status: *status,
        },
        // Only reached with no failures at all, which callers do not pass.
        Some((_, SinkError::Technical { .. })) | None => {
            SinkError::technical("no_failure", "combine was called without failures")
        }
    }
}

impl Sink for WebhookSink {
    fn target(&self) -> Target {
        Target::Portal
    }

    fn system(&self) -> &ExternalRef {
        &self.system
    }

    fn deliver<'a>(
        &'a self,
        request: DeliveryRequest<'a>,
    ) -> BoxFuture<'a, Result<ActionResult, SinkError>> {
        Box::pin(async move {
            let event = encoder::encode(request.action)?;
            let id = message_id(request.key)?;
            let due: Vec<&Subscriber> = {
                let acked = self.acked();
                self.subscribers
                    .iter()
                    .filter(|s| s.subscription.matches(event.event_type, Some(event.status)))
                    .filter(|s| !acked.contains(request.key, &s.name))
                    .collect()
            };
            if due.is_empty() {
                // Nobody wants this status, or everybody has it already.
                return Ok(ActionResult::Accepted);
            }
            // One timestamp for the attempt: each subscriber's tolerance is
            // measured from when it was sent.
            let now = self.clock.now();
            let sends = due.iter().map(|subscriber| {
                let (id, event) = (&id, &event);
                async move {
                    let result = self.send(subscriber, id, now, event).await;
                    if result.is_ok() {
                        // Remembered at once, so an attempt the dispatcher
                        // cuts short still spares this subscriber a repeat.
                        self.acked().insert(request.key, &subscriber.name);
                    }
                    (subscriber.name.as_str(), result)
                }
            });
            let failures: Vec<(&str, SinkError)> = futures_util::future::join_all(sends)
                .await
                .into_iter()
                .filter_map(|(name, result)| result.err().map(|e| (name, e)))
                .collect();
            for (name, error) in &failures {
                tracing::warn!(
                    delivery_id = request.delivery_id,
                    attempt = request.attempt,
                    subscriber = name,
                    %error,
                    "webhook subscriber did not accept"
                );
            }
            if failures.is_empty() {
                self.acked().forget(request.key);
                Ok(ActionResult::Accepted)
            } else {
                Err(combine(failures))
            }
        })
    }

    /// Subscribers have no health endpoint in the Standard Webhooks
    /// conventions, and probing them with a fake event would be noise in
    /// their logs; the breaker and the delivery counters tell how they do.
    fn health(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_origin_and_exact_path() {
        assert_eq!(
            split_url("http://crm.internal:8080/hooks/backhaul?tenant=7").unwrap(),
            (
                "http://crm.internal:8080".to_owned(),
                "/hooks/backhaul?tenant=7".to_owned()
            )
        );
        assert_eq!(
            split_url("http://crm").unwrap(),
            ("http://crm".to_owned(), "/".to_owned())
        );
    }

    #[test]
    fn message_ids_are_the_key_or_a_stable_digest() {
        assert_eq!(
            message_id("RMA-1:portal_status:7").unwrap().as_str(),
            "RMA-1:portal_status:7"
        );
        let dotted = message_id("RMA-1:erp_supplier_claim:7:acme.inc").unwrap();
        assert!(dotted.as_str().starts_with("msg_"));
        assert_eq!(
            dotted,
            message_id("RMA-1:erp_supplier_claim:7:acme.inc").unwrap()
        );
    }

    #[test]
    fn acknowledgements_are_bounded_and_forgotten_when_done() {
        let mut acked = Acked::default();
        acked.insert("k1", "crm");
        assert!(acked.contains("k1", "crm"));
        assert!(!acked.contains("k1", "bi"));
        acked.forget("k1");
        assert!(!acked.contains("k1", "crm"));
        for i in 0..=ACK_MEMORY {
            acked.insert(&format!("k{i}"), "crm");
        }
        assert_eq!(acked.by_key.len(), ACK_MEMORY);
        assert!(!acked.contains("k0", "crm"), "the oldest went first");
    }

    #[test]
    fn technical_failures_win_and_every_subscriber_is_named() {
        let technical = SinkError::Technical {
            code: "http_503".into(),
            message: "busy".into(),
            status: Some(503),
            retry_after: Some(std::time::Duration::from_secs(3)),
        };
        let gone = SinkError::Business {
            code: "http_410".into(),
            message: "Gone".into(),
            status: Some(410),
        };
        let both = combine(vec![("bi", gone.clone()), ("crm", technical)]);
        let SinkError::Technical {
            message,
            retry_after,
            ..
        } = &both
        else {
            panic!("{both:?}");
        };
        assert!(message.contains("subscriber crm") && message.contains("subscriber bi"));
        assert_eq!(*retry_after, Some(std::time::Duration::from_secs(3)));
        let only_gone = combine(vec![("bi", gone)]);
        assert!(matches!(
            only_gone,
            SinkError::Business {
                status: Some(410),
                ..
            }
        ));
    }
}
