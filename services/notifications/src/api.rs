//! gRPC handlers: decode, authorize, call the use case, encode.

use std::sync::Arc;

use cobro_kit::auth::{Principal, PrincipalKind, principal};
use cobro_kit::error::InvalidField;
use cobro_kit::wire::{next_page, page, timestamp};
use cobro_proto::notifications::v1 as pb;
use cobro_proto::notifications::v1::notifications_service_server::NotificationsService;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::app::Notifications;
use crate::domain::schedule::Channel;
use crate::error::{NotificationsError, Result};
use crate::policy::PolicyBody;
use crate::store::{self, Hold, MessageRow};

pub struct NotificationsApi {
    app: Arc<Notifications>,
}

impl NotificationsApi {
    pub fn new(app: Arc<Notifications>) -> Self {
        Self { app }
    }
}

type Answer<T> = std::result::Result<Response<T>, Status>;

/// Staff (or an API key, or a service) holding `permission`; portal contacts never.
fn require(p: &Principal, permission: &str) -> Result<()> {
    if p.kind == PrincipalKind::Customer || !p.has(permission) {
        return Err(NotificationsError::PermissionDenied(format!("missing permission {permission}")));
    }
    Ok(())
}

fn id(field: &str, prefix: &str, value: &str) -> Result<Uuid> {
    Ok(cobro_kit::ids::parse(field, prefix, value)?)
}

fn optional_id(field: &str, prefix: &str, value: &str) -> Result<Option<Uuid>> {
    if value.trim().is_empty() { Ok(None) } else { id(field, prefix, value).map(Some) }
}

pub fn message(m: &MessageRow) -> pb::Message {
    pb::Message {
        id: cobro_kit::ids::format("msg", m.id),
        invoice_id: m.invoice_id.map(|i| cobro_kit::ids::format("inv", i)).unwrap_or_default(),
        customer_id: cobro_kit::ids::format("cus", m.customer_id),
        channel: m.channel.clone(),
        recipient: m.recipient.clone(),
        status: m.status.clone(),
        attempts: u32::try_from(m.attempts).unwrap_or(0),
        last_error: m.last_error.clone(),
        provider_id: m.provider_id.clone(),
        send_at: timestamp(m.send_at),
        sent_at: m.sent_at.and_then(timestamp),
        kind: m.kind.clone(),
    }
}

impl NotificationsApi {
    async fn hold(&self, p: &Principal, r: &pb::PauseRemindersRequest, on: bool) -> Result<pb::PauseRemindersResponse> {
        require(p, "notifications:manage")?;
        let tenant = p.tenant_id;
        let invoices = match (
            optional_id("invoice_id", "inv", &r.invoice_id)?,
            optional_id("customer_id", "cus", &r.customer_id)?,
        ) {
            (Some(invoice), None) => vec![invoice],
            (None, Some(customer)) => {
                // On the customer too, so invoices issued while paused wait as well.
                if !store::set_customer_paused(self.app.pool(), tenant, customer, on).await? {
                    return Err(NotificationsError::NotFound("customer"));
                }
                store::invoices_of(self.app.pool(), tenant, customer).await?
            }
            _ => return Err(InvalidField::new("invoice_id", "give an invoice_id or a customer_id").into()),
        };
        let mut changed = 0;
        for invoice in invoices {
            let mut tx = self.app.pool().begin().await?;
            if !store::set_hold(&mut tx, tenant, invoice, Hold::Staff, on).await? {
                return Err(NotificationsError::NotFound("invoice"));
            }
            self.app.plan_invoice(&mut tx, tenant, invoice, cobro_kit::clock::now()).await?;
            tx.commit().await?;
            changed += 1;
        }
        Ok(pb::PauseRemindersResponse { invoices: changed })
    }
}

#[tonic::async_trait]
impl NotificationsService for NotificationsApi {
    async fn upsert_policy(&self, req: Request<pb::UpsertPolicyRequest>) -> Answer<pb::Policy> {
        let p = principal(&req)?;
        require(p, "notifications:manage")?;
        let policy = req.get_ref().policy.clone().unwrap_or_default();
        let customer = optional_id("policy.customer_id", "cus", &policy.customer_id)?;
        let body = PolicyBody::from_proto(&policy).map_err(NotificationsError::from)?;
        let json =
            serde_json::to_value(&body).map_err(|_| NotificationsError::Internal("policy encoding".to_owned()))?;
        let secret = policy.webhook_secret.trim();
        if !secret.is_empty() && secret.len() < 16 {
            return Err(NotificationsError::from(InvalidField::new(
                "policy.webhook_secret",
                "must be at least 16 characters",
            ))
            .into());
        }
        let sends_webhooks = body.steps.iter().any(|s| s.channels.iter().any(|c| c == "webhook"));
        if sends_webhooks
            && secret.is_empty()
            && !store::has_webhook_secret(self.app.pool(), p.tenant_id, customer)
                .await
                .map_err(NotificationsError::from)?
        {
            return Err(NotificationsError::from(InvalidField::new(
                "policy.webhook_secret",
                "is required when a step sends webhooks (it signs them)",
            ))
            .into());
        }
        store::upsert_policy(self.app.pool(), p.tenant_id, customer, &json, secret)
            .await
            .map_err(NotificationsError::from)?;
        Ok(Response::new(body.to_proto(policy.customer_id.clone())))
    }

