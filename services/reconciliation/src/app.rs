//! Reconciliation's use cases: import, matching runs, decisions on matches, discrepancies and
//! the audit report. Each changes state, its audit rows and its outbox events in one
//! transaction, so a crash leaves either all of it or none.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use cobro_kit::events::{NewEvent, enqueue};
use cobro_proto::common::v1::Money;
use cobro_proto::events::v1 as ev;
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::formats::csv::CsvMapping;
use crate::domain::matching::{Match, OpenItem, Rule, match_lines, rf_candidates};
use crate::domain::payouts::{Payout, PayoutFit, find_payout};
use crate::domain::report::ReportRow;
use crate::domain::statement::BankLine;
use crate::error::{ReconciliationError, Result};
use crate::import::{Imported, import_statement};
use crate::store::book::{self, ItemRow};
use crate::store::discrepancies::{self as discrepancy_store, DiscrepancyRow};
use crate::store::matches::{self, MatchItemRow, MatchRow, NewMatch};
use crate::store::{self, LineRow, SettingsRow};

pub const TOPIC: &str = "cobro.reconciliation.v1";
pub const MATCH_CONFIRMED: &str = "reconciliation.match_confirmed";
pub const MATCH_REVERSED: &str = "reconciliation.match_reversed";
pub const DISCREPANCY_RAISED: &str = "reconciliation.discrepancy_raised";
pub const PAYMENT_RECEIVED: &str = "payment.received";
/// Payment ids this service gives invoicing (`rcm_` + the match id), so it can tell its own
/// payments apart in `invoice.payment_applied`.
pub const PAYMENT_PREFIX: &str = "rcm_";
/// Who decides matches nobody looked at.
pub const AUTO: &str = "auto";

/// What one matching run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatchRun {
    pub lines_considered: u32,
    pub confirmed: u32,
    pub suggested: u32,
    pub discrepancies: u32,
}

/// An item a person matches a line to.
#[derive(Debug, Clone)]
pub struct ManualItem {
    pub invoice: Uuid,
    pub installment: Option<Uuid>,
    /// The open balance when `None`.
    pub amount: Option<Decimal>,
}

/// What a person decides about a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A suggestion accepted.
    Confirm,
    /// A suggestion turned down.
    Reject,
    /// A confirmed match undone.
    Unmatch,
}

pub struct Reconciliation {
    pool: PgPool,
}

fn money(amount: Decimal, currency: &str) -> Option<Money> {
    Some(Money { currency: currency.to_owned(), amount: amount.normalize().to_string() })
}

fn rule_name(rule: Rule) -> &'static str {
    match rule {
        Rule::Reference => "reference",
        Rule::InvoiceNumber => "invoice_number",
        Rule::EndToEnd => "end_to_end",
        Rule::AmountAndCustomer => "amount_and_customer",
        Rule::SeveralInvoices => "several_invoices",
        Rule::Partial => "partial",
    }
}

/// Rules that rest on something the payer quoted (not only on the amount).
fn quoted(rule: Rule) -> bool {
    matches!(rule, Rule::Reference | Rule::InvoiceNumber | Rule::EndToEnd | Rule::Partial)
}

fn open_item(row: &ItemRow, accounts: &HashMap<Uuid, Vec<String>>) -> OpenItem {
    OpenItem {
        id: row.id,
        customer_id: row.customer_id,
        invoice_number: row.number.clone(),
        installment: row.seq.and_then(|s| u32::try_from(s).ok()),
        reference: row.reference.clone(),
        amount_open: row.open,
        currency: row.currency.clone(),
        due_date: row.due_date,
        customer_name: row.customer_name.clone(),
        customer_accounts: accounts.get(&row.customer_id).cloned().unwrap_or_default(),
    }
}

/// Write a discrepancy once and tell staff through its event; false when it was raised before.
pub async fn raise(conn: &mut PgConnection, tenant: Uuid, d: DiscrepancyRow) -> std::result::Result<bool, sqlx::Error> {
    let Some(row) = discrepancy_store::raise(conn, tenant, &d).await? else { return Ok(false) };
    let event = ev::DiscrepancyRaised {
        discrepancy_id: cobro_kit::ids::format("dsc", row.id),
        kind: row.kind.clone(),
        bank_line_id: row.line_id.map(|id| cobro_kit::ids::format("bln", id)).unwrap_or_default(),
        payout_id: row.payout_id.map(|id| cobro_kit::ids::format("po", id)).unwrap_or_default(),
        invoice_id: row.invoice_id.map(|id| cobro_kit::ids::format("inv", id)).unwrap_or_default(),
        amount: money(row.amount, &row.currency),
        expected: row.expected.and_then(|e| money(e, &row.currency)),
        detail: row.detail.clone(),
    };
    let aggregate = row.line_id.or(row.payout_id).unwrap_or(row.id).to_string();
    enqueue(conn, TOPIC, NewEvent::new(DISCREPANCY_RAISED, tenant, aggregate, &event)).await?;
    Ok(true)
}

