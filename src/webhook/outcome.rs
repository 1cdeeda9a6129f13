//! What became of a webhook delivery, named as the metrics and the 400 body name it: the
//! `Outcome` of a verified delivery, and the `Refusal` of one that never got that far.

/// What applying a verified delivery came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stored, and the in-memory caches follow it.
    Applied,
    /// The same `svix-id` was applied before.
    Duplicate,
    /// Older than what the mirror has, or about a deleted row.
    Ignored,
    /// An event type the mirror does not keep.
    NotMirrored,
    /// The mirror could not store it; Svix will retry.
    Failed,
}

impl Outcome {
    /// Every outcome, in discriminant order.
    pub const ALL: [Outcome; 5] =
        [Outcome::Applied, Outcome::Duplicate, Outcome::Ignored, Outcome::NotMirrored, Outcome::Failed];

    /// The label of every outcome, in `ALL` order.
    pub const NAMES: &'static [&'static str] = names_of!(Outcome);

    /// The metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored => "ignored",
            Outcome::NotMirrored => "not-mirrored",
            Outcome::Failed => "failed",
        }
    }

    /// Position in `ALL`.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Why a delivery was refused before anything changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// An id, timestamp or signature header is missing.
    MissingHeaders,
    /// The signed timestamp is unreadable or more than five minutes away.
    StaleTimestamp,
    /// No `v1` signature matches.
    InvalidSignature,
    /// Verified, but not an event the gateway can read.
    InvalidPayload,
    /// Over 1 MiB (answered 413).
    TooLarge,
    /// Not all there within `webhook.body_timeout` (answered 408).
    Timeout,
}

impl Refusal {
    /// Every refusal, in discriminant order.
    pub const ALL: [Refusal; 6] = [
        Refusal::MissingHeaders,
        Refusal::StaleTimestamp,
        Refusal::InvalidSignature,
        Refusal::InvalidPayload,
        Refusal::TooLarge,
        Refusal::Timeout,
    ];

    /// The label of every refusal, in `ALL` order.
    pub const NAMES: &'static [&'static str] = names_of!(Refusal);

    /// The reason, as in the 400 body and the metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Refusal::MissingHeaders => "missing-headers",
            Refusal::StaleTimestamp => "stale-timestamp",
            Refusal::InvalidSignature => "invalid-signature",
            Refusal::InvalidPayload => "invalid-payload",
            Refusal::TooLarge => "too-large",
            Refusal::Timeout => "timeout",
        }
    }

    /// Position in `ALL`.
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_discriminants() {
        for (i, outcome) in Outcome::ALL.iter().enumerate() {
            assert_eq!((outcome.index(), Outcome::NAMES[i]), (i, outcome.as_str()));
        }
        for (i, refusal) in Refusal::ALL.iter().enumerate() {
            assert_eq!((refusal.index(), Refusal::NAMES[i]), (i, refusal.as_str()));
        }
    }
}
