//! Use cases: keeping each invoice's reminders planned as invoicing's events arrive, and the
//! dispatcher that sends what is due, once.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use cobro_kit::events::{NewEvent, enqueue};
use cobro_proto::events::v1 as ev;
use sqlx::{PgConnection, PgPool};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::channels::{AnyChannel, Channel as _, ChannelError, Outgoing};
use crate::config::Pace;
use crate::domain::schedule;
use crate::domain::templates::{self, Language};
use crate::error::Result;
use crate::policy::PolicyBody;
use crate::store::{self, MessageRow, NewMessage};

pub const TOPIC: &str = "cobro.notifications.v1";

/// Days before the due date an autopay customer is told of the coming charge.
const AUTOPAY_NOTICE_DAYS: u64 = 3;

/// What an autopay notice is about and to whom: an invoice, or one installment of its plan.
struct AutopayNotice<'a> {
    installment: Option<&'a store::InstallmentRow>,
    due_date: chrono::NaiveDate,
    email: &'a str,
    language: Language,
    tz: Tz,
}

/// Messages a dispatcher sends at once. A send mostly waits on the provider and needs a
/// database connection only briefly, so this may exceed the pool a little; recording an outcome
/// retries if the pool is momentarily dry.
const SENDS_AT_ONCE: usize = 32;

/// The channels this deployment can send through; a message for a missing one fails for good.
#[derive(Default)]
pub struct Channels {
    pub email: Option<AnyChannel>,
    pub sms: Option<AnyChannel>,
    pub whatsapp: Option<AnyChannel>,
    /// Outgoing webhooks: signed per tenant with the policy's secret.
    pub webhook: Option<WebhookSettings>,
}

/// How webhooks go out; a `Webhook` is built per message with the tenant's secret.
pub struct WebhookSettings {
    pub client: crate::channels::HttpClient,
    /// Development and tests only: plain http and private addresses (bodies carry invoice data).
    pub allow_local: bool,
}

pub struct Notifications {
    pool: PgPool,
    channels: Channels,
    pace: Pace,
    portal_url: Option<String>,
}

/// A contact as invoicing describes it.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct Contact {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub whatsapp_opt_in: bool,
    #[serde(default)]
    pub language: String,
    #[serde(default)]
    pub timezone: String,
}

fn contacts(value: &serde_json::Value) -> Vec<Contact> {
    serde_json::from_value(value.clone()).unwrap_or_default()
}

/// How long to wait before try `attempt + 1`: 1, 2, 4, ... minutes, at most an hour.
pub fn backoff(attempt: u32) -> chrono::Duration {
    let minutes = 1_i64 << attempt.saturating_sub(1).min(6);
    chrono::Duration::minutes(minutes.min(60))
}

/// The start of a local date in UTC (the first valid instant, across a DST gap).
fn local_midnight(tz: Tz, day: NaiveDate) -> DateTime<Utc> {
    schedule::resolve_local(tz, day.and_time(chrono::NaiveTime::MIN))
}

impl Notifications {
    pub fn new(pool: PgPool, channels: Channels, pace: Pace) -> Self {
        Self { pool, channels, pace, portal_url: None }
    }

    /// Messages about an invoice link to its page in the customer portal under `url`.
    #[must_use]
    pub fn with_portal_url(mut self, url: &str) -> Self {
        let url = url.trim().trim_end_matches('/');
        self.portal_url = (!url.is_empty()).then(|| url.to_owned());
        self
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) async fn policy(
        &self,
        db: impl sqlx::PgExecutor<'_>,
        tenant: Uuid,
        customer: Uuid,
    ) -> Result<(PolicyBody, String)> {
        Ok(match store::policy_for(db, tenant, customer).await? {
            Some(row) => {
                (serde_json::from_value(row.body).unwrap_or_else(|_| PolicyBody::builtin()), row.webhook_secret)
            }
            None => (PolicyBody::builtin(), String::new()),
        })
    }

    // --- planning ---

