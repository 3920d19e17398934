//! Cobro's protobuf contracts. One module per package (`cobro.<svc>.v1`); the generated gRPC
//! clients and servers sit behind the `client` and `server` features so a crate that only calls
//! a service does not compile its server.

/// Encoded `FileDescriptorSet` of every Cobro package, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("cobro_descriptor");

pub mod common {
    pub mod v1 {
        tonic::include_proto!("cobro.common.v1");
    }
}

pub mod events {
    pub mod v1 {
        tonic::include_proto!("cobro.events.v1");
    }
}

pub mod identity {
    pub mod v1 {
        tonic::include_proto!("cobro.identity.v1");
    }
}

pub mod invoicing {
    pub mod v1 {
        tonic::include_proto!("cobro.invoicing.v1");
    }
}

pub mod notifications {
    pub mod v1 {
        tonic::include_proto!("cobro.notifications.v1");

        /// The webhook secret is write-only: Debug says only whether one is set.
        impl std::fmt::Debug for Policy {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct("Policy")
                    .field("customer_id", &self.customer_id)
                    .field("steps", &self.steps)
                    .field("business_days", &self.business_days)
                    .field("send_at", &self.send_at)
                    .field("quiet_start", &self.quiet_start)
                    .field("quiet_end", &self.quiet_end)
                    .field("daily_cap", &self.daily_cap)
                    .field("default_timezone", &self.default_timezone)
                    .field("webhook_url", &self.webhook_url)
                    .field("holidays", &self.holidays)
                    .field("templates", &self.templates)
                    .field("webhook_secret", &if self.webhook_secret.is_empty() { "" } else { "[redacted]" })
                    .finish_non_exhaustive()
            }
        }
    }
}

pub mod payments {
    pub mod v1 {
        tonic::include_proto!("cobro.payments.v1");

        impl std::fmt::Debug for NewCard {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct("NewCard")
                    .field("pan", &crate::vault::v1::last4(&self.pan))
                    .field("exp_month", &self.exp_month)
                    .field("exp_year", &self.exp_year)
                    .finish_non_exhaustive()
            }
        }

        #[cfg(test)]
        mod tests {
            use super::*;

            #[test]
            fn a_new_card_prints_only_its_last_four_digits() {
                let card = NewCard { pan: "4242424242424242".into(), holder_name: "Ana".into(), ..Default::default() };
                let printed = format!("{card:?}");
                assert!(printed.contains("****4242") && !printed.contains("424242424"), "{printed}");
                assert!(!printed.contains("Ana"), "{printed}");
            }
        }
    }
}

pub mod reconciliation {
    pub mod v1 {
        tonic::include_proto!("cobro.reconciliation.v1");
    }
}

pub mod vault {
    pub mod v1 {
        tonic::include_proto!("cobro.vault.v1");

        // Card numbers never print: only the last four digits.
        pub(crate) fn last4(pan: &str) -> String {
            let digits: Vec<char> = pan.chars().filter(char::is_ascii_digit).collect();
            let tail: String = digits.iter().skip(digits.len().saturating_sub(4)).collect();
            format!("****{tail}")
        }

        impl std::fmt::Debug for TokenizeRequest {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct("TokenizeRequest")
                    .field("pan", &last4(&self.pan))
                    .field("exp_month", &self.exp_month)
                    .field("exp_year", &self.exp_year)
                    .field("dedupe", &self.dedupe)
                    .field("ttl_seconds", &self.ttl_seconds)
                    .finish_non_exhaustive()
            }
        }

        impl std::fmt::Debug for DetokenizeResponse {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct("DetokenizeResponse")
                    .field("pan", &last4(&self.pan))
                    .field("exp_month", &self.exp_month)
                    .field("exp_year", &self.exp_year)
                    .finish_non_exhaustive()
            }
        }

        #[cfg(test)]
        mod tests {
            use super::*;

            #[test]
            fn card_messages_print_only_the_last_four_digits() {
                let request = TokenizeRequest { pan: "4111 1111 1111 1111".into(), ..Default::default() };
                let response = DetokenizeResponse { pan: "4111111111111111".into(), ..Default::default() };
                for printed in [format!("{request:?}"), format!("{response:?}")] {
                    assert!(printed.contains("****1111"), "{printed}");
                    assert!(!printed.contains("4111"), "{printed}");
                }
            }
        }
    }
}

/// Only for tests of the shared server plumbing.
pub mod testing {
    pub mod v1 {
        tonic::include_proto!("cobro.testing.v1");
    }
}
