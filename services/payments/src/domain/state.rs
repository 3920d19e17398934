//! The payment-intent state machine.
//!
//! An intent waits for a payment method, then for confirmation, then the processor decides. A
//! processor may ask the payer for an extra step (3-D Secure, a bank approval) before it decides.
//! Once an intent has succeeded, failed or been canceled it never changes again, so a late or
//! repeated processor callback cannot move money twice.

/// Where a payment intent stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntentStatus {
    RequiresPaymentMethod,
    RequiresConfirmation,
    Processing,
    RequiresAction,
    Succeeded,
    Failed,
    Canceled,
}

impl IntentStatus {
    pub const ALL: [IntentStatus; 7] = [
        IntentStatus::RequiresPaymentMethod,
        IntentStatus::RequiresConfirmation,
        IntentStatus::Processing,
        IntentStatus::RequiresAction,
        IntentStatus::Succeeded,
        IntentStatus::Failed,
        IntentStatus::Canceled,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            IntentStatus::RequiresPaymentMethod => "requires_payment_method",
            IntentStatus::RequiresConfirmation => "requires_confirmation",
            IntentStatus::Processing => "processing",
            IntentStatus::RequiresAction => "requires_action",
            IntentStatus::Succeeded => "succeeded",
            IntentStatus::Failed => "failed",
            IntentStatus::Canceled => "canceled",
        }
    }

    /// The status named by [`IntentStatus::as_str`]; exact match only.
    pub fn parse(s: &str) -> Option<IntentStatus> {
        IntentStatus::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Succeeded, failed and canceled intents accept no further event.
    pub fn is_final(self) -> bool {
        matches!(self, IntentStatus::Succeeded | IntentStatus::Failed | IntentStatus::Canceled)
    }
}

/// Something that happens to a payment intent: a payer action or a processor verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntentEvent {
    AttachMethod,
    Confirm,
    Approved,
    Declined,
    ActionRequired,
    Cancel,
}

impl IntentEvent {
    pub const ALL: [IntentEvent; 6] = [
        IntentEvent::AttachMethod,
        IntentEvent::Confirm,
        IntentEvent::Approved,
        IntentEvent::Declined,
        IntentEvent::ActionRequired,
        IntentEvent::Cancel,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IntentEvent::AttachMethod => "attach_method",
            IntentEvent::Confirm => "confirm",
            IntentEvent::Approved => "approved",
            IntentEvent::Declined => "declined",
            IntentEvent::ActionRequired => "action_required",
            IntentEvent::Cancel => "cancel",
        }
    }
}

/// An event that the intent's current status does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {event} a payment that is {from}", event = .event.as_str(), from = .from.as_str())]
pub struct IllegalTransition {
    pub from: IntentStatus,
    pub event: IntentEvent,
}