    /// (Re)plan an invoice's reminders from `now`: nothing for an invoice that is paid, void or
    /// paused (what was planned is canceled); otherwise every step still ahead, and of the steps
    /// already past only the latest, sent now. Messages already sent are never touched.
    pub async fn plan_invoice(
        &self,
        conn: &mut PgConnection,
        tenant: Uuid,
        invoice: Uuid,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let Some(inv) = store::invoice_for_update(conn, tenant, invoice).await? else { return Ok(0) };
        if !inv.remindable() {
            store::cancel_planned(conn, tenant, invoice).await?;
            return Ok(0);
        }
        let Some(customer) = store::customer(&mut *conn, tenant, inv.customer_id).await? else {
            // The customer's contacts have not arrived yet; customer.upserted plans it then.
            return Ok(0);
        };
        if customer.paused {
            store::cancel_planned(conn, tenant, invoice).await?;
            return Ok(0);
        }
        let (policy, _) = self.policy(&mut *conn, tenant, inv.customer_id).await?;
        let contact = contacts(&customer.contacts).into_iter().next().unwrap_or_default();
        let tz: Tz = contact.timezone.parse().unwrap_or_else(|_| policy.timezone());
        let language = Language::or_default(&contact.language);
        let today = now.with_timezone(&tz).date_naive();
        let rules = policy.rules();
        // With a plan, each installment still open gets the policy's steps around its own due
        // date; without one, the invoice does.
        let plan = store::installments(&mut *conn, tenant, invoice).await?;
        let targets: Vec<(Option<&store::InstallmentRow>, chrono::NaiveDate)> = if plan.is_empty() {
            vec![(None, inv.due_date)]
        } else {
            plan.iter().filter(|i| i.balance > rust_decimal::Decimal::ZERO).map(|i| (Some(i), i.due_date)).collect()
        };
        let mut kept = Vec::new();
        for (installment, due_date) in targets {
            for p in schedule::resume_plan(&rules, due_date, tz, &policy.holidays, today, now) {
                // Autopay will charge on the due date: no reminders before it.
                if customer.autopay && rules.steps.get(p.step).is_some_and(|s| s.offset_days < 0) {
                    continue;
                }
                // Addresses as opt-outs store them; one that does not check out gets nothing.
                let recipient = match p.channel {
                    schedule::Channel::Email => crate::channels::check_email(&contact.email).ok(),
                    schedule::Channel::Sms => crate::channels::check_phone(&contact.phone).ok(),
                    schedule::Channel::WhatsApp if contact.whatsapp_opt_in => {
                        crate::channels::check_phone(&contact.phone).ok()
                    }
                    schedule::Channel::WhatsApp => None,
                    schedule::Channel::Webhook => Some(policy.webhook_url.clone()).filter(|u| !u.is_empty()),
                };
                let Some(recipient) = recipient else { continue };
                let Some(step) = rules.steps.get(p.step) else { continue };
                let tone = step.tone.as_str();
                // Keyed by the step's day, not its position, so editing a policy never makes a
                // sent reminder's key stand for another step.
                let part = installment.map(|i| format!("i{}:", i.seq)).unwrap_or_default();
                let key = format!("reminder:{invoice}:{part}d{}:{}", step.offset_days, p.channel.as_str());
                let kind = format!("reminder_{tone}");
                store::plan_message(
                    conn,
                    tenant,
                    &NewMessage {
                        id: Uuid::now_v7(),
                        customer_id: inv.customer_id,
                        invoice_id: Some(invoice),
                        installment_id: installment.map(|i| i.installment_id),
                        kind: &kind,
                        step: i32::try_from(p.step).ok(),
                        tone,
                        channel: p.channel.as_str(),
                        recipient: &recipient,
                        language: language.code(),
                        data: &serde_json::Value::Null,
                        send_at: p.send_at,
                        idempotency_key: &key,
                    },
                )
                .await?;
                kept.push(key);
            }
            if customer.autopay
                && let Some(email) = crate::channels::check_email(&contact.email).ok()
            {
                let notice = AutopayNotice { installment, due_date, email: &email, language, tz };
                if let Some(key) = self.plan_autopay_notice(conn, tenant, &inv, notice, &policy, now).await? {
                    kept.push(key);
                }
            }
        }
        // What the plan no longer holds (a removed step or address, a missed step superseded,
        // the notice of a charge that moved to an installment) must not go out.
        store::cancel_reminders_except(conn, tenant, invoice, &kept).await?;
        Ok(kept.len())
    }

