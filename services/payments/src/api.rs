//! gRPC handlers: decode, authorize through the use case, encode. Mutations a client may retry
//! go through the idempotency record.

use std::sync::Arc;

use cobro_kit::auth::{Principal, PrincipalKind, principal};
use cobro_kit::wire::{next_page, page};
use cobro_proto::payments::v1 as pb;
use cobro_proto::payments::v1::payments_service_server::PaymentsService;
use tonic::{Request, Response, Status};

use crate::app::{IntentView, MethodIn, Payments, TransferInstructions, money, ts};
use crate::connector::ConnectorError;
use crate::customers::CardSource;
use crate::error::PaymentsError;
use crate::idempotency::{self, request_hash};
use crate::store;

/// Methods callable without a token: the credential is in the request (a link token, a
/// webhook signature, a sandbox challenge reference).
pub const PUBLIC_METHODS: [&str; 4] = [
    "/cobro.payments.v1.PaymentsService/ResolvePaymentLink",
    "/cobro.payments.v1.PaymentsService/PayPaymentLink",
    "/cobro.payments.v1.PaymentsService/HandleWebhook",
    "/cobro.payments.v1.PaymentsService/CompleteSandboxChallenge",
];

pub struct PaymentsApi {
    app: Arc<Payments>,
}

impl PaymentsApi {
    pub fn new(app: Arc<Payments>) -> Self {
        Self { app }
    }
}

type Answer<T> = Result<Response<T>, Status>;

fn id(prefix: &str, value: uuid::Uuid) -> String {
    cobro_kit::ids::format(prefix, value)
}

fn transfer(t: &TransferInstructions) -> pb::TransferInstructions {
    pb::TransferInstructions {
        account_holder: t.account_holder.clone(),
        iban: t.iban.clone(),
        bic: t.bic.clone(),
        reference: t.reference.as_str().to_owned(),
        reference_grouped: t.reference.grouped(),
        amount: (!t.currency.is_empty()).then(|| money(t.amount, &t.currency)),
    }
}

fn refund(r: &store::RefundRow) -> pb::Refund {
    pb::Refund {
        id: id("ref", r.id),
        payment_id: id("pay", r.intent_id),
        amount: Some(money(r.amount, &r.currency)),
        status: r.status.clone(),
        reason: r.reason.clone(),
        created_at: ts(r.created_at),
    }
}

fn intent(v: &IntentView) -> pb::PaymentIntent {
    let i = &v.intent;
    pb::PaymentIntent {
        id: id("pay", i.id),
        customer_id: id("cus", i.customer_id),
        amount: Some(money(i.amount, &i.currency)),
        status: i.status.clone(),
        method: i.method.clone(),
        invoice_ids: i.invoice_ids.iter().map(|x| id("inv", *x)).collect(),
        installment_id: i.installment_id.map(|x| id("ins", x)).unwrap_or_default(),
        description: i.description.clone(),
        next_action_url: i.next_action_url.clone().unwrap_or_default(),
        transfer: v.transfer.as_ref().map(transfer),
        amount_received: Some(money(i.amount_received, &i.currency)),
        amount_refunded: Some(money(i.amount_refunded, &i.currency)),
        fee: Some(money(i.fee, &i.currency)),
        failure_code: i.failure_code.clone().unwrap_or_default(),
        failure_message: i.failure_message.clone().unwrap_or_default(),
        attempts: v
            .attempts
            .iter()
            .map(|a| pb::Attempt {
                id: id("att", a.id),
                connector: a.connector.clone(),
                status: a.status.clone(),
                amount: Some(money(a.amount, &a.currency)),
                fee: Some(money(a.fee, &a.currency)),
                processor_ref: a.processor_ref.clone().unwrap_or_default(),
                decline_code: a.decline_code.clone().unwrap_or_default(),
                created_at: ts(a.created_at),
            })
            .collect(),
        refunds: v.refunds.iter().map(refund).collect(),
        card_brand: v.card.as_ref().map(|c| c.brand.clone()).unwrap_or_default(),
        card_last4: v.card.as_ref().map(|c| c.last4.clone()).unwrap_or_default(),
        autopay: i.autopay_run_id.is_some(),
        created_at: ts(i.created_at),
        updated_at: ts(i.updated_at),
    }
}

