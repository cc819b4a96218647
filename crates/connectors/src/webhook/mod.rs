//! Signed outbound webhooks (`kind = "webhook"`, target `portal`): the
//! return's status changes POSTed to every subscribed CRM, portal or
//! analytics endpoint in the Standard Webhooks format, signed with each
//! subscriber's secret.
//!
//! Same folder shape as the other connectors, with a sink of its own since
//! one delivery goes to several endpoints:
//! - `config`: [`SubscriberConfig`], one `[[connectors.portal.subscribers]]`.
//! - `encoder`: the event (`return.status_changed`) and its body.
//! - `sink`: [`WebhookSink`], which signs, fans out and classifies answers.
//!
//! # The wire
//!
//! `POST <url>` with `Content-Type: application/json` and the three Standard
//! Webhooks headers: `webhook-id` is the delivery key (the same on every
//! attempt, so a subscriber drops what it has seen), `webhook-timestamp` the
//! attempt's time in Unix seconds, `webhook-signature` one `v1,<base64>`
//! HMAC-SHA256 of `{id}.{timestamp}.{body}` per secret (the current one,
//! then those being rotated out). The body:
//!
//! ```json
//! {"type": "return.status_changed", "timestamp": "<when the status changed>",
//!  "data": {"return_id": "…", "rma_number": "RMA-…", "customer": "…",
//!           "order_ref": "…", "status": "received", "stage": "…",
//!           "owner": "…", "version": 7, "at": "…"}}
//! ```
//!
//! # Several subscribers: one delivery, fanned out
//!
//! The outbox knows one delivery per status change and target; the sink
//! sends it to every subscriber whose filter (event type, status) matches,
//! concurrently. A subscriber's 2xx is remembered (in memory) against the
//! delivery key, so when another subscriber's failure makes the dispatcher
//! retry, only the subscribers that have not answered 2xx get it again.
//! After a restart that memory is gone and a retry goes to every matching
//! subscriber once more: delivery is at least once per subscriber, and the
//! unchanged `webhook-id` is what lets a subscriber drop the repeat.
//!
//! Answers, per subscriber, as every HTTP connector classifies them: 2xx
//! done; 408, 425, 429, 5xx and connection errors technical (retried with
//! the connector's backoff, honouring `Retry-After`); other 4xx business
//! (410 Gone included: the subscriber says the endpoint is gone for good).
//! The delivery's result is technical if any subscriber's was (a retry may
//! still help), else business if any subscriber refused (the exception
//! queue names the subscriber; an operator retries or skips it), else done.
//!
//! A failing subscriber holds the return's portal lane, as a failing
//! portal would: later status changes of that return wait behind it.

mod config;
mod encoder;
mod sink;

pub use config::SubscriberConfig;
pub use encoder::STATUS_CHANGED;
pub use sink::WebhookSink;
