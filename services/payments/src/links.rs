//! Payment links, bank-transfer instructions and references, tenant settings, payouts.

use chrono::{Duration as Days, NaiveDate, Utc};
use cobro_kit::auth::{Principal, PrincipalKind};
use cobro_kit::error::{InvalidField, text_field};
use cobro_kit::events::{NewEvent, enqueue};
use cobro_proto::common::v1 as common;
use cobro_proto::events::v1 as ev;
use cobro_proto::payments::v1::NewCard;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::app::{
    IntentIn, IntentView, MethodIn, Payments, TOPIC, TransferInstructions, authorize, id, money, optional_id,
};
use crate::domain::link::{self, LinkState};
use crate::domain::reference::CreditorReference;
use crate::error::{PaymentsError, Result};
use crate::store::{self, IntentRow, LinkRow, NewIntent, PayoutRow, SettingsRow};

const DEFAULT_LINK_DAYS: u32 = 30;
const MAX_LINK_DAYS: u32 = 180;

/// What the public pay page of a link may show.
#[derive(Debug, Clone)]
pub struct PublicLink {
    pub merchant_reference: String,
    pub amount_due: Decimal,
    pub currency: String,
    pub description: String,
    pub expires_at: chrono::DateTime<Utc>,
    pub transfer_reference: String,
    pub paid: bool,
}

impl Payments {
    #[allow(clippy::too_many_arguments)]
    pub async fn create_link(
        &self,
        p: &Principal,
        customer: &str,
        invoice: &str,
        installment: &str,
        amount: Option<&common::Money>,
        description: &str,
        ttl_days: u32,
    ) -> Result<(LinkRow, String)> {
        let customer_id = optional_id("customer_id", "cus", customer)?;
        authorize(p, "payments:write", "portal:pay", customer_id)?;
        if ttl_days > MAX_LINK_DAYS {
            return Err(InvalidField::new("ttl_days", format!("must be at most {MAX_LINK_DAYS}")).into());
        }
        let ttl = if ttl_days == 0 { DEFAULT_LINK_DAYS } else { ttl_days };
        let input = IntentIn {
            customer_id: customer.to_owned(),
            amount: amount.cloned(),
            invoice_ids: if invoice.is_empty() { Vec::new() } else { vec![invoice.to_owned()] },
            installment_id: installment.to_owned(),
            description: description.to_owned(),
        };
        // The same rules as a payment: a known open invoice of the customer, a positive amount
        // in its currency, not above what is open.
        let checked = self.prepare_intent(p.tenant_id, &input).await.map_err(|e| match e {
            PaymentsError::Invalid(f) if f.field.starts_with("invoice_ids") => {
                PaymentsError::Invalid(InvalidField::new("invoice_id", f.reason))
            }
            other => other,
        })?;
        // An invoice link asks for the balance when it is opened unless an amount was fixed.
        let fixed = amount.filter(|m| !m.amount.is_empty()).map(|_| checked.amount);
        let fixed = if checked.invoice_ids.is_empty() { Some(checked.amount) } else { fixed };
        let token = link::new_token();
        let row = store::insert_link(
            &self.pool,
            p.tenant_id,
            &token.hash,
            checked.customer_id,
            checked.invoice_ids.first().copied(),
            checked.installment_id,
            fixed,
            &checked.currency,
            &checked.description,
            Utc::now() + Days::days(i64::from(ttl)),
        )
        .await?;
        Ok((row, token.token))
    }

    pub async fn revoke_link(&self, p: &Principal, raw_id: &str) -> Result<LinkRow> {
        let link_id = id("id", "plk", raw_id)?;
        authorize(p, "payments:write", "portal:pay", None)?;
        if p.kind == PrincipalKind::Customer {
            return Err(PaymentsError::PermissionDenied("staff revoke links".to_owned()));
        }
        store::revoke_link(&self.pool, p.tenant_id, link_id).await?.ok_or(PaymentsError::NotFound("payment link"))
    }