fn method(m: &store::MethodRow) -> pb::PaymentMethod {
    pb::PaymentMethod {
        id: id("pm", m.id),
        customer_id: id("cus", m.customer_id),
        kind: m.kind.clone(),
        brand: m.brand.clone(),
        last4: m.last4.clone(),
        exp_month: u32::try_from(m.exp_month.unwrap_or(0)).unwrap_or(0),
        exp_year: u32::try_from(m.exp_year.unwrap_or(0)).unwrap_or(0),
        is_default: m.is_default,
        account_masked: m.account_masked.clone(),
        created_at: ts(m.created_at),
    }
}

fn mandate(m: &store::MandateRow) -> pb::Mandate {
    pb::Mandate {
        id: id("man", m.id),
        customer_id: id("cus", m.customer_id),
        kind: m.kind.clone(),
        payment_method_id: m.payment_method_id.map(|x| id("pm", x)).unwrap_or_default(),
        mandate_reference: m.mandate_reference.clone(),
        consent_text: m.consent_text.clone(),
        consent_ip: m.consent_ip.clone(),
        consented_at: ts(m.consented_at),
        revoked_at: m.revoked_at.and_then(ts),
    }
}

fn link(l: &store::LinkRow) -> pb::PaymentLink {
    pb::PaymentLink {
        id: id("plk", l.id),
        customer_id: id("cus", l.customer_id),
        invoice_id: l.invoice_id.map(|x| id("inv", x)).unwrap_or_default(),
        installment_id: l.installment_id.map(|x| id("ins", x)).unwrap_or_default(),
        amount: l.amount.map(|a| money(a, &l.currency)),
        description: l.description.clone(),
        expires_at: ts(l.expires_at),
        revoked_at: l.revoked_at.and_then(ts),
        created_at: ts(l.created_at),
    }
}

fn payouts(rows: &[store::PayoutRow]) -> pb::ListPayoutsResponse {
    pb::ListPayoutsResponse {
        payouts: rows
            .iter()
            .map(|p| pb::Payout {
                id: id("po", p.id),
                connector: p.connector.clone(),
                payout_ref: p.payout_ref.clone(),
                day: p.day.to_string(),
                gross: Some(money(p.gross, &p.currency)),
                fees: Some(money(p.fees, &p.currency)),
                refunds: Some(money(p.refunds, &p.currency)),
                net: Some(money(p.net, &p.currency)),
            })
            .collect(),
    }
}

fn public_result(v: &IntentView) -> pb::PublicPaymentResult {
    let i = &v.intent;
    pb::PublicPaymentResult {
        status: i.status.clone(),
        next_action_url: i.next_action_url.clone().unwrap_or_default(),
        failure_code: i.failure_code.clone().unwrap_or_default(),
        failure_message: i.failure_message.clone().unwrap_or_default(),
        payment_id: id("pay", i.id),
    }
}

/// The request without its key, for the "same request" comparison.
fn keyless<T: Clone>(req: &T, clear: impl FnOnce(&mut T)) -> T {
    let mut copy = req.clone();
    clear(&mut copy);
    copy
}

impl PaymentsApi {
    async fn once<T, F, Fut>(&self, p: &Principal, key: &str, op: &str, hash: Vec<u8>, run: F) -> Answer<T>
    where
        T: prost::Message + Default,
        F: FnOnce(idempotency::Run) -> Fut,
        Fut: std::future::Future<Output = Result<T, PaymentsError>>,
    {
        may_call(p, op)?;
        Ok(Response::new(idempotency::once(self.app.pool(), p.tenant_id, key, op, &hash, run).await?))
    }
}

