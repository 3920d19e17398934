//! A customer's saved methods, autopay consent and direct-debit mandates, and the autopay run
//! that charges due amounts.

use chrono::NaiveDate;
use cobro_kit::auth::{Principal, PrincipalKind};
use cobro_kit::error::{InvalidField, text_field};
use cobro_proto::payments::v1::NewCard;
use uuid::Uuid;

use crate::app::{IntentIn, MethodIn, Payments, authorize, id};
use crate::error::{PaymentsError, Result};
use crate::store::{self, MandateRow, MethodRow, NewIntent};

/// Where a card for a saved method comes from.
#[derive(Debug, Clone)]
pub enum CardSource {
    Token(String),
    New(NewCard),
}

fn consent(text: &str, ip: &str) -> Result<(String, String)> {
    let text = text_field("consent_text", text, 4000, true)?;
    let ip = text_field("consent_ip", ip, 64, true)?;
    if ip.parse::<std::net::IpAddr>().is_err() {
        return Err(InvalidField::new("consent_ip", "must be an IPv4 or IPv6 address").into());
    }
    Ok((text, ip))
}

/// A payer's account number kept only as its last four characters.
fn masked_iban(iban: &str) -> Result<String> {
    let compact: String = iban.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_uppercase();
    let valid_shape = (15..=34).contains(&compact.len())
        && compact.chars().all(|c| c.is_ascii_alphanumeric())
        && compact.chars().take(2).all(|c| c.is_ascii_alphabetic());
    if !valid_shape || !iban_checksum_ok(&compact) {
        return Err(InvalidField::new("iban", "is not a valid IBAN").into());
    }
    let tail: String = compact.chars().skip(compact.len().saturating_sub(4)).collect();
    Ok(format!("{}…{tail}", compact.chars().take(2).collect::<String>()))
}