/// The status after `event`, or [`IllegalTransition`] when `from` does not allow it.
///
/// A processing intent cannot be canceled: the processor may already be moving the money, so only
/// its verdict may end the intent.
pub fn next(from: IntentStatus, event: IntentEvent) -> Result<IntentStatus, IllegalTransition> {
    use IntentEvent as E;
    use IntentStatus as S;
    match (from, event) {
        // Attaching again before confirming replaces the method.
        (S::RequiresPaymentMethod | S::RequiresConfirmation, E::AttachMethod) => Ok(S::RequiresConfirmation),
        (S::RequiresConfirmation, E::Confirm) => Ok(S::Processing),
        (S::Processing | S::RequiresAction, E::Approved) => Ok(S::Succeeded),
        (S::Processing | S::RequiresAction, E::Declined) => Ok(S::Failed),
        (S::Processing, E::ActionRequired) => Ok(S::RequiresAction),
        (S::RequiresPaymentMethod | S::RequiresConfirmation | S::RequiresAction, E::Cancel) => Ok(S::Canceled),
        _ => Err(IllegalTransition { from, event }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    use IntentEvent as E;
    use IntentStatus as S;

    /// Every legal transition; anything missing from this table must be refused.
    const LEGAL: [(IntentStatus, IntentEvent, IntentStatus); 11] = [
        (S::RequiresPaymentMethod, E::AttachMethod, S::RequiresConfirmation),
        (S::RequiresConfirmation, E::AttachMethod, S::RequiresConfirmation),
        (S::RequiresConfirmation, E::Confirm, S::Processing),
        (S::Processing, E::Approved, S::Succeeded),
        (S::Processing, E::Declined, S::Failed),
        (S::Processing, E::ActionRequired, S::RequiresAction),
        (S::RequiresAction, E::Approved, S::Succeeded),
        (S::RequiresAction, E::Declined, S::Failed),
        (S::RequiresPaymentMethod, E::Cancel, S::Canceled),
        (S::RequiresConfirmation, E::Cancel, S::Canceled),
        (S::RequiresAction, E::Cancel, S::Canceled),
    ];

    fn expected(from: IntentStatus, event: IntentEvent) -> Option<IntentStatus> {
        LEGAL.iter().find(|(f, e, _)| *f == from && *e == event).map(|(_, _, to)| *to)
    }

    #[test]
    fn every_status_and_event_pair() {
        let mut checked = 0;
        let mut legal = 0;
        for from in IntentStatus::ALL {
            for event in IntentEvent::ALL {
                checked += 1;
                match (expected(from, event), next(from, event)) {
                    (Some(to), Ok(got)) => {
                        legal += 1;
                        assert_eq!(got, to, "{from:?} + {event:?}");
                    }
                    (None, Err(err)) => assert_eq!(err, IllegalTransition { from, event }),
                    (want, got) => panic!("{from:?} + {event:?}: expected {want:?}, got {got:?}"),
                }
            }
        }
        assert_eq!(checked, 42);
        assert_eq!(legal, LEGAL.len());
    }

    #[test]
    fn legal_table_has_no_duplicate_pairs() {
        let pairs: HashSet<_> = LEGAL.iter().map(|(f, e, _)| (*f, *e)).collect();
        assert_eq!(pairs.len(), LEGAL.len());
    }

    #[test]
    fn processing_cannot_be_canceled() {
        assert_eq!(next(S::Processing, E::Cancel), Err(IllegalTransition { from: S::Processing, event: E::Cancel }));
    }

    #[test]
    fn final_states_accept_nothing() {
        for from in IntentStatus::ALL.into_iter().filter(|s| s.is_final()) {
            for event in IntentEvent::ALL {
                assert!(next(from, event).is_err(), "{from:?} + {event:?}");
            }
        }
    }

    #[test]
    fn non_final_states_accept_something() {
        for from in IntentStatus::ALL.into_iter().filter(|s| !s.is_final()) {
            assert!(IntentEvent::ALL.into_iter().any(|e| next(from, e).is_ok()), "{from:?} is stuck");
        }
    }

    #[test]
    fn is_final() {
        let finals: Vec<_> = IntentStatus::ALL.into_iter().filter(|s| s.is_final()).collect();
        assert_eq!(finals, [S::Succeeded, S::Failed, S::Canceled]);
    }

    #[test]
    fn status_names_round_trip() {
        let expected = [
            "requires_payment_method",
            "requires_confirmation",
            "processing",
            "requires_action",
            "succeeded",
            "failed",
            "canceled",
        ];
        for (status, name) in IntentStatus::ALL.into_iter().zip(expected) {
            assert_eq!(status.as_str(), name);
            assert_eq!(IntentStatus::parse(name), Some(status));
        }
    }

    #[test]
    fn status_names_are_distinct() {
        let names: HashSet<_> = IntentStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names.len(), IntentStatus::ALL.len());
    }

    #[test]
    fn unknown_status_names() {
        for name in ["", "Succeeded", "SUCCEEDED", " succeeded", "succeeded ", "cancelled", "pending", "requires"] {
            assert_eq!(IntentStatus::parse(name), None, "{name:?}");
        }
    }

    #[test]
    fn event_names() {
        let expected = ["attach_method", "confirm", "approved", "declined", "action_required", "cancel"];
        for (event, name) in IntentEvent::ALL.into_iter().zip(expected) {
            assert_eq!(event.as_str(), name);
        }
        let names: HashSet<_> = IntentEvent::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(names.len(), IntentEvent::ALL.len());
    }

    #[test]
    fn error_message() {
        let err = next(S::Succeeded, E::Confirm).unwrap_err();
        assert_eq!(err.to_string(), "cannot confirm a payment that is succeeded");
        let err = next(S::Processing, E::Cancel).unwrap_err();
        assert_eq!(err.to_string(), "cannot cancel a payment that is processing");
        let err = next(S::RequiresPaymentMethod, E::Confirm).unwrap_err();
        assert_eq!(err.to_string(), "cannot confirm a payment that is requires_payment_method");
    }
}