    /// For an autopay customer: a notice of the coming charge of an invoice or installment,
    /// three days before its due date at the policy's time (or now, if that is past and the
    /// charge has not come). Returns its key, unless the due date has passed.
    async fn plan_autopay_notice(
        &self,
        conn: &mut PgConnection,
        tenant: Uuid,
        inv: &store::InvoiceRow,
        notice: AutopayNotice<'_>,
        policy: &PolicyBody,
        now: DateTime<Utc>,
    ) -> Result<Option<String>> {
        let tz = notice.tz;
        let today = now.with_timezone(&tz).date_naive();
        let due_date = notice.due_date;
        if due_date < today {
            return Ok(None);
        }
        let day = due_date.checked_sub_days(chrono::Days::new(AUTOPAY_NOTICE_DAYS)).unwrap_or(due_date);
        let at = schedule::resolve_local(tz, day.and_time(policy.rules().send_at)).max(now);
        let key = match notice.installment {
            Some(i) => format!("autopay_upcoming:{}:i{}", inv.invoice_id, i.seq),
            None => format!("autopay_upcoming:{}", inv.invoice_id),
        };
        store::plan_message(
            conn,
            tenant,
            &NewMessage {
                id: Uuid::now_v7(),
                customer_id: inv.customer_id,
                invoice_id: Some(inv.invoice_id),
                installment_id: notice.installment.map(|i| i.installment_id),
                kind: "autopay_upcoming",
                step: None,
                tone: "",
                channel: "email",
                recipient: notice.email,
                language: notice.language.code(),
                data: &serde_json::Value::Null,
                send_at: at,
                idempotency_key: &key,
            },
        )
        .await?;
        Ok(Some(key))
    }

    /// A one-off message (invoice issued, receipt, ...) to the customer's first contact by
    /// email, sent as soon as the dispatcher gets to it. `key` makes it once per cause.
    #[allow(clippy::too_many_arguments)]
    pub async fn plan_transactional(
        &self,
        conn: &mut PgConnection,
        tenant: Uuid,
        customer: Uuid,
        invoice: Option<Uuid>,
        kind: &str,
        key: &str,
        to_staff: bool,
        data: serde_json::Value,
    ) -> Result<bool> {
        let (policy, _) = self.policy(&mut *conn, tenant, customer).await?;
        let contact = match store::customer(&mut *conn, tenant, customer).await? {
            Some(c) => contacts(&c.contacts).into_iter().next().unwrap_or_default(),
            None => Contact::default(),
        };
        let recipient = if to_staff { policy.sender_email.clone() } else { contact.email.clone() };
        if recipient.is_empty() {
            return Ok(false);
        }
        let language = if to_staff { Language::or_default("") } else { Language::or_default(&contact.language) };
        store::plan_message(
            conn,
            tenant,
            &NewMessage {
                id: Uuid::now_v7(),
                customer_id: customer,
                invoice_id: invoice,
                installment_id: None,
                kind,
                step: None,
                tone: "",
                channel: "email",
                recipient: &recipient,
                language: language.code(),
                data: &data,
                send_at: cobro_kit::clock::now(),
                idempotency_key: key,
            },
        )
        .await?;
        Ok(true)
    }

    // --- dispatching ---