/// ISO 13616: move the first four characters to the end, letters to numbers, mod 97 == 1.
fn iban_checksum_ok(iban: &str) -> bool {
    let rearranged = iban.chars().skip(4).chain(iban.chars().take(4));
    let mut rem: u32 = 0;
    for c in rearranged {
        let Some(v) = c.to_digit(36) else { return false };
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    rem == 1
}

impl Payments {
    pub async fn save_method(
        &self,
        p: &Principal,
        customer: &str,
        source: CardSource,
        make_default: bool,
    ) -> Result<MethodRow> {
        let customer = id("customer_id", "cus", customer)?;
        authorize(p, "payments:write", "portal:pay", Some(customer))?;
        let tenant = p.tenant_id;
        let card = match source {
            CardSource::Token(token) => {
                let token = text_field("card_token", &token, 100, true)?;
                self.vault.metadata(tenant, &token, "card_token").await?
            }
            CardSource::New(card) => self.vault.tokenize(tenant, &card, "card").await?,
        };
        Ok(store::insert_card_method(
            &self.pool,
            tenant,
            customer,
            &card.token,
            &card.brand,
            &card.last4,
            i32::try_from(card.exp_month).unwrap_or(0),
            i32::try_from(card.exp_year).unwrap_or(0),
            make_default,
        )
        .await?)
    }

    pub async fn methods(&self, p: &Principal, customer: &str) -> Result<Vec<MethodRow>> {
        let customer = id("customer_id", "cus", customer)?;
        authorize(p, "payments:read", "portal:read", Some(customer))?;
        Ok(store::methods(&self.pool, p.tenant_id, customer).await?)
    }

    /// The customer's autopay consent in force, if any (what the portal's cards page shows).
    pub async fn autopay(&self, p: &Principal, customer: &str) -> Result<Option<MandateRow>> {
        let customer = id("customer_id", "cus", customer)?;
        authorize(p, "payments:read", "portal:read", Some(customer))?;
        Ok(store::active_autopay(&self.pool, p.tenant_id, customer).await?)
    }

    async fn own_method(&self, p: &Principal, customer: &str, method: &str) -> Result<(Uuid, MethodRow)> {
        let customer = id("customer_id", "cus", customer)?;
        authorize(p, "payments:write", "portal:pay", Some(customer))?;
        let method_id = id("payment_method_id", "pm", method)?;
        let found = store::method(&self.pool, p.tenant_id, method_id)
            .await?
            .filter(|m| m.customer_id == customer)
            .ok_or(PaymentsError::NotFound("payment method"))?;
        Ok((customer, found))
    }

    pub async fn set_default_method(&self, p: &Principal, customer: &str, method: &str) -> Result<MethodRow> {
        let (customer, found) = self.own_method(p, customer, method).await?;
        store::set_default(&self.pool, p.tenant_id, customer, found.id).await?;
        store::method(&self.pool, p.tenant_id, found.id).await?.ok_or(PaymentsError::NotFound("payment method"))
    }

    pub async fn remove_method(&self, p: &Principal, customer: &str, method: &str) -> Result<MethodRow> {
        let (_, found) = self.own_method(p, customer, method).await?;
        store::remove_method(&self.pool, p.tenant_id, found.id).await?;
        Ok(MethodRow { is_default: false, ..found })
    }

    /// The customer agrees to have due amounts charged to a saved card (the default one unless
    /// named). What they were shown and from where is kept.
    pub async fn enable_autopay(
        &self,
        p: &Principal,
        customer: &str,
        method: &str,
        consent_text: &str,
        consent_ip: &str,
    ) -> Result<MandateRow> {
        let customer_id = id("customer_id", "cus", customer)?;
        authorize(p, "payments:write", "portal:pay", Some(customer_id))?;
        let (text, ip) = consent(consent_text, consent_ip)?;
        let method = if method.is_empty() {
            store::default_method(&self.pool, p.tenant_id, customer_id).await?.ok_or_else(|| {
                InvalidField::new("payment_method_id", "the customer has no saved card; save one first")
            })?
        } else {
            self.own_method(p, customer, method).await?.1
        };
        if method.kind != "card" {
            return Err(InvalidField::new("payment_method_id", "autopay charges a card").into());
        }
        let mut tx = self.pool.begin().await?;
        store::revoke_autopay_in(&mut tx, p.tenant_id, customer_id).await?;
        let mandate =
            store::insert_mandate(&mut tx, p.tenant_id, customer_id, "autopay", Some(method.id), "", &text, &ip)
                .await?;
        if !method.is_default {
            store::set_default_in(&mut tx, p.tenant_id, customer_id, method.id).await?;
        }
        autopay_changed(&mut tx, p.tenant_id, customer_id, true).await?;
        tx.commit().await?;
        Ok(mandate)
    }

    pub async fn disable_autopay(&self, p: &Principal, customer: &str) -> Result<MandateRow> {
        let customer = id("customer_id", "cus", customer)?;
        authorize(p, "payments:write", "portal:pay", Some(customer))?;
        let mut tx = self.pool.begin().await?;
        let revoked =
            store::revoke_autopay(&mut tx, p.tenant_id, customer).await?.ok_or(PaymentsError::NotFound("mandate"))?;
        autopay_changed(&mut tx, p.tenant_id, customer, false).await?;
        tx.commit().await?;
        Ok(revoked)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn create_direct_debit_mandate(
        &self,
        p: &Principal,
        customer: &str,
        iban: &str,
        account_holder: &str,
        reference: &str,
        consent_text: &str,
        consent_ip: &str,
    ) -> Result<MandateRow> {
        let customer = id("customer_id", "cus", customer)?;
        authorize(p, "payments:write", "portal:pay", Some(customer))?;
        let masked = masked_iban(iban)?;
        text_field("account_holder", account_holder, 140, true)?;
        let reference = text_field("mandate_reference", reference, 35, true)?;
        let (text, ip) = consent(consent_text, consent_ip)?;
        let method_id = Uuid::now_v7();
        let mut tx = self.pool.begin().await?;
        store::insert_dd_method(&mut tx, p.tenant_id, method_id, customer, &masked).await?;
        let mandate = store::insert_mandate(
            &mut tx,
            p.tenant_id,
            customer,
            "direct_debit",
            Some(method_id),
            &reference,
            &text,
            &ip,
        )
        .await?;
        tx.commit().await?;
        Ok(mandate)
    }

    /// Charge what is due today for customers on autopay: schedule new runs, then work through
    /// the runs due (first tries and retries). Returns how many charges were made.
    pub async fn run_autopay(&self, today: NaiveDate) -> Result<usize> {
        store::schedule_autopay(&self.pool, today).await?;
        let mut charged = 0;
        loop {
            let mut tx = self.pool.begin().await?;
            let Some(run) = store::next_autopay_run(&mut tx, today).await? else { break };
            let tenant = run.tenant_id;
            if store::autopay_held(&mut tx, tenant, run.invoice_id).await? {
                // The customer asked for time or disputes the invoice: look again tomorrow,
                // without counting a try.
                let tomorrow = today + chrono::Days::new(1);
                let last = run.last_intent_id;
                store::update_autopay_run(
                    &mut tx,
                    tenant,
                    run.id,
                    "scheduled",
                    run.attempts,
                    Some(tomorrow),
                    last,
                    None,
                )
                .await?;
                tx.commit().await?;
                continue;
            }
            if run.installment_id.is_none() && store::under_plan(&mut tx, tenant, run.invoice_id).await? {
                // The invoice became an installment plan: its installments are charged instead.
                store::update_autopay_run(&mut tx, tenant, run.id, "stopped", run.attempts, None, None, None).await?;
                tx.commit().await?;
                continue;
            }
            let open = match self.open_balance(tenant, run.customer_id, &[run.invoice_id], run.installment_id).await {
                Ok((open, _)) => open,
                Err(PaymentsError::Database(e)) => return Err(e.into()),
                Err(error) => {
                    // The invoice can no longer be collected (voided, unknown): the run stops.
                    tracing::warn!(%error, run = %run.id, "autopay run stopped");
                    store::update_autopay_run(&mut tx, tenant, run.id, "stopped", run.attempts, None, None, None)
                        .await?;
                    tx.commit().await?;
                    continue;
                }
            };
            let method = store::default_method(&self.pool, tenant, run.customer_id).await?;
            let consented = store::autopay_active(&mut tx, tenant, run.customer_id).await?;
            let (Some(method), true, true) = (method, consented, open > rust_decimal::Decimal::ZERO) else {
                // Paid meanwhile, consent withdrawn, or nothing to charge with: the run ends.
                let status = if open > rust_decimal::Decimal::ZERO { "stopped" } else { "succeeded" };
                store::update_autopay_run(&mut tx, tenant, run.id, status, run.attempts, None, None, None).await?;
                tx.commit().await?;
                continue;
            };
            let input = IntentIn {
                customer_id: cobro_kit::ids::format("cus", run.customer_id),
                amount: None,
                invoice_ids: vec![cobro_kit::ids::format("inv", run.invoice_id)],
                installment_id: run.installment_id.map(|i| cobro_kit::ids::format("ins", i)).unwrap_or_default(),
                description: "autopay".to_owned(),
            };
            let prepared = match self.prepare_intent(tenant, &input).await {
                Ok(prepared) => prepared,
                Err(PaymentsError::Database(e)) => return Err(e.into()),
                Err(error) => {
                    // The invoice can no longer be collected (voided, another currency): stop.
                    tracing::warn!(%error, run = %run.id, "autopay run stopped");
                    store::update_autopay_run(&mut tx, tenant, run.id, "stopped", run.attempts, None, None, None)
                        .await?;
                    tx.commit().await?;
                    continue;
                }
            };
            let new = NewIntent { autopay_run_id: Some(run.id), ..prepared };
            let intent = store::insert_intent(&mut tx, tenant, &new).await?;
            store::autopay_tried_on(&mut tx, tenant, run.id, today).await?;
            store::update_autopay_run(
                &mut tx,
                tenant,
                run.id,
                "scheduled",
                run.attempts + 1,
                run.next_try_on,
                Some(intent.id),
                None,
            )
            .await?;
            tx.commit().await?;
            let method_ref = cobro_kit::ids::format("pm", method.id);
            let intent_id = intent.id;
            match self.confirm_row(tenant, intent, MethodIn::SavedMethod(method_ref), "").await {
                Ok(_) => {}
                Err(PaymentsError::Amount { .. }) => {
                    // Another payment for this invoice is on its way: not a failure of the
                    // customer's card. Look again tomorrow, without counting a try.
                    self.cancel_unstarted(tenant, intent_id).await?;
                    let mut tx = self.pool.begin().await?;
                    store::update_autopay_run(
                        &mut tx,
                        tenant,
                        run.id,
                        "scheduled",
                        run.attempts,
                        Some(today + chrono::Days::new(1)),
                        Some(intent_id),
                        None,
                    )
                    .await?;
                    tx.commit().await?;
                }
                Err(error) => {
                    // Refused before the processor heard of it (the card was removed): close
                    // the intent so the run moves on to its next try instead of waiting on it.
                    tracing::warn!(%error, run = %run.id, "autopay charge could not be made");
                    self.abandon_autopay_intent(tenant, intent_id).await?;
                }
            }
            charged += 1;
        }
        Ok(charged)
    }

    pub async fn autopay_runs(&self, p: &Principal, customer: &str) -> Result<Vec<store::AutopayRun>> {
        let customer = id("customer_id", "cus", customer)?;
        if p.kind == PrincipalKind::Customer {
            authorize(p, "payments:read", "portal:read", Some(customer))?;
        } else {
            authorize(p, "payments:read", "portal:read", None)?;
        }
        Ok(store::autopay_runs(&self.pool, p.tenant_id, customer).await?)
    }
}

/// Tell invoicing (and through it notifications) whether the customer pays by autopay, so
/// reminders before the due date become notices of the coming charge, or go back to reminders.
async fn autopay_changed(conn: &mut sqlx::PgConnection, tenant: Uuid, customer: Uuid, enabled: bool) -> Result<()> {
    let event =
        cobro_proto::events::v1::AutopayChanged { customer_id: cobro_kit::ids::format("cus", customer), enabled };
    let kind = if enabled { "autopay.enabled" } else { "autopay.disabled" };
    let new = cobro_kit::events::NewEvent::new(kind, tenant, event.customer_id.clone(), &event);
    cobro_kit::events::enqueue(conn, crate::app::TOPIC, new).await?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn ibans_are_checked_and_masked() {
        assert_eq!(masked_iban("DE89 3704 0044 0532 0130 00").unwrap(), "DE…3000");
        assert_eq!(masked_iban("gb82west12345698765432").unwrap(), "GB…5432");
        for bad in ["DE89 3704 0044 0532 0130 01", "", "1234567890123456", "DE89-3704", "DÉ89370400440532013000"] {
            assert!(masked_iban(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn consent_needs_words_and_an_address() {
        assert!(consent("I agree", "203.0.113.7").is_ok());
        assert!(consent("I agree", "2001:db8::1").is_ok());
        assert!(consent("", "203.0.113.7").is_err());
        assert!(consent("I agree", "somewhere").is_err());
    }
}