impl Reconciliation {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Import a statement file and match its new lines.
    pub async fn import(
        &self,
        tenant: Uuid,
        account: Uuid,
        file: &[u8],
        mapping: Option<&CsvMapping>,
    ) -> Result<(Imported, MatchRun)> {
        let imported = import_statement(&self.pool, tenant, account, file, mapping).await?;
        let run = if imported.lines_new > 0 { self.run_matching(tenant).await? } else { MatchRun::default() };
        Ok((imported, run))
    }

    /// Match every unmatched credit of the tenant against what is owed, in one transaction
    /// that replicas take in turn.
    pub async fn run_matching(&self, tenant: Uuid) -> Result<MatchRun> {
        let mut tx = self.pool.begin().await?;
        let run = self.match_in(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(run)
    }

    async fn match_in(&self, tx: &mut PgConnection, tenant: Uuid) -> Result<MatchRun> {
        store::lock_tenant(tx, tenant).await?;
        let settings = store::settings(tx, tenant).await?;
        let lines = store::unmatched_credits(tx, tenant).await?;
        let mut run =
            MatchRun { lines_considered: u32::try_from(lines.len()).unwrap_or(u32::MAX), ..MatchRun::default() };
        if lines.is_empty() {
            return Ok(run);
        }
        let lines = self.pay_out_payouts(tx, tenant, &settings, lines, &mut run).await?;

        let rows = book::open_items(tx, tenant).await?;
        let mut accounts = book::customer_accounts(tx, tenant).await?;
        let customer_refs = book::customer_references(tx, tenant).await?;
        let bank: Vec<_> = lines.iter().map(|l| payer_by_reference(l, &customer_refs, &mut accounts)).collect();
        let items: Vec<OpenItem> = rows.iter().map(|r| open_item(r, &accounts)).collect();
        let by_id: HashMap<Uuid, &ItemRow> = rows.iter().map(|r| (r.id, r)).collect();
        let rejected: HashSet<(Uuid, Vec<Uuid>)> = matches::rejected_sets(tx, tenant).await?.into_iter().collect();

        let mut matched = HashSet::new();
        for m in match_lines(&bank, &items, i64::from(settings.date_window_days)) {
            let Some(line) = lines.get(m.line) else { continue };
            let mut set: Vec<Uuid> = m.items.iter().map(|(id, _)| *id).collect();
            set.sort();
            if rejected.contains(&(line.id, set)) {
                continue;
            }
            let Some(customer) = m.items.first().and_then(|(id, _)| by_id.get(id)).map(|r| r.customer_id) else {
                continue;
            };
            let match_items: Vec<MatchItemRow> = m
                .items
                .iter()
                .enumerate()
                .filter_map(|(seq, (id, amount))| {
                    let row = by_id.get(id)?;
                    Some(MatchItemRow {
                        match_id: Uuid::nil(),
                        seq: i32::try_from(seq).unwrap_or(i32::MAX),
                        invoice_id: Some(row.invoice_id),
                        installment_id: row.installment_id,
                        payout_id: None,
                        invoice_number: row.number.clone(),
                        // More than is open stays with the customer as credit (an overpayment).
                        amount: (*amount).min(row.open),
                        currency: row.currency.clone(),
                    })
                })
                .collect();
            let confirm = m.confidence >= settings.auto_confirm_threshold;
            let row = self.record_match(tx, tenant, line, &m, customer, &match_items, confirm).await?;
            matched.insert(line.id);
            if confirm {
                run.confirmed += 1;
                run.discrepancies += self.confirmed(tx, tenant, line, &row, &match_items, &by_id).await?;
            } else {
                run.suggested += 1;
            }
        }
        let left: Vec<&LineRow> = lines.iter().filter(|l| !matched.contains(&l.id)).collect();
        run.discrepancies += self.diagnose(tx, tenant, &settings, &left).await?;
        Ok(run)
    }

    /// Lines that pay out a processor payout are matched to it; the rest are returned.
    async fn pay_out_payouts(
        &self,
        tx: &mut PgConnection,
        tenant: Uuid,
        settings: &SettingsRow,
        lines: Vec<LineRow>,
        run: &mut MatchRun,
    ) -> Result<Vec<LineRow>> {
        let rows = book::open_payouts(tx, tenant).await?;
        if rows.is_empty() {
            return Ok(lines);
        }
        let mut payouts: Vec<Payout> = rows
            .iter()
            .map(|p| Payout {
                id: p.payout_id,
                connector: p.connector.clone(),
                payout_ref: p.payout_ref.clone(),
                day: p.day,
                currency: p.currency.clone(),
                gross: p.gross,
                fees: p.fees,
                refunds: p.refunds,
                net: p.net,
            })
            .collect();
        let mut rest = Vec::with_capacity(lines.len());
        for line in lines {
            match find_payout(&line.to_bank_line(), &payouts, settings.payout_tolerance) {
                Some(PayoutFit::Paid { payout, .. }) => {
                    let Some(p) = payouts.iter().find(|p| p.id == payout).cloned() else { continue };
                    payouts.retain(|other| other.id != payout);
                    let id = Uuid::now_v7();
                    let item = MatchItemRow {
                        match_id: id,
                        seq: 0,
                        invoice_id: None,
                        installment_id: None,
                        payout_id: Some(payout),
                        invoice_number: p.payout_ref.clone(),
                        amount: line.amount,
                        currency: line.currency.clone(),
                    };
                    let row = matches::insert(
                        tx,
                        tenant,
                        &NewMatch {
                            id,
                            line_id: line.id,
                            rule: "payout",
                            confidence: Decimal::new(99, 2),
                            status: "confirmed",
                            customer_id: None,
                            decided_by: AUTO,
                            reason: "",
                            payment_id: "",
                            items: std::slice::from_ref(&item),
                        },
                    )
                    .await?;
                    store::set_line_status(tx, tenant, line.id, "matched").await?;
                    book::set_payout_line(tx, tenant, payout, Some(line.id)).await?;
                    self.announce(tx, tenant, &line, &row, std::slice::from_ref(&item), MATCH_CONFIRMED).await?;
                    run.confirmed += 1;
                }
                Some(PayoutFit::Mismatch { payout, difference }) => {
                    let Some(p) = payouts.iter().find(|p| p.id == payout) else { continue };
                    let d = DiscrepancyRow::new("payout_mismatch", &line.currency, line.amount)
                        .line(line.id)
                        .payout(payout)
                        .expected(p.net)
                        .detail(format!(
                            "the bank credited {} for payout {}, which is {} net (a difference of {difference})",
                            line.amount, p.payout_ref, p.net
                        ));
                    if raise(tx, tenant, d).await? {
                        run.discrepancies += 1;
                    }
                    rest.push(line);
                }
                None => rest.push(line),
            }
        }
        Ok(rest)
    }

    #[allow(clippy::too_many_arguments)]
    async fn record_match(
        &self,
        tx: &mut PgConnection,
        tenant: Uuid,
        line: &LineRow,
        m: &Match,
        customer: Uuid,
        items: &[MatchItemRow],
        confirm: bool,
    ) -> Result<MatchRow> {
        let id = Uuid::now_v7();
        let payment_id = if confirm { format!("{PAYMENT_PREFIX}{}", id.simple()) } else { String::new() };
        let row = matches::insert(
            tx,
            tenant,
            &NewMatch {
                id,
                line_id: line.id,
                rule: rule_name(m.rule),
                confidence: m.confidence,
                status: if confirm { "confirmed" } else { "suggested" },
                customer_id: Some(customer),
                decided_by: if confirm { AUTO } else { "" },
                reason: "",
                payment_id: &payment_id,
                items,
            },
        )
        .await?;
        store::set_line_status(tx, tenant, line.id, if confirm { "matched" } else { "suggested" }).await?;
        Ok(row)
    }

    /// What a confirmed match does: the money is pending on the items until invoicing applies
    /// it, the payer's account is remembered, the events go out, and amounts that do not fit
    /// are reported. Returns the discrepancies raised.
    async fn confirmed(
        &self,
        tx: &mut PgConnection,
        tenant: Uuid,
        line: &LineRow,
        m: &MatchRow,
        items: &[MatchItemRow],
        by_id: &HashMap<Uuid, &ItemRow>,
    ) -> Result<u32> {
        for item in items {
            if let Some(invoice) = item.invoice_id {
                book::add_pending(tx, tenant, &m.payment_id, invoice, item.installment_id, item.amount).await?;
            }
        }
        if let (Some(customer), false) = (m.customer_id, line.counterparty_account.trim().is_empty()) {
            book::remember_account(tx, tenant, customer, line.counterparty_account.trim()).await?;
        }
        self.announce(tx, tenant, line, m, items, MATCH_CONFIRMED).await?;

        let applied: Decimal = items.iter().map(|i| i.amount).sum();
        let open: Decimal = items
            .iter()
            .filter_map(|i| by_id.get(&i.installment_id.or(i.invoice_id).unwrap_or_default()).map(|r| r.open))
            .sum();
        let first_invoice = items.first().and_then(|i| i.invoice_id);
        let mut raised = 0;
        if line.amount > applied {
            let d = DiscrepancyRow::new("overpayment", &line.currency, line.amount)
                .line(line.id)
                .expected(applied)
                .detail(format!(
                    "{} received for {} open; {} is left as the customer's credit",
                    line.amount,
                    applied,
                    line.amount - applied
                ));
            raised += u32::from(raise(tx, tenant, first_invoice.map_or(d.clone(), |i| d.invoice(i))).await?);
        } else if m.rule == "partial" && open > line.amount {
            let d = DiscrepancyRow::new("amount_mismatch", &line.currency, line.amount)
                .line(line.id)
                .expected(open)
                .detail(format!("{} received against {} open on {}", line.amount, open, invoice_numbers(items)));
            raised += u32::from(raise(tx, tenant, first_invoice.map_or(d.clone(), |i| d.invoice(i))).await?);
        }
        Ok(raised)
    }

    /// `reconciliation.match_confirmed` or `…match_reversed`, and for a confirmed match of
    /// invoices the `payment.received` invoicing applies.
    async fn announce(
        &self,
        tx: &mut PgConnection,
        tenant: Uuid,
        line: &LineRow,
        m: &MatchRow,
        items: &[MatchItemRow],
        kind: &str,
    ) -> Result<()> {
        let customer = m.customer_id.map(|c| cobro_kit::ids::format("cus", c)).unwrap_or_default();
        let event = ev::MatchDecided {
            match_id: cobro_kit::ids::format("mat", m.id),
            bank_line_id: cobro_kit::ids::format("bln", line.id),
            bank_account_id: cobro_kit::ids::format("bac", line.account_id),
            rule: m.rule.clone(),
            confidence: m.confidence.to_string(),
            customer_id: customer.clone(),
            amount: money(line.amount, &line.currency),
            booking_date: line.booking_date.to_string(),
            items: items
                .iter()
                .map(|i| ev::MatchedItemEvent {
                    invoice_id: i.invoice_id.map(|id| cobro_kit::ids::format("inv", id)).unwrap_or_default(),
                    installment_id: i.installment_id.map(|id| cobro_kit::ids::format("ins", id)).unwrap_or_default(),
                    payout_id: i.payout_id.map(|id| cobro_kit::ids::format("po", id)).unwrap_or_default(),
                    amount: money(i.amount, &i.currency),
                })
                .collect(),
            decided_by: m.decided_by.clone(),
            payment_id: m.payment_id.clone(),
        };
        enqueue(tx, TOPIC, NewEvent::new(kind, tenant, line.id.to_string(), &event)).await?;
        if kind == MATCH_CONFIRMED && !m.payment_id.is_empty() && m.customer_id.is_some() {
            let invoices: BTreeSet<Uuid> = items.iter().filter_map(|i| i.invoice_id).collect();
            let installment = match items {
                [only] => only.installment_id.map(|id| cobro_kit::ids::format("ins", id)).unwrap_or_default(),
                _ => String::new(),
            };
            let payment = ev::PaymentReceived {
                payment_id: m.payment_id.clone(),
                customer_id: customer,
                amount: money(line.amount, &line.currency),
                method: "transfer".to_owned(),
                received_on: line.booking_date.to_string(),
                invoice_ids: invoices.iter().map(|id| cobro_kit::ids::format("inv", *id)).collect(),
                installment_id: installment,
            };
            enqueue(tx, TOPIC, NewEvent::new(PAYMENT_RECEIVED, tenant, m.payment_id.clone(), &payment)).await?;
        }
        Ok(())
    }

    /// Why lines left unmatched did not match: a second payment of something already paid, or
    /// a reference to an invoice in another currency.
    async fn diagnose(
        &self,
        tx: &mut PgConnection,
        tenant: Uuid,
        settings: &SettingsRow,
        left: &[&LineRow],
    ) -> Result<u32> {
        if left.is_empty() {
            return Ok(0);
        }
        let mut raised = 0;
        let bank: Vec<_> = left.iter().map(|l| l.to_bank_line()).collect();
        let window = i64::from(settings.date_window_days);

        let settled = book::settled_items(tx, tenant).await?;
        let paid: Vec<OpenItem> =
            settled.iter().map(|r| OpenItem { amount_open: r.total, ..open_item(r, &HashMap::new()) }).collect();
        let by_id: HashMap<Uuid, &ItemRow> = settled.iter().map(|r| (r.id, r)).collect();
        let mut seen = HashSet::new();
        for m in match_lines(&bank, &paid, window) {
            let (Some(line), true) = (left.get(m.line), quoted(m.rule)) else { continue };
            let Some(item) = m.items.first().and_then(|(id, _)| by_id.get(id)) else { continue };
            seen.insert(line.id);
            let d = DiscrepancyRow::new("duplicate_payment", &line.currency, line.amount)
                .line(line.id)
                .invoice(item.invoice_id)
                .expected(Decimal::ZERO)
                .detail(format!("{} received for {}, which is already paid", line.amount, item.number));
            raised += u32::from(raise(tx, tenant, d).await?);
        }

        let open = book::open_items(tx, tenant).await?;
        let currencies: BTreeSet<&str> = left.iter().map(|l| l.currency.as_str()).collect();
        for currency in currencies {
            let others: Vec<&ItemRow> = open.iter().filter(|r| r.currency != currency).collect();
            if others.is_empty() {
                continue;
            }
            let as_if: Vec<OpenItem> = others
                .iter()
                .map(|r| OpenItem { currency: currency.to_owned(), ..open_item(r, &HashMap::new()) })
                .collect();
            let by_id: HashMap<Uuid, &ItemRow> = others.iter().map(|r| (r.id, *r)).collect();
            let these: Vec<usize> =
                (0..left.len()).filter(|i| left[*i].currency == currency && !seen.contains(&left[*i].id)).collect();
            let subset: Vec<_> = these.iter().map(|i| bank[*i].clone()).collect();
            for m in match_lines(&subset, &as_if, window) {
                let Some(line) = these.get(m.line).and_then(|i| left.get(*i)) else { continue };
                if !quoted(m.rule) {
                    continue;
                }
                let Some(item) = m.items.first().and_then(|(id, _)| by_id.get(id)) else { continue };
                let d = DiscrepancyRow::new("currency_mismatch", &line.currency, line.amount)
                    .line(line.id)
                    .invoice(item.invoice_id)
                    .expected(item.open)
                    .detail(format!(
                        "{} {} received for {}, which is invoiced in {}",
                        line.amount, line.currency, item.number, item.currency
                    ));
                raised += u32::from(raise(tx, tenant, d).await?);
            }
        }
        Ok(raised)
    }

    pub async fn decide(
        &self,
        decision: Decision,
        tenant: Uuid,
        id: Uuid,
        actor: &str,
        reason: &str,
    ) -> Result<(MatchRow, Vec<MatchItemRow>)> {
        match decision {
            Decision::Confirm => self.confirm(tenant, id, actor, reason).await,
            Decision::Reject => self.reject(tenant, id, actor, reason).await,
            Decision::Unmatch => self.unmatch(tenant, id, actor, reason).await,
        }
    }

    /// A person accepts a suggestion.
    pub async fn confirm(
        &self,
        tenant: Uuid,
        id: Uuid,
        actor: &str,
        reason: &str,
    ) -> Result<(MatchRow, Vec<MatchItemRow>)> {
        let mut tx = self.pool.begin().await?;
        store::lock_tenant(&mut tx, tenant).await?;
        let m = locked_match(&mut tx, tenant, id, "suggested").await?;
        let line = store::line(&mut tx, tenant, m.line_id).await?.ok_or(ReconciliationError::NotFound("bank line"))?;
        let items = matches::items(&mut tx, tenant, &[m.id]).await?;
        let mut rows = Vec::new();
        for item in &items {
            let Some(invoice) = item.invoice_id else { continue };
            let row = book::item(&mut tx, tenant, invoice, item.installment_id)
                .await?
                .ok_or(ReconciliationError::NotFound("invoice"))?;
            if row.open < item.amount.min(line.amount) || !matches!(row.status.as_str(), "open" | "partially_paid") {
                return Err(ReconciliationError::conflict(
                    "item_no_longer_open",
                    format!("{} no longer has {} open; match it again", row.number, item.amount),
                ));
            }
            rows.push(row);
        }
        let payment_id = format!("{PAYMENT_PREFIX}{}", m.id.simple());
        let decided = matches::decide(&mut tx, tenant, &m, "confirmed", actor, reason, &payment_id).await?;
        store::set_line_status(&mut tx, tenant, line.id, "matched").await?;
        let by_id: HashMap<Uuid, &ItemRow> = rows.iter().map(|r| (r.id, r)).collect();
        self.confirmed(&mut tx, tenant, &line, &decided, &items, &by_id).await?;
        tx.commit().await?;
        Ok((decided, items))
    }

    /// A person turns a suggestion down: the line is free again, and the same suggestion is
    /// not made again.
    pub async fn reject(
        &self,
        tenant: Uuid,
        id: Uuid,
        actor: &str,
        reason: &str,
    ) -> Result<(MatchRow, Vec<MatchItemRow>)> {
        let mut tx = self.pool.begin().await?;
        let m = locked_match(&mut tx, tenant, id, "suggested").await?;
        let decided = matches::decide(&mut tx, tenant, &m, "rejected", actor, reason, "").await?;
        store::set_line_status(&mut tx, tenant, m.line_id, "unmatched").await?;
        let items = matches::items(&mut tx, tenant, &[m.id]).await?;
        tx.commit().await?;
        Ok((decided, items))
    }

    /// A person undoes a confirmed match: the line is free again and the books are told.
    pub async fn unmatch(
        &self,
        tenant: Uuid,
        id: Uuid,
        actor: &str,
        reason: &str,
    ) -> Result<(MatchRow, Vec<MatchItemRow>)> {
        if reason.trim().is_empty() {
            return Err(cobro_kit::error::InvalidField::new("reason", "say why the match is undone").into());
        }
        let mut tx = self.pool.begin().await?;
        store::lock_tenant(&mut tx, tenant).await?;
        let m = locked_match(&mut tx, tenant, id, "confirmed").await?;
        let line = store::line(&mut tx, tenant, m.line_id).await?.ok_or(ReconciliationError::NotFound("bank line"))?;
        let items = matches::items(&mut tx, tenant, &[m.id]).await?;
        let decided = matches::decide(&mut tx, tenant, &m, "reversed", actor, reason, "").await?;
        store::set_line_status(&mut tx, tenant, line.id, "unmatched").await?;
        for item in &items {
            if let Some(payout) = item.payout_id {
                book::set_payout_line(&mut tx, tenant, payout, None).await?;
            }
        }
        // Invoicing takes the payment back (or never applies it); nothing of it is pending here.
        if !m.payment_id.is_empty() {
            book::release_pending(&mut tx, tenant, &m.payment_id, None).await?;
        }
        self.announce(&mut tx, tenant, &line, &decided, &items, MATCH_REVERSED).await?;
        tx.commit().await?;
        Ok((decided, items))
    }

    /// A person matches a line to invoices or installments.
    pub async fn manual(
        &self,
        tenant: Uuid,
        line_id: Uuid,
        wanted: &[ManualItem],
        actor: &str,
        reason: &str,
    ) -> Result<(MatchRow, Vec<MatchItemRow>)> {
        if wanted.is_empty() {
            return Err(cobro_kit::error::InvalidField::new("items", "name at least one invoice").into());
        }
        let mut tx = self.pool.begin().await?;
        store::lock_tenant(&mut tx, tenant).await?;
        let line = store::line(&mut tx, tenant, line_id).await?.ok_or(ReconciliationError::NotFound("bank line"))?;
        if line.direction != "credit" {
            return Err(
                cobro_kit::error::InvalidField::new("bank_line_id", "is money out; only credits pay invoices").into()
            );
        }
        if line.status == "matched" {
            return Err(ReconciliationError::conflict("line_already_matched", "unmatch the line first".to_owned()));
        }
        // A suggestion the person did not take is superseded.
        for live in matches::live_for_lines(&mut tx, tenant, &[line.id]).await? {
            matches::decide(&mut tx, tenant, &live, "rejected", actor, "replaced by a manual match", "").await?;
        }
        let mut rows = Vec::new();
        let mut items = Vec::new();
        let mut total = Decimal::ZERO;
        for (i, w) in wanted.iter().enumerate() {
            let field = |name: &str| format!("items[{i}].{name}");
            let row = book::item(&mut tx, tenant, w.invoice, w.installment)
                .await?
                .ok_or(ReconciliationError::NotFound("invoice"))?;
            if row.currency != line.currency {
                return Err(cobro_kit::error::InvalidField::new(
                    field("invoice_id"),
                    format!("is invoiced in {}, the line is in {}", row.currency, line.currency),
                )
                .into());
            }
            if !matches!(row.status.as_str(), "open" | "partially_paid") || row.open <= Decimal::ZERO {
                return Err(cobro_kit::error::InvalidField::new(field("invoice_id"), "has nothing open").into());
            }
            let amount = w.amount.unwrap_or(row.open);
            if amount <= Decimal::ZERO || amount > row.open {
                return Err(cobro_kit::error::InvalidField::new(
                    field("amount"),
                    format!("must be more than 0 and at most the {} open", row.open),
                )
                .into());
            }
            if rows.iter().any(|r: &ItemRow| r.id == row.id) {
                return Err(cobro_kit::error::InvalidField::new(field("invoice_id"), "is named twice").into());
            }
            if rows.first().is_some_and(|r: &ItemRow| r.customer_id != row.customer_id) {
                return Err(cobro_kit::error::InvalidField::new(
                    field("invoice_id"),
                    "belongs to another customer; one payment pays one customer's invoices",
                )
                .into());
            }
            total += amount;
            items.push(MatchItemRow {
                match_id: Uuid::nil(),
                seq: i32::try_from(i).unwrap_or(i32::MAX),
                invoice_id: Some(row.invoice_id),
                installment_id: row.installment_id,
                payout_id: None,
                invoice_number: row.number.clone(),
                amount,
                currency: row.currency.clone(),
            });
            rows.push(row);
        }
        if total > line.amount {
            return Err(cobro_kit::error::InvalidField::new(
                "items",
                format!("apply {total} in all, more than the {} the line brought", line.amount),
            )
            .into());
        }
        let customer = rows.first().map(|r| r.customer_id);
        let id = Uuid::now_v7();
        let payment_id = format!("{PAYMENT_PREFIX}{}", id.simple());
        let m = matches::insert(
            &mut tx,
            tenant,
            &NewMatch {
                id,
                line_id: line.id,
                rule: "manual",
                confidence: Decimal::ONE,
                status: "confirmed",
                customer_id: customer,
                decided_by: actor,
                reason,
                payment_id: &payment_id,
                items: &items,
            },
        )
        .await?;
        store::set_line_status(&mut tx, tenant, line.id, "matched").await?;
        let by_id: HashMap<Uuid, &ItemRow> = rows.iter().map(|r| (r.id, r)).collect();
        self.confirmed(&mut tx, tenant, &line, &m, &items, &by_id).await?;
        tx.commit().await?;
        Ok((m, items))
    }

    /// Report credits still unmatched `unmatched_after_days` after booking.
    pub async fn check_unmatched(&self, tenant: Uuid, today: NaiveDate) -> Result<u32> {
        let mut tx = self.pool.begin().await?;
        let settings = store::settings(&mut tx, tenant).await?;
        let booked_by = today - chrono::Duration::days(i64::from(settings.unmatched_after_days));
        let mut raised = 0;
        for (line, amount, currency, booked) in discrepancy_store::stale_credits(&mut tx, tenant, booked_by).await? {
            let d = DiscrepancyRow::new("unmatched_credit", &currency, amount).line(line).detail(format!(
                "{amount} {currency} booked on {booked} is still unmatched after {} days",
                settings.unmatched_after_days
            ));
            raised += u32::from(raise(&mut tx, tenant, d).await?);
        }
        tx.commit().await?;
        Ok(raised)
    }

    /// Every line booked in a period with its match, the rule and who decided it.
    pub async fn report(&self, tenant: Uuid, from: NaiveDate, to: NaiveDate) -> Result<Vec<ReportRow>> {
        let lines = store::lines_booked(&self.pool, tenant, from, to).await?;
        let ids: Vec<Uuid> = lines.iter().map(|l| l.id).collect();
        let all = matches::for_lines(&self.pool, tenant, &ids).await?;
        let match_ids: Vec<Uuid> = all.iter().map(|m| m.id).collect();
        let mut conn = self.pool.acquire().await?;
        let items = matches::items(&mut conn, tenant, &match_ids).await?;
        let mut items_of: HashMap<Uuid, Vec<&MatchItemRow>> = HashMap::new();
        for item in &items {
            items_of.entry(item.match_id).or_default().push(item);
        }
        let mut by_line: HashMap<Uuid, Vec<&MatchRow>> = HashMap::new();
        for m in &all {
            by_line.entry(m.line_id).or_default().push(m);
        }
        let mut rows = Vec::new();
        for line in &lines {
            let base = ReportRow {
                bank_line_id: cobro_kit::ids::format("bln", line.id),
                bank_account_id: cobro_kit::ids::format("bac", line.account_id),
                booking_date: line.booking_date.to_string(),
                value_date: line.value_date.map(|d| d.to_string()).unwrap_or_default(),
                amount: line.amount.to_string(),
                currency: line.currency.clone(),
                direction: line.direction.clone(),
                counterparty_name: line.counterparty_name.clone(),
                counterparty_account: line.counterparty_account.clone(),
                reference: line.reference.clone(),
                remittance: line.remittance.clone(),
                entry_id: line.entry_id.clone(),
                line_status: line.status.clone(),
                match_id: String::new(),
                match_status: String::new(),
                rule: String::new(),
                confidence: String::new(),
                customer_id: String::new(),
                items: String::new(),
                decided_by: String::new(),
                decided_at: String::new(),
            };
            let Some(found) = by_line.get(&line.id) else {
                rows.push(base);
                continue;
            };
            // Every match the line ever had: auditors see rejected and reversed ones too.
            for m in found {
                let list = items_of.get(&m.id).map(Vec::as_slice).unwrap_or_default();
                rows.push(ReportRow {
                    match_id: cobro_kit::ids::format("mat", m.id),
                    match_status: m.status.clone(),
                    rule: m.rule.clone(),
                    confidence: m.confidence.to_string(),
                    customer_id: m.customer_id.map(|c| cobro_kit::ids::format("cus", c)).unwrap_or_default(),
                    items: list
                        .iter()
                        .map(|i| format!("{}={}", i.invoice_number, i.amount))
                        .collect::<Vec<_>>()
                        .join(";"),
                    decided_by: m.decided_by.clone(),
                    decided_at: m.decided_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                    ..base.clone()
                });
            }
        }
        Ok(rows)
    }

    /// Background work every replica shares: match tenants whose open items changed, and report
    /// credits left unmatched too long.
    pub async fn run_jobs(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        let mut last_check: Option<NaiveDate> = None;
        loop {
            if let Err(error) = self.rematch_dirty().await {
                tracing::warn!(%error, "matching tenants with new open items failed; will retry");
            }
            let today = Utc::now().date_naive();
            if last_check != Some(today) {
                match self.check_all_unmatched(today).await {
                    Ok(()) => last_check = Some(today),
                    Err(error) => tracing::warn!(%error, "checking unmatched credits failed; will retry"),
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// Match every tenant marked dirty. The mark goes in the same transaction as the matching,
    /// so a run that fails or dies leaves the tenant marked for the next pass.
    pub async fn rematch_dirty(&self) -> Result<u32> {
        let mut done = 0;
        loop {
            let mut tx = self.pool.begin().await?;
            let Some(tenant) = book::take_dirty(&mut tx).await? else { return Ok(done) };
            self.match_in(&mut tx, tenant).await?;
            tx.commit().await?;
            done += 1;
        }
    }

    async fn check_all_unmatched(&self, today: NaiveDate) -> Result<()> {
        for tenant in discrepancy_store::tenants_with_unmatched(&self.pool).await? {
            self.check_unmatched(tenant, today).await?;
        }
        Ok(())
    }
}

/// The line as the rules read it. A customer's own RF reference (not one invoice's) identifies
/// the payer as surely as a known account: the line is given a stand-in account that the
/// customer is known by, so the rules match it by amount like any known payer.
fn payer_by_reference(
    line: &LineRow,
    customer_refs: &HashMap<String, Uuid>,
    accounts: &mut HashMap<Uuid, Vec<String>>,
) -> BankLine {
    let mut bank = line.to_bank_line();
    if customer_refs.is_empty() {
        return bank;
    }
    let mut quoted = BTreeSet::new();
    for text in [&bank.reference, &bank.remittance, &bank.end_to_end_id] {
        rf_candidates(text, &mut quoted);
    }
    let customers: BTreeSet<Uuid> = quoted.iter().filter_map(|r| customer_refs.get(r)).copied().collect();
    if let [customer] = customers.into_iter().collect::<Vec<_>>().as_slice() {
        let stand_in = format!("RFCUSTOMER{}", customer.simple()).to_uppercase();
        let known = accounts.entry(*customer).or_default();
        if !known.contains(&stand_in) {
            known.push(stand_in.clone());
        }
        bank.counterparty_account = stand_in;
    }
    bank
}

/// The match, locked for a decision that only a match in `status` may take.
async fn locked_match(tx: &mut PgConnection, tenant: Uuid, id: Uuid, status: &str) -> Result<MatchRow> {
    let m = matches::get_for_update(tx, tenant, id).await?.ok_or(ReconciliationError::NotFound("match"))?;
    if m.status != status {
        let code = if status == "suggested" { "match_not_suggested" } else { "match_not_confirmed" };
        return Err(ReconciliationError::conflict(code, format!("the match is {}, not {status}", m.status)));
    }
    Ok(m)
}

fn invoice_numbers(items: &[MatchItemRow]) -> String {
    items.iter().map(|i| i.invoice_number.as_str()).collect::<Vec<_>>().join(", ")
}
