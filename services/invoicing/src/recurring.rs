//! Recurring invoices: a template and a schedule; each period's invoice is made exactly once.

use chrono::{Datelike, Months, NaiveDate};
use cobro_kit::auth::Principal;
use cobro_kit::error::InvalidField;
use uuid::Uuid;

use crate::app::{Invoicing, NewInvoice, parse_date};
use crate::error::{InvoicingError, Result};
use crate::store;

#[derive(Debug, Clone)]
pub struct RecurringIn {
    /// The invoice each period, as CreateInvoice takes it (its dates are set per period).
    pub invoice: NewInvoice,
    /// monthly, quarterly or yearly
    pub frequency: String,
    pub day_of_month: u32,
    pub first_period: String,
    pub end_date: String,
    pub max_count: u32,
    pub auto_issue: bool,
}

#[derive(sqlx::FromRow)]
struct TemplateRow {
    invoice: serde_json::Value,
    frequency: String,
    next_period: NaiveDate,
    end_date: Option<NaiveDate>,
    max_count: Option<i32>,
    generated_count: i32,
    auto_issue: bool,
    active: bool,
}

fn months_of(frequency: &str) -> Option<u32> {
    match frequency {
        "monthly" => Some(1),
        "quarterly" => Some(3),
        "yearly" => Some(12),
        _ => None,
    }
}

impl Invoicing {
    pub async fn create_recurring(&self, principal: &Principal, input: RecurringIn) -> Result<Uuid> {
        if !principal.has("invoices:write") {
            return Err(InvoicingError::PermissionDenied("missing permission invoices:write".to_owned()));
        }
        months_of(&input.frequency)
            .ok_or_else(|| InvalidField::new("frequency", "must be monthly, quarterly or yearly"))?;
        if !(1..=28).contains(&input.day_of_month) {
            return Err(InvalidField::new("day_of_month", "must be between 1 and 28 (every month has it)").into());
        }
        let first = parse_date("first_period", &input.first_period)?;
        if first.day() != input.day_of_month {
            return Err(InvalidField::new("first_period", "must fall on day_of_month").into());
        }
        let end_date = if input.end_date.is_empty() { None } else { Some(parse_date("end_date", &input.end_date)?) };
        if end_date.is_some_and(|end| end < first) {
            return Err(InvalidField::new("end_date", "must not be before first_period").into());
        }
        let mut template = input.invoice.clone();
        template.issue_date.clear();
        template.due_date.clear();
        template.external_id.clear();
        // Validate the template now, so a bad one is refused here and not at 3 a.m.
        let mut tx = self.pool.begin().await?;
        let (row, _) = Self::prepare_invoice(&mut tx, principal.tenant_id, &template).await?;
        let id = Uuid::now_v7();
        let invoice = serde_json::to_value(&template).map_err(|e| InvoicingError::Internal(e.to_string()))?;
        sqlx::query(
            "INSERT INTO recurring_templates (tenant_id, id, customer_id, currency, invoice, frequency, day_of_month, \
             next_period, end_date, max_count, auto_issue) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(principal.tenant_id)
        .bind(id)
        .bind(row.customer_id)
        .bind(&row.currency)
        .bind(&invoice)
        .bind(&input.frequency)
        .bind(i32::try_from(input.day_of_month).unwrap_or(1))
        .bind(first)
        .bind(end_date)
        .bind((input.max_count > 0).then(|| i32::try_from(input.max_count).unwrap_or(i32::MAX)))
        .bind(input.auto_issue)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Make every invoice whose period has come, across tenants. Safe to run on several
    /// replicas at once: a period's run row is inserted in the same transaction as its invoice,
    /// and a second generator finds it there and moves on. Returns the invoices made.
    pub async fn generate_recurring(&self, today: NaiveDate) -> Result<usize> {
        let mut made = 0;
        let mut failed: Vec<Uuid> = Vec::new();
        loop {
            let due: Vec<(Uuid, Uuid)> = sqlx::query_as(
                "SELECT tenant_id, id FROM recurring_templates WHERE active AND next_period <= $1 AND NOT (id = ANY($2)) \
                 ORDER BY next_period LIMIT 100",
            )
            .bind(today)
            .bind(&failed)
            .fetch_all(&self.pool)
            .await?;
            if due.is_empty() {
                return Ok(made);
            }
            let mut progressed = false;
            for (tenant_id, template_id) in due {
                if failed.contains(&template_id) {
                    continue;
                }
                // One broken template must not stop every other tenant's invoices.
                match self.generate_one(tenant_id, template_id, today).await {
                    Ok(Some(_)) => {
                        made += 1;
                        progressed = true;
                    }
                    Ok(None) => {}
                    Err(error) => {
                        tracing::error!(tenant = %tenant_id, template = %template_id, %error, "a recurring template failed; skipped");
                        failed.push(template_id);
                        progressed = true;
                    }
                }
            }
            if !progressed {
                // Everything due was made by someone else meanwhile; look again once.
                let left: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM recurring_templates t WHERE active AND next_period <= $1 AND NOT EXISTS \
                     (SELECT 1 FROM recurring_runs r WHERE r.tenant_id = t.tenant_id AND r.template_id = t.id AND r.period = t.next_period) \
                     AND NOT (t.id = ANY($2))",
                )
                .bind(today)
                .bind(&failed)
                .fetch_one(&self.pool)
                .await?;
                if left == 0 {
                    return Ok(made);
                }
            }
        }
    }

    async fn generate_one(&self, tenant_id: Uuid, template_id: Uuid, today: NaiveDate) -> Result<Option<Uuid>> {
        let mut tx = self.pool.begin().await?;
        let template: Option<TemplateRow> = sqlx::query_as(
            "SELECT invoice, frequency, next_period, end_date, max_count, generated_count, auto_issue, active \
                 FROM recurring_templates WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
        )
        .bind(tenant_id)
        .bind(template_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(TemplateRow {
            invoice,
            frequency,
            next_period: period,
            end_date,
            max_count,
            generated_count: count,
            auto_issue,
            active,
        }) = template
        else {
            return Ok(None);
        };
        if !active || period > today {
            return Ok(None);
        }
        let invoice_id = Uuid::now_v7();
        let inserted = sqlx::query(
            "INSERT INTO recurring_runs (tenant_id, template_id, period, invoice_id) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(tenant_id)
        .bind(template_id)
        .bind(period)
        .bind(invoice_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if inserted {
            let mut input: NewInvoice = serde_json::from_value(invoice)
                .map_err(|e| InvoicingError::Internal(format!("recurring template: {e}")))?;
            input.issue_date = period.to_string();
            let (mut row, lines) = Self::prepare_invoice(&mut tx, tenant_id, &input).await?;
            row.id = invoice_id;
            store::insert_invoice(&mut tx, &row, &lines).await?;
            if auto_issue {
                Self::issue_in(&mut tx, tenant_id, invoice_id).await?;
            }
        }
        let next = period
            .checked_add_months(Months::new(months_of(&frequency).unwrap_or(1)))
            .ok_or_else(|| InvoicingError::Internal("recurring schedule ran past the calendar".to_owned()))?;
        let count = count + i32::from(inserted);
        let still_active = end_date.is_none_or(|end| next <= end) && max_count.is_none_or(|max| count < max);
        sqlx::query(
            "UPDATE recurring_templates SET next_period = $3, generated_count = $4, active = $5 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(template_id)
        .bind(next)
        .bind(count)
        .bind(still_active)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(inserted.then_some(invoice_id))
    }
}

/// The template id as the API prints it.
pub fn template_id(id: Uuid) -> String {
    cobro_kit::ids::format("rec", id)
}
