//! Tests of the public interface of `backhaul-webhooks`, in one binary.

mod replay;
mod signing;
mod subscription;
mod verification;

use backhaul_webhooks::{MessageId, Secret};
use chrono::{DateTime, Utc};

/// The Standard Webhooks reference vector, as used by the reference libraries' tests
/// (for example `libraries/php/tests/WebhookTest.php`, `testSignFunctionWorks`).
pub(crate) const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub(crate) const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
pub(crate) const VECTOR_TIMESTAMP: i64 = 1_614_265_330;
pub(crate) const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
pub(crate) const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

pub(crate) fn secret(text: &str) -> Secret {
    Secret::parse(text).expect("test secret parses")
}

pub(crate) fn id(text: &str) -> MessageId {
    MessageId::parse(text).expect("test id parses")
}

pub(crate) fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(seconds, 0).expect("test time in range")
}

/// A second, distinct secret: 32 bytes of 0x01.
pub(crate) const OTHER_SECRET: &str = "whsec_AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