/// Whether the caller may make this keyed request at all, checked before its key and input so a
/// caller without the permission learns nothing from how a request is formed. The operation
/// checks again, with whose records the caller may touch.
fn may_call(p: &Principal, op: &str) -> Result<(), PaymentsError> {
    let allowed = match op {
        "refund" => p.kind != PrincipalKind::Customer && p.has("payments:refund"),
        "bank_transfer" => p.kind == PrincipalKind::Service && p.service.as_deref() == Some("reconciliation"),
        _ => return crate::app::authorize(p, "payments:write", "portal:pay", None),
    };
    if allowed { Ok(()) } else { Err(PaymentsError::PermissionDenied(format!("may not {op}"))) }
}

/// Who asks, for the idempotency record: a stored answer goes back only to the same principal.
fn asker(p: &Principal) -> String {
    format!("{}/{}", p.subject, p.customer_id.map(|c| c.to_string()).unwrap_or_default())
}

/// A card number as it may enter a request hash: its last four digits only.
fn masked(card: &mut pb::NewCard) {
    let digits: Vec<char> = card.pan.chars().filter(char::is_ascii_digit).collect();
    card.pan = digits[digits.len().saturating_sub(4)..].iter().collect();
}

#[tonic::async_trait]
impl PaymentsService for PaymentsApi {
    async fn create_payment_intent(&self, req: Request<pb::CreatePaymentIntentRequest>) -> Answer<pb::PaymentIntent> {
        let p = principal(&req)?;
        let r = req.get_ref();
        let hash = request_hash("create", &asker(p), &keyless(r, |x| x.idempotency_key.clear()));
        self.once(p, &r.idempotency_key, "create", hash, |run| async move {
            let input = crate::app::IntentIn {
                customer_id: r.customer_id.clone(),
                amount: r.amount.clone(),
                invoice_ids: r.invoice_ids.clone(),
                installment_id: r.installment_id.clone(),
                description: r.description.clone(),
            };
            let row = self.app.create_intent(p, run.id, input).await?;
            Ok(intent(&self.app.view(row).await?))
        })
        .await
    }

    async fn get_payment_intent(&self, req: Request<pb::GetPaymentIntentRequest>) -> Answer<pb::PaymentIntent> {
        Ok(Response::new(intent(&self.app.intent(principal(&req)?, &req.get_ref().id).await?)))
    }