    /// The link behind a token, if it can still be used.
    async fn usable_link(&self, token: &str) -> Result<LinkRow> {
        let hash = link::parse(token).map_err(|e| InvalidField::new("token", e.to_string()))?;
        let row = store::link_by_hash(&self.pool, &hash).await?.ok_or(PaymentsError::NotFound("payment link"))?;
        match link::state(row.expires_at, row.revoked_at, Utc::now()) {
            LinkState::Active => Ok(row),
            LinkState::Expired => Err(PaymentsError::LinkUnusable("has expired")),
            LinkState::Revoked => Err(PaymentsError::LinkUnusable("was revoked")),
        }
    }

    /// What is due now on a link: its fixed amount, or the invoice's open balance.
    async fn link_due(&self, row: &LinkRow) -> Result<(Decimal, String)> {
        let invoices: Vec<Uuid> = row.invoice_id.into_iter().collect();
        let (open, _) = self.open_balance(row.tenant_id, row.customer_id, &invoices, row.installment_id).await?;
        let due = match (row.amount, invoices.is_empty()) {
            (Some(fixed), true) => fixed,
            (Some(fixed), false) => fixed.min(open),
            (None, _) => open,
        };
        Ok((due, row.currency.clone()))
    }

    pub async fn resolve_link(&self, token: &str) -> Result<PublicLink> {
        let row = self.usable_link(token).await?;
        let (due, currency) = self.link_due(&row).await?;
        let number = match row.invoice_id {
            Some(invoice) => store::receivables(&self.pool, row.tenant_id, &[invoice])
                .await?
                .into_iter()
                .next()
                .map(|r| r.number)
                .unwrap_or_default(),
            None => String::new(),
        };
        let reference = self.ensure_reference(row.tenant_id, row.customer_id, row.invoice_id).await?;
        let paid_by_link: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM payment_intents WHERE tenant_id = $1 AND link_id = $2 AND status = 'succeeded')",
        )
        .bind(row.tenant_id)
        .bind(row.id)
        .fetch_one(&self.pool)
        .await?;
        Ok(PublicLink {
            merchant_reference: number,
            amount_due: due,
            currency,
            description: row.description,
            expires_at: row.expires_at,
            transfer_reference: reference.as_str().to_owned(),
            paid: due <= Decimal::ZERO || (row.invoice_id.is_none() && paid_by_link),
        })
    }

    /// Pay a link with a new card. Returns the tenant (for the idempotency record) and the
    /// payment.
    /// The payment gets `intent_id`; a retry that finds it made shows it instead of paying twice.
    pub async fn pay_link(&self, intent_id: Uuid, token: &str, card: NewCard, return_to: &str) -> Result<IntentView> {
        let return_to = crate::app::return_url(return_to)?;
        // A retry finds what the first run made, even if the link expired meanwhile.
        let tenant = self.link_tenant(token).await?;
        if let Some(made) = store::intent(&self.pool, tenant, intent_id).await? {
            if made.status != "requires_payment_method" {
                return self.view(made).await;
            }
            return self.confirm_link_payment(made, card, &return_to).await;
        }
        let row = self.usable_link(token).await?;
        let (due, currency) = self.link_due(&row).await?;
        if due <= Decimal::ZERO {
            return Err(PaymentsError::LinkUnusable("is already paid"));
        }
        if row.invoice_id.is_none() {
            // A payment on its way counts too: a second payer must not pay a free-amount link twice.
            let paid: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM payment_intents WHERE tenant_id = $1 AND link_id = $2 \
                 AND status IN ('succeeded', 'processing', 'requires_action'))",
            )
            .bind(row.tenant_id)
            .bind(row.id)
            .fetch_one(&self.pool)
            .await?;
            if paid {
                return Err(PaymentsError::LinkUnusable("is already paid"));
            }
        }
        let new = NewIntent {
            id: intent_id,
            customer_id: row.customer_id,
            amount: due,
            currency,
            invoice_ids: row.invoice_id.into_iter().collect(),
            installment_id: row.installment_id,
            link_id: Some(row.id),
            autopay_run_id: None,
            description: row.description.clone(),
        };
        let mut conn = self.pool.acquire().await?;
        let intent = store::insert_intent(&mut conn, row.tenant_id, &new).await?;
        drop(conn);
        self.confirm_link_payment(intent, card, &return_to).await
    }

    /// Confirm a link's payment; refused before it reached the processor (a bad card, paid by
    /// someone else meanwhile), the payment is canceled so no half-made payment stays behind.
    async fn confirm_link_payment(&self, intent: IntentRow, card: NewCard, return_to: &str) -> Result<IntentView> {
        let (tenant, intent_id) = (intent.tenant_id, intent.id);
        match self.confirm_row(tenant, intent, MethodIn::NewCard { card, save: false }, return_to).await {
            Ok(confirmed) => self.view(confirmed).await,
            Err(refused) => {
                // Refused outright: the key is freed and a retry starts afresh. Anything else
                // (the vault unreachable) leaves the payment for the retry to continue.
                if crate::idempotency::nothing_written(&refused) {
                    self.cancel_unstarted(tenant, intent_id).await?;
                }
                Err(refused)
            }
        }
    }

    /// The tenant of a link token (public calls know no tenant otherwise).
    pub async fn link_tenant(&self, token: &str) -> Result<Uuid> {
        let hash = link::parse(token).map_err(|e| InvalidField::new("token", e.to_string()))?;
        Ok(store::link_by_hash(&self.pool, &hash).await?.ok_or(PaymentsError::NotFound("payment link"))?.tenant_id)
    }

    // --- bank transfers ---

    pub async fn transfer_instructions(
        &self,
        p: &Principal,
        customer: &str,
        invoice: &str,
    ) -> Result<TransferInstructions> {
        let customer = id("customer_id", "cus", customer)?;
        authorize(p, "payments:read", "portal:read", Some(customer))?;
        let invoice = optional_id("invoice_id", "inv", invoice)?;
        let (amount, currency) = match invoice {
            Some(i) => {
                let (open, currency) =
                    self.open_balance(p.tenant_id, customer, &[i], None).await.map_err(|e| match e {
                        PaymentsError::Invalid(f) => PaymentsError::Invalid(InvalidField::new("invoice_id", f.reason)),
                        other => other,
                    })?;
                (open, currency.unwrap_or_default())
            }
            None => (Decimal::ZERO, String::new()),
        };
        let reference = self.ensure_reference(p.tenant_id, customer, invoice).await?;
        let settings = store::settings(&self.pool, p.tenant_id).await?;
        Ok(TransferInstructions {
            account_holder: settings.account_holder,
            iban: settings.iban,
            bic: settings.bic,
            reference,
            amount,
            currency,
        })
    }

    pub async fn lookup_reference(
        &self,
        p: &Principal,
        reference: &str,
    ) -> Result<(CreditorReference, Uuid, Option<Uuid>)> {
        authorize(p, "payments:read", "portal:read", None)?;
        if p.kind == PrincipalKind::Customer {
            return Err(PaymentsError::PermissionDenied("staff and services look references up".to_owned()));
        }
        let reference =
            CreditorReference::parse(reference).map_err(|e| InvalidField::new("reference", e.to_string()))?;
        let (customer, invoice) = store::reference_owner(&self.pool, p.tenant_id, reference.as_str())
            .await?
            .ok_or(PaymentsError::NotFound("reference"))?;
        Ok((reference, customer, invoice))
    }

    // --- settings ---

    pub async fn settings(&self, p: &Principal) -> Result<SettingsRow> {
        authorize(p, "payments:read", "portal:read", None)?;
        Ok(store::settings(&self.pool, p.tenant_id).await?)
    }

    pub async fn update_settings(&self, p: &Principal, s: SettingsRow) -> Result<SettingsRow> {
        if p.kind == PrincipalKind::Customer || !p.has("payments:write") {
            return Err(PaymentsError::PermissionDenied("missing permission payments:write".to_owned()));
        }
        let settings = SettingsRow {
            allow_overpayment: s.allow_overpayment,
            account_holder: text_field("account_holder", &s.account_holder, 140, false)?,
            iban: text_field("iban", &s.iban, 42, false)?.replace(' ', "").to_uppercase(),
            bic: text_field("bic", &s.bic, 11, false)?.to_uppercase(),
        };
        if !(settings.bic.is_empty() || settings.bic.len() == 8 || settings.bic.len() == 11) {
            return Err(InvalidField::new("bic", "must be 8 or 11 characters").into());
        }
        store::save_settings(&self.pool, p.tenant_id, &settings).await?;
        Ok(settings)
    }

    // --- payouts ---

    /// Record the processor's payouts for one day (sandbox reports them; once each).
    pub async fn import_settlement(&self, tenant: Uuid, day: NaiveDate) -> Result<Vec<PayoutRow>> {
        let Some(sandbox) = self.processor.sandbox() else {
            return Err(PaymentsError::Precondition(
                "this processor's payouts arrive on the bank statement".to_owned(),
            ));
        };
        let reports = sandbox.settlement(tenant, day).await.map_err(|e| PaymentsError::Unavailable(e.to_string()))?;
        let mut recorded = Vec::new();
        let mut tx = self.pool.begin().await?;
        for s in reports {
            let Some(row) = store::insert_payout(
                &mut tx,
                tenant,
                self.processor.name(),
                &s.payout_ref,
                s.day,
                &s.currency,
                s.gross,
                s.fees,
                s.refunds,
                s.net,
            )
            .await?
            else {
                continue;
            };
            let event = ev::PayoutCreated {
                payout_id: cobro_kit::ids::format("po", row.id),
                connector: row.connector.clone(),
                payout_ref: row.payout_ref.clone(),
                day: row.day.to_string(),
                gross: Some(money(row.gross, &row.currency)),
                fees: Some(money(row.fees, &row.currency)),
                refunds: Some(money(row.refunds, &row.currency)),
                net: Some(money(row.net, &row.currency)),
            };
            enqueue(&mut tx, TOPIC, NewEvent::new("payout.created", tenant, row.payout_ref.clone(), &event)).await?;
            recorded.push(row);
        }
        tx.commit().await?;
        Ok(recorded)
    }

    pub async fn import_settlement_for(&self, p: &Principal, connector: &str, day: &str) -> Result<Vec<PayoutRow>> {
        if p.kind == PrincipalKind::Customer || !p.has("payments:write") {
            return Err(PaymentsError::PermissionDenied("missing permission payments:write".to_owned()));
        }
        if connector != self.processor.name() {
            return Err(
                InvalidField::new("connector", format!("this deployment uses {}", self.processor.name())).into()
            );
        }
        let day = NaiveDate::parse_from_str(day, "%Y-%m-%d")
            .map_err(|_| InvalidField::new("day", "must be a date like 2026-11-23"))?;
        self.import_settlement(p.tenant_id, day).await
    }

    /// Yesterday's payouts of every tenant that charged cards lately.
    pub async fn import_recent_settlements(&self, today: NaiveDate) -> Result<()> {
        if self.processor.sandbox().is_none() {
            return Ok(());
        }
        let Some(yesterday) = today.pred_opt() else { return Ok(()) };
        let since = Utc::now() - Days::days(3);
        for tenant in store::tenants_with_card_payments(&self.pool, since).await? {
            self.import_settlement(tenant, yesterday).await?;
        }
        Ok(())
    }

    pub async fn payouts(&self, p: &Principal, from: &str, to: &str) -> Result<Vec<PayoutRow>> {
        authorize(p, "payments:read", "portal:read", None)?;
        if p.kind == PrincipalKind::Customer {
            return Err(PaymentsError::PermissionDenied("staff see payouts".to_owned()));
        }
        let parse = |field: &str, v: &str| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map_err(|_| InvalidField::new(field, "must be a date like 2026-11-23"))
        };
        let from = parse("from", from)?;
        let to = parse("to", to)?;
        Ok(store::payouts(&self.pool, p.tenant_id, from, to).await?)
    }
}
