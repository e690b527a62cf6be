//! Enforcing `controller_mutation_rate` quotas (KIP-599) in CreateTopics, CreatePartitions and
//! DeleteTopics: see [`crate::quota`] for the model.

use std::rc::Rc;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;

use super::handlers::Request;
use crate::quota::{self, CONTROLLER_MUTATION_RATE, MeterKey};
use crate::shard::ShardCtx;

/// The message Kafka gives a topic refused by the quota (`Errors.THROTTLING_QUOTA_EXCEEDED`).
pub const EXCEEDED_MESSAGE: &str = "The throttling quota has been exceeded.";

/// One request's view of its client's mutation quota. Without a quota every method is a no-op.
pub struct MutationQuota {
    inner: Option<Metered>,
    /// The throttle time the answer carries (Kafka's `lastThrottleTimeMs`).
    throttle_ms: u64,
}

struct Metered {
    ctx: Rc<ShardCtx>,
    quota: f64,
    meter: MeterKey,
    strict: bool,
}

fn now_ms() -> u64 {
    crate::util::now_ms().max(0) as u64
}

impl MutationQuota {
    /// The quota of `req`'s client; strict (topics refused while exceeded) from `strict_since`.
    pub fn for_request(req: &Request, strict_since: i16) -> MutationQuota {
        let snap = req.ctx.metadata();
        let inner = quota::any_has(&snap.quotas, CONTROLLER_MUTATION_RATE)
            .then(|| {
                let client_id = req.header.client_id.as_deref().unwrap_or("");
                quota::resolve(
                    &snap.quotas,
                    CONTROLLER_MUTATION_RATE,
                    &req.principal().name,
                    client_id,
                )
            })
            .flatten()
            .map(|(quota, meter)| Metered {
                ctx: req.ctx.clone(),
                quota,
                meter,
                strict: req.version >= strict_since,
            });
        MutationQuota {
            inner,
            throttle_ms: 0,
        }
    }

    /// Before a topic's mutation: in strict mode, THROTTLING_QUOTA_EXCEEDED (code) if the quota is
    /// exceeded now; the throttle time is remembered for the answer.
    pub fn admit(&mut self) -> Result<(), i16> {
        let Some(m) = &self.inner else {
            return Ok(());
        };
        if !m.strict {
            return Ok(());
        }
        let ms = m
            .ctx
            .info
            .quota_meters
            .mutation_throttle_ms(&m.meter, m.quota, now_ms());
        if ms > 0 {
            self.throttle_ms = ms;
            return Err(ResponseError::ThrottlingQuotaExceeded.code());
        }
        Ok(())
    }

    /// After a topic's mutation of `partitions` partitions. Permissive (old versions) remembers
    /// the throttle time the mutation caused; strict mode only refuses the next topic.
    pub fn record(&mut self, partitions: i32) {
        let Some(m) = &self.inner else {
            return;
        };
        if partitions <= 0 {
            return;
        }
        let ms = m.ctx.info.quota_meters.record_mutation(
            m.meter.clone(),
            m.quota,
            f64::from(partitions),
            now_ms(),
        );
        if !m.strict && ms > 0 {
            self.throttle_ms = ms;
        }
    }

    /// The answer's throttle time; mutes `req`'s connection for it.
    pub fn finish(&self, req: &Request) -> i32 {
        if self.throttle_ms == 0 {
            return 0;
        }
        let until = Instant::now() + Duration::from_millis(self.throttle_ms);
        if req.muted_until.get().is_none_or(|u| u < until) {
            req.muted_until.set(Some(until));
        }
        i32::try_from(self.throttle_ms).unwrap_or(i32::MAX)
    }
}