    async fn list_policies(&self, req: Request<pb::ListPoliciesRequest>) -> Answer<pb::ListPoliciesResponse> {
        let p = principal(&req)?;
        require(p, "notifications:read")?;
        let rows = store::policies(self.app.pool(), p.tenant_id).await.map_err(NotificationsError::from)?;
        let policies = rows
            .into_iter()
            .filter_map(|row| {
                let body: PolicyBody = serde_json::from_value(row.body).ok()?;
                Some(body.to_proto(row.customer_id.map(|c| cobro_kit::ids::format("cus", c)).unwrap_or_default()))
            })
            .collect();
        Ok(Response::new(pb::ListPoliciesResponse { policies }))
    }

    async fn preview_schedule(&self, req: Request<pb::PreviewScheduleRequest>) -> Answer<pb::PreviewScheduleResponse> {
        let p = principal(&req)?;
        require(p, "notifications:read")?;
        let invoice_id = id("invoice_id", "inv", &req.get_ref().invoice_id)?;
        let invoice = store::invoice(self.app.pool(), p.tenant_id, invoice_id)
            .await
            .map_err(NotificationsError::from)?
            .ok_or(NotificationsError::NotFound("invoice"))?;
        let rows = store::invoice_messages(self.app.pool(), p.tenant_id, invoice_id)
            .await
            .map_err(NotificationsError::from)?;
        Ok(Response::new(pb::PreviewScheduleResponse {
            invoice_id: req.get_ref().invoice_id.clone(),
            status: invoice.status.clone(),
            paused: invoice.paused(),
            messages: rows
                .iter()
                .filter(|m| m.step.is_some())
                .map(|m| pb::PlannedMessage {
                    id: cobro_kit::ids::format("msg", m.id),
                    step: m.step.and_then(|s| u32::try_from(s).ok()).unwrap_or(0),
                    channel: m.channel.clone(),
                    tone: m.tone.clone(),
                    send_at: timestamp(m.send_at),
                    status: m.status.clone(),
                    recipient: m.recipient.clone(),
                })
                .collect(),
        }))
    }

    async fn list_messages(&self, req: Request<pb::ListMessagesRequest>) -> Answer<pb::ListMessagesResponse> {
        let p = principal(&req)?;
        require(p, "notifications:read")?;
        let r = req.get_ref();
        let invoice = optional_id("invoice_id", "inv", &r.invoice_id)?;
        let customer = optional_id("customer_id", "cus", &r.customer_id)?;
        let status = r.status.trim();
        if !status.is_empty()
            && !["planned", "sending", "sent", "canceled", "failed", "dead_lettered"].contains(&status)
        {
            return Err(NotificationsError::from(InvalidField::new("status", "is not a message status")).into());
        }
        let (limit, after) = page(r.page.clone()).map_err(NotificationsError::from)?;
        let rows = store::messages(
            self.app.pool(),
            p.tenant_id,
            invoice,
            customer,
            (!status.is_empty()).then_some(status),
            after,
            limit,
        )
        .await
        .map_err(NotificationsError::from)?;
        Ok(Response::new(pb::ListMessagesResponse {
            page: next_page(rows.iter().map(|m| m.id), rows.len(), limit),
            messages: rows.iter().map(message).collect(),
        }))
    }

    async fn pause_reminders(&self, req: Request<pb::PauseRemindersRequest>) -> Answer<pb::PauseRemindersResponse> {
        Ok(Response::new(self.hold(principal(&req)?, req.get_ref(), true).await?))
    }

    async fn resume_reminders(&self, req: Request<pb::PauseRemindersRequest>) -> Answer<pb::PauseRemindersResponse> {
        Ok(Response::new(self.hold(principal(&req)?, req.get_ref(), false).await?))
    }

    async fn set_opt_out(&self, req: Request<pb::SetOptOutRequest>) -> Answer<pb::SetOptOutResponse> {
        let p = principal(&req)?;
        // Staff manage anyone's; a portal contact opts their own customer's people in or out
        // of email, SMS and WhatsApp (webhooks are the company's integration, not a person's).
        let contact = p.kind == cobro_kit::auth::PrincipalKind::Customer;
        if contact {
            if !p.has("portal:read") {
                return Err(NotificationsError::PermissionDenied("missing permission portal:read".to_owned()).into());
            }
        } else {
            require(p, "notifications:manage")?;
        }
        let r = req.get_ref();
        let customer = id("customer_id", "cus", &r.customer_id)?;
        if contact && p.customer_id != Some(customer) {
            return Err(NotificationsError::NotFound("customer").into());
        }
        let channel =
            Channel::parse(r.channel.trim()).filter(|c| !(contact && *c == Channel::Webhook)).ok_or_else(|| {
                NotificationsError::from(InvalidField::new("channel", "must be email, sms, whatsapp or webhook"))
            })?;
        let address = match channel {
            Channel::Email => crate::channels::check_email(&r.address),
            Channel::Sms | Channel::WhatsApp => crate::channels::check_phone(&r.address),
            Channel::Webhook => Ok(r.address.trim().to_owned()),
        }
        .map_err(|reason| NotificationsError::from(InvalidField::new("address", reason)))?;
        if store::customer(self.app.pool(), p.tenant_id, customer).await.map_err(NotificationsError::from)?.is_none() {
            return Err(NotificationsError::NotFound("customer").into());
        }
        store::set_opt_out(self.app.pool(), p.tenant_id, customer, &address, channel.as_str(), r.opted_out)
            .await
            .map_err(NotificationsError::from)?;
        Ok(Response::new(pb::SetOptOutResponse {}))
    }

    async fn send_test(&self, req: Request<pb::SendTestRequest>) -> Answer<pb::Message> {
        let p = principal(&req)?;
        require(p, "notifications:manage")?;
        let r = req.get_ref();
        Ok(Response::new(self.app.send_test(p.tenant_id, &r.channel, &r.address, &r.template, &r.language).await?))
    }
}