    async fn list_payment_intents(
        &self,
        req: Request<pb::ListPaymentIntentsRequest>,
    ) -> Answer<pb::ListPaymentIntentsResponse> {
        let p = principal(&req)?;
        let r = req.get_ref();
        let (limit, after) = page(r.page.clone())?;
        let rows = self.app.list(p, &r.customer_id, &r.status, after, limit).await?;
        let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.id).collect();
        let mut payments = Vec::with_capacity(rows.len());
        for row in rows {
            payments.push(intent(&self.app.view(row).await?));
        }
        Ok(Response::new(pb::ListPaymentIntentsResponse {
            page: next_page(ids.into_iter(), payments.len(), limit),
            payments,
        }))
    }

    async fn confirm_payment_intent(&self, req: Request<pb::ConfirmPaymentIntentRequest>) -> Answer<pb::PaymentIntent> {
        let p = principal(&req)?;
        let r = req.get_ref();
        let hash = request_hash(
            "confirm",
            &asker(p),
            &keyless(r, |x| {
                x.idempotency_key.clear();
                if let Some(pb::confirm_payment_intent_request::Method::Card(card)) = &mut x.method {
                    masked(card);
                }
            }),
        );
        self.once(p, &r.idempotency_key, "confirm", hash, |run| async move {
            use pb::confirm_payment_intent_request::Method;
            let method = match r.method.clone() {
                Some(Method::PaymentMethodId(m)) => MethodIn::SavedMethod(m),
                Some(Method::CardToken(t)) => MethodIn::CardToken(t),
                Some(Method::Card(card)) => MethodIn::NewCard { card, save: r.save_card },
                Some(Method::BankTransfer(true)) => MethodIn::BankTransfer,
                Some(Method::MandateId(m)) => MethodIn::Mandate(m),
                Some(Method::BankTransfer(false)) | None => {
                    return Err(cobro_kit::error::InvalidField::new(
                        "method",
                        "is required: payment_method_id, card_token, card, bank_transfer or mandate_id",
                    )
                    .into());
                }
            };
            Ok(intent(&self.app.confirm(p, &r.id, method, &r.return_url, run.resumed).await?))
        })
        .await
    }

    async fn complete_payment_action(
        &self,
        req: Request<pb::CompletePaymentActionRequest>,
    ) -> Answer<pb::PaymentIntent> {
        Ok(Response::new(intent(&self.app.complete_action(principal(&req)?, &req.get_ref().id).await?)))
    }

    async fn cancel_payment_intent(&self, req: Request<pb::CancelPaymentIntentRequest>) -> Answer<pb::PaymentIntent> {
        let p = principal(&req)?;
        let r = req.get_ref();
        let hash = request_hash("cancel", &asker(p), &keyless(r, |x| x.idempotency_key.clear()));
        self.once(p, &r.idempotency_key, "cancel", hash, |run| async move {
            Ok(intent(&self.app.cancel(p, &r.id, run.resumed).await?))
        })
        .await
    }

    async fn refund_payment(&self, req: Request<pb::RefundPaymentRequest>) -> Answer<pb::Refund> {
        let p = principal(&req)?;
        let r = req.get_ref();
        let hash = request_hash("refund", &asker(p), &keyless(r, |x| x.idempotency_key.clear()));
        self.once(p, &r.idempotency_key, "refund", hash, |run| async move {
            Ok(refund(&self.app.refund(p, run.id, &r.payment_id, r.amount.as_ref(), &r.reason).await?))
        })
        .await
    }

    async fn handle_webhook(&self, req: Request<pb::HandleWebhookRequest>) -> Answer<pb::HandleWebhookResponse> {
        let r = req.get_ref();
        let outcome = self.app.handle_webhook(&r.connector, &r.signature, &r.body).await?;
        Ok(Response::new(pb::HandleWebhookResponse { outcome: outcome.to_owned() }))
    }

    async fn confirm_bank_transfer(&self, req: Request<pb::ConfirmBankTransferRequest>) -> Answer<pb::PaymentIntent> {
        let p = principal(&req)?;
        let r = req.get_ref();
        let hash = request_hash("bank_transfer", &asker(p), &keyless(r, |x| x.idempotency_key.clear()));
        self.once(p, &r.idempotency_key, "bank_transfer", hash, |_| async {
            Ok(intent(
                &self
                    .app
                    .confirm_bank_transfer(p, &r.reference, &r.payment_id, r.amount.as_ref(), &r.received_on)
                    .await?,
            ))
        })
        .await
    }

    async fn save_payment_method(&self, req: Request<pb::SavePaymentMethodRequest>) -> Answer<pb::PaymentMethod> {
        let p = principal(&req)?;
        let r = req.get_ref();
        let hash = request_hash(
            "save_method",
            &asker(p),
            &keyless(r, |x| {
                x.idempotency_key.clear();
                if let Some(pb::save_payment_method_request::Source::Card(card)) = &mut x.source {
                    masked(card);
                }
            }),
        );
        self.once(p, &r.idempotency_key, "save_method", hash, |_| async {
            use pb::save_payment_method_request::Source;
            let source = match r.source.clone() {
                Some(Source::CardToken(t)) => CardSource::Token(t),
                Some(Source::Card(c)) => CardSource::New(c),
                None => {
                    return Err(cobro_kit::error::InvalidField::new("source", "is required: card_token or card").into());
                }
            };
            Ok(method(&self.app.save_method(p, &r.customer_id, source, r.make_default).await?))
        })
        .await
    }

    async fn list_payment_methods(
        &self,
        req: Request<pb::ListPaymentMethodsRequest>,
    ) -> Answer<pb::ListPaymentMethodsResponse> {
        let rows = self.app.methods(principal(&req)?, &req.get_ref().customer_id).await?;
        let autopay = self.app.autopay(principal(&req)?, &req.get_ref().customer_id).await?;
        Ok(Response::new(pb::ListPaymentMethodsResponse {
            methods: rows.iter().map(method).collect(),
            autopay: autopay.as_ref().map(mandate),
        }))
    }

    async fn set_default_payment_method(
        &self,
        req: Request<pb::SetDefaultPaymentMethodRequest>,
    ) -> Answer<pb::PaymentMethod> {
        let r = req.get_ref();
        Ok(Response::new(method(
            &self.app.set_default_method(principal(&req)?, &r.customer_id, &r.payment_method_id).await?,
        )))
    }

    async fn remove_payment_method(&self, req: Request<pb::RemovePaymentMethodRequest>) -> Answer<pb::PaymentMethod> {
        let r = req.get_ref();
        Ok(Response::new(method(
            &self.app.remove_method(principal(&req)?, &r.customer_id, &r.payment_method_id).await?,
        )))
    }

    async fn enable_autopay(&self, req: Request<pb::EnableAutopayRequest>) -> Answer<pb::Mandate> {
        let r = req.get_ref();
        let m = self
            .app
            .enable_autopay(principal(&req)?, &r.customer_id, &r.payment_method_id, &r.consent_text, &r.consent_ip)
            .await?;
        Ok(Response::new(mandate(&m)))
    }

    async fn disable_autopay(&self, req: Request<pb::DisableAutopayRequest>) -> Answer<pb::Mandate> {
        Ok(Response::new(mandate(&self.app.disable_autopay(principal(&req)?, &req.get_ref().customer_id).await?)))
    }

    async fn create_direct_debit_mandate(
        &self,
        req: Request<pb::CreateDirectDebitMandateRequest>,
    ) -> Answer<pb::Mandate> {
        let r = req.get_ref();
        let m = self
            .app
            .create_direct_debit_mandate(
                principal(&req)?,
                &r.customer_id,
                &r.iban,
                &r.account_holder,
                &r.mandate_reference,
                &r.consent_text,
                &r.consent_ip,
            )
            .await?;
        Ok(Response::new(mandate(&m)))
    }

    async fn create_payment_link(
        &self,
        req: Request<pb::CreatePaymentLinkRequest>,
    ) -> Answer<pb::CreatePaymentLinkResponse> {
        let p = principal(&req)?;
        let r = req.get_ref();
        let hash = request_hash("create_link", &asker(p), &keyless(r, |x| x.idempotency_key.clear()));
        self.once(p, &r.idempotency_key, "create_link", hash, |_| async {
            let (row, token) = self
                .app
                .create_link(
                    p,
                    &r.customer_id,
                    &r.invoice_id,
                    &r.installment_id,
                    r.amount.as_ref(),
                    &r.description,
                    r.ttl_days,
                )
                .await?;
            Ok(pb::CreatePaymentLinkResponse { link: Some(link(&row)), token })
        })
        .await
    }

    async fn revoke_payment_link(&self, req: Request<pb::RevokePaymentLinkRequest>) -> Answer<pb::PaymentLink> {
        Ok(Response::new(link(&self.app.revoke_link(principal(&req)?, &req.get_ref().id).await?)))
    }

    async fn resolve_payment_link(&self, req: Request<pb::ResolvePaymentLinkRequest>) -> Answer<pb::PublicPaymentLink> {
        let l = self.app.resolve_link(&req.get_ref().token).await?;
        Ok(Response::new(pb::PublicPaymentLink {
            merchant_reference: l.merchant_reference,
            amount_due: Some(money(l.amount_due, &l.currency)),
            description: l.description,
            expires_at: ts(l.expires_at),
            transfer_reference: l.transfer_reference,
            paid: l.paid,
        }))
    }

    async fn pay_payment_link(&self, req: Request<pb::PayPaymentLinkRequest>) -> Answer<pb::PublicPaymentResult> {
        let r = req.get_ref();
        let tenant = self.app.link_tenant(&r.token).await?;
        let hash = request_hash(
            "pay_link",
            "",
            &keyless(r, |x| {
                x.idempotency_key.clear();
                if let Some(card) = &mut x.card {
                    masked(card);
                }
            }),
        );
        let card = r
            .card
            .clone()
            .ok_or_else(|| PaymentsError::Invalid(cobro_kit::error::InvalidField::new("card", "is required")))?;
        let answer =
            idempotency::once(self.app.pool(), tenant, &r.idempotency_key, "pay_link", &hash, |run| async move {
                Ok(public_result(&self.app.pay_link(run.id, &r.token, card, &r.return_url).await?))
            })
            .await?;
        Ok(Response::new(answer))
    }

    async fn complete_sandbox_challenge(
        &self,
        req: Request<pb::CompleteSandboxChallengeRequest>,
    ) -> Answer<pb::CompleteSandboxChallengeResponse> {
        let r = req.get_ref();
        let sandbox = self
            .app
            .processor()
            .sandbox()
            .ok_or_else(|| PaymentsError::Precondition("this deployment does not use the sandbox".to_owned()))?;
        let (body, signature) =
            sandbox.complete_challenge(&r.processor_ref, r.approve, chrono::Utc::now()).await.map_err(|e| match e {
                ConnectorError::Rejected(_) => PaymentsError::NotFound("payment"),
                ConnectorError::Unavailable(_) => PaymentsError::Unavailable("the sandbox".to_owned()),
                other => PaymentsError::Processor(other.to_string()),
            })?;
        // The sandbox's webhook, delivered at once, as a processor would post it.
        let outcome = self.app.handle_webhook("sandbox", &signature, body.as_bytes()).await?;
        Ok(Response::new(pb::CompleteSandboxChallengeResponse { status: outcome.to_owned() }))
    }

    async fn get_transfer_instructions(
        &self,
        req: Request<pb::GetTransferInstructionsRequest>,
    ) -> Answer<pb::TransferInstructions> {
        let r = req.get_ref();
        let t = self.app.transfer_instructions(principal(&req)?, &r.customer_id, &r.invoice_id).await?;
        Ok(Response::new(transfer(&t)))
    }

    async fn lookup_reference(&self, req: Request<pb::LookupReferenceRequest>) -> Answer<pb::ReferenceOwner> {
        let (reference, customer, invoice) =
            self.app.lookup_reference(principal(&req)?, &req.get_ref().reference).await?;
        Ok(Response::new(pb::ReferenceOwner {
            reference: reference.as_str().to_owned(),
            customer_id: id("cus", customer),
            invoice_id: invoice.map(|i| id("inv", i)).unwrap_or_default(),
        }))
    }

    async fn get_payment_settings(&self, req: Request<pb::GetPaymentSettingsRequest>) -> Answer<pb::PaymentSettings> {
        let s = self.app.settings(principal(&req)?).await?;
        Ok(Response::new(pb::PaymentSettings {
            allow_overpayment: s.allow_overpayment,
            account_holder: s.account_holder,
            iban: s.iban,
            bic: s.bic,
        }))
    }

    async fn update_payment_settings(&self, req: Request<pb::PaymentSettings>) -> Answer<pb::PaymentSettings> {
        let r = req.get_ref();
        let s = self
            .app
            .update_settings(
                principal(&req)?,
                store::SettingsRow {
                    allow_overpayment: r.allow_overpayment,
                    account_holder: r.account_holder.clone(),
                    iban: r.iban.clone(),
                    bic: r.bic.clone(),
                },
            )
            .await?;
        Ok(Response::new(pb::PaymentSettings {
            allow_overpayment: s.allow_overpayment,
            account_holder: s.account_holder,
            iban: s.iban,
            bic: s.bic,
        }))
    }

    async fn import_settlement(&self, req: Request<pb::ImportSettlementRequest>) -> Answer<pb::ListPayoutsResponse> {
        let r = req.get_ref();
        Ok(Response::new(payouts(&self.app.import_settlement_for(principal(&req)?, &r.connector, &r.day).await?)))
    }

    async fn list_payouts(&self, req: Request<pb::ListPayoutsRequest>) -> Answer<pb::ListPayoutsResponse> {
        let r = req.get_ref();
        Ok(Response::new(payouts(&self.app.payouts(principal(&req)?, &r.from, &r.to).await?)))
    }
}