    /// Send until shutdown: a round whenever the last one found work, else every poll interval.
    pub async fn run_dispatcher(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            let sent = match Arc::clone(&self).dispatch_once().await {
                Ok(n) => n,
                Err(error) => {
                    tracing::warn!(%error, "dispatch round failed");
                    0
                }
            };
            if sent == 0 {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(self.pace.poll_interval) => {}
                }
            } else if shutdown.is_cancelled() {
                return;
            }
        }
    }

    /// Claim a batch of due messages and deliver them concurrently. Returns how many were claimed.
    pub async fn dispatch_once(self: Arc<Self>) -> Result<usize> {
        let lease = chrono::Duration::from_std(self.pace.lease).unwrap_or(chrono::Duration::minutes(2));
        let due = store::claim_due(&self.pool, cobro_kit::clock::now(), i64::from(self.pace.batch_size), lease).await?;
        let claimed = due.len();
        // Bounded below the connection pool: a send waiting for a connection eats its lease.
        let permits = Arc::new(tokio::sync::Semaphore::new(SENDS_AT_ONCE));
        let mut tasks = JoinSet::new();
        for message in due {
            let this = Arc::clone(&self);
            let permits = Arc::clone(&permits);
            tasks.spawn(async move {
                let Ok(_permit) = permits.acquire_owned().await else { return };
                let id = message.id;
                if let Err(error) = this.deliver(message).await {
                    tracing::warn!(%error, message = %id, "a message could not be finished; its lease will expire and it is retried");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        Ok(claimed)
    }

    async fn deliver(&self, m: MessageRow) -> Result<()> {
        if u32::try_from(m.attempts).unwrap_or(u32::MAX) > self.pace.max_attempts {
            // Claimed again and again without ever finishing (its dispatcher dies each time):
            // stop rather than risk sending it forever.
            return self.close(&m, "dead_lettered", "", "never finished after every attempt").await;
        }
        let invoice = match m.invoice_id {
            Some(id) => store::invoice(&self.pool, m.tenant_id, id).await?,
            None => None,
        };
        let installment = match m.installment_id {
            Some(id) => store::installment(&self.pool, m.tenant_id, id).await?,
            None => None,
        };
        if m.kind.starts_with("reminder") || m.kind == "autopay_upcoming" {
            // The invoice (or its installment) may have been paid, voided or paused since this
            // was planned.
            let installment_open = m.installment_id.is_none()
                || installment.as_ref().is_some_and(|i| i.balance > rust_decimal::Decimal::ZERO);
            match &invoice {
                Some(inv) if inv.remindable() && installment_open => {}
                _ => return self.close(&m, "canceled", "", "the invoice no longer needs a reminder").await,
            }
        }
        if store::opted_out(&self.pool, m.tenant_id, m.customer_id, &m.recipient, &m.channel).await? {
            return self.close(&m, "canceled", "", "the contact opted out of this channel").await;
        }
        let (policy, webhook_secret) = self.policy(&self.pool, m.tenant_id, m.customer_id).await?;
        let customer = store::customer(&self.pool, m.tenant_id, m.customer_id).await?;
        let contact =
            customer.as_ref().map(|c| contacts(&c.contacts)).unwrap_or_default().into_iter().next().unwrap_or_default();
        let tz: Tz = contact.timezone.parse().unwrap_or_else(|_| policy.timezone());
        let reminder = m.step.is_some();
        if reminder && customer.as_ref().is_some_and(|c| c.paused) {
            return self.close(&m, "canceled", "", "the customer's reminders are paused").await;
        }
        let now = cobro_kit::clock::now();
        if reminder {
            // A retry or a backlog must not reach the customer at night either.
            let rules = policy.rules();
            let local = now.with_timezone(&tz);
            if schedule::in_quiet_hours(local.time(), rules.quiet_start, rules.quiet_end) {
                let wait = (rules.quiet_end - local.time()).num_seconds().rem_euclid(86_400);
                store::later(&self.pool, &m, now + chrono::Duration::seconds(wait.max(60)), "", false).await?;
                return Ok(());
            }
            if policy.daily_cap > 0 {
                let today = local.date_naive();
                let tomorrow = today.succ_opt().unwrap_or(today);
                let (start, end) = (local_midnight(tz, today), local_midnight(tz, tomorrow));
                if !store::reserve_under_cap(&self.pool, &m, start, end, i64::from(policy.daily_cap)).await? {
                    // Over the cap: tomorrow, not counted as a try.
                    store::later(&self.pool, &m, m.send_at.max(now) + chrono::Duration::days(1), "", false).await?;
                    return Ok(());
                }
            }
        }

        let language = Language::or_default(&m.language);
        let template = match m.step {
            Some(step) => usize::try_from(step).ok().and_then(|s| policy.template(s, language)),
            None => policy.message_template(&m.kind, language),
        };
        let Some(template) = template else {
            return self.close(&m, "failed", "", "no template for this message").await;
        };
        let mut vars = crate::render::vars(
            &m,
            invoice.as_ref(),
            installment.as_ref(),
            customer.as_ref(),
            &contact,
            &policy,
            now,
            tz,
        );
        if vars.pay_link.is_none()
            && let (Some(portal), Some(id)) = (&self.portal_url, m.invoice_id)
        {
            vars.pay_link = Some(format!("{portal}/invoices/{}", cobro_kit::ids::format("inv", id)));
        }
        let rendered = match templates::render(&template, &vars) {
            Ok(r) => r,
            Err(error) => return self.close(&m, "failed", "", &format!("the template does not render: {error}")).await,
        };
        let outgoing = Outgoing {
            idempotency_key: m.idempotency_key.clone(),
            to: m.recipient.clone(),
            subject: rendered.subject,
            text: rendered.text,
            html: rendered.html,
            sms: rendered.sms,
            webhook_event: m.kind.clone(),
            webhook_body: crate::render::webhook_body(&m, invoice.as_ref()),
        };
        let answer = match m.channel.as_str() {
            "email" => self.send_on(self.channels.email.as_ref(), &outgoing).await,
            "sms" => self.send_on(self.channels.sms.as_ref(), &outgoing).await,
            "whatsapp" => self.send_on(self.channels.whatsapp.as_ref(), &outgoing).await,
            "webhook" => match &self.channels.webhook {
                Some(settings) => {
                    let config = crate::channels::WebhookConfig {
                        allow_plain_http: settings.allow_local,
                        allow_private_networks: settings.allow_local,
                        ..crate::channels::WebhookConfig::new(secrecy::SecretString::from(webhook_secret.clone()))
                    };
                    match crate::channels::Webhook::new(settings.client.clone(), config) {
                        Ok(webhook) => webhook.send(&outgoing).await,
                        Err(error) => Err(error),
                    }
                }
                None => Err(ChannelError::Permanent("webhooks are not configured".to_owned())),
            },
            _ => Err(ChannelError::Permanent("unknown channel".to_owned())),
        };
        match answer {
            Ok(delivery) => self.close(&m, "sent", &delivery.provider_id, "").await,
            Err(error) if error.is_transient() => {
                if u32::try_from(m.attempts).unwrap_or(u32::MAX) >= self.pace.max_attempts {
                    self.close(&m, "dead_lettered", "", error.message()).await
                } else {
                    let attempt = u32::try_from(m.attempts).unwrap_or(1);
                    store::later(&self.pool, &m, cobro_kit::clock::now() + backoff(attempt), error.message(), true)
                        .await?;
                    Ok(())
                }
            }
            Err(error) => self.close(&m, "failed", "", error.message()).await,
        }
    }

    async fn send_on(
        &self,
        channel: Option<&AnyChannel>,
        outgoing: &Outgoing,
    ) -> Result<crate::channels::Delivery, ChannelError> {
        match channel {
            Some(channel) => channel.send(outgoing).await,
            None => Err(ChannelError::Permanent("this channel is not configured".to_owned())),
        }
    }

    /// Record how a claimed message ended, with its event, in one transaction. After a send
    /// the record matters most (without it the message goes out again when the lease ends), so
    /// a failure is tried again a few times before giving up.
    async fn close(&self, m: &MessageRow, status: &str, provider_id: &str, error: &str) -> Result<()> {
        let mut tries = 0;
        loop {
            match self.close_once(m, status, provider_id, error).await {
                Ok(()) => return Ok(()),
                Err(failure) if tries < 4 => {
                    tries += 1;
                    tracing::warn!(error = %failure, message = %m.id, "cannot record a message's outcome; trying again");
                    tokio::time::sleep(std::time::Duration::from_millis(250 << tries)).await;
                }
                Err(failure) => return Err(failure),
            }
        }
    }

    async fn close_once(&self, m: &MessageRow, status: &str, provider_id: &str, error: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        if !store::finish(&mut tx, m.tenant_id, m, status, provider_id, error).await? {
            return Ok(());
        }
        let event_type = match status {
            "sent" => Some("message.sent"),
            "failed" => Some("message.failed"),
            "dead_lettered" => Some("message.dead_lettered"),
            _ => None,
        };
        if let Some(event_type) = event_type {
            let event = ev::MessageDelivery {
                message_id: cobro_kit::ids::format("msg", m.id),
                customer_id: cobro_kit::ids::format("cus", m.customer_id),
                invoice_id: m.invoice_id.map(|i| cobro_kit::ids::format("inv", i)).unwrap_or_default(),
                channel: m.channel.clone(),
                kind: m.kind.clone(),
                attempts: u32::try_from(m.attempts).unwrap_or(0),
                error: error.to_owned(),
                provider_id: provider_id.to_owned(),
            };
            let aggregate = cobro_kit::ids::format("msg", m.id);
            enqueue(&mut tx, TOPIC, NewEvent::new(event_type, m.tenant_id, aggregate, &event)).await?;
        }
        if status == "dead_lettered" && m.kind != "delivery_failed" {
            // Staff hear of it (the policy's sender address), with the last answer.
            let key = format!("delivery_failed:{}", m.id);
            let data = serde_json::json!({ "failure_reason": error });
            self.plan_transactional(
                &mut tx,
                m.tenant_id,
                m.customer_id,
                m.invoice_id,
                "delivery_failed",
                &key,
                true,
                data,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Render a built-in template with example values and send it now (not recorded).
    pub async fn send_test(
        &self,
        tenant: Uuid,
        channel: &str,
        address: &str,
        template: &str,
        language: &str,
    ) -> Result<cobro_proto::notifications::v1::Message> {
        use cobro_kit::error::InvalidField;
        let channel = schedule::Channel::parse(channel.trim())
            .filter(|c| *c != schedule::Channel::Webhook)
            .ok_or_else(|| InvalidField::new("channel", "must be email, sms or whatsapp"))?;
        let address = match channel {
            schedule::Channel::Email => crate::channels::check_email(address),
            _ => crate::channels::check_phone(address),
        }
        .map_err(|reason| InvalidField::new("address", reason))?;
        let language = Language::or_default(language);
        let template = templates::default_template(template.trim(), language)
            .ok_or_else(|| InvalidField::new("template", "is not a built-in template"))?;
        let rendered = templates::render(&template, &templates::Vars::example()).map_err(|e| {
            crate::error::NotificationsError::Internal(format!("a built-in template does not render: {e}"))
        })?;
        let id = Uuid::now_v7();
        let outgoing = Outgoing {
            idempotency_key: format!("test:{tenant}:{id}"),
            to: address.clone(),
            subject: rendered.subject,
            text: rendered.text,
            html: rendered.html,
            sms: rendered.sms,
            ..Outgoing::default()
        };
        let on = match channel {
            schedule::Channel::Email => self.channels.email.as_ref(),
            schedule::Channel::Sms => self.channels.sms.as_ref(),
            _ => self.channels.whatsapp.as_ref(),
        };
        let (status, provider_id, error) = match self.send_on(on, &outgoing).await {
            Ok(d) => ("sent", d.provider_id, String::new()),
            Err(e) => ("failed", String::new(), e.message().to_owned()),
        };
        Ok(cobro_proto::notifications::v1::Message {
            id: cobro_kit::ids::format("msg", id),
            channel: channel.as_str().to_owned(),
            recipient: address,
            status: status.to_owned(),
            attempts: 1,
            last_error: error,
            provider_id,
            send_at: cobro_kit::wire::timestamp(Utc::now()),
            sent_at: (status == "sent").then(|| cobro_kit::wire::timestamp(Utc::now())).flatten(),
            kind: "test".to_owned(),
            ..Default::default()
        })
    }
}
