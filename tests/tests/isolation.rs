//! Tenants never see each other. Tenant A makes one of everything that has an id; tenant B's
//! owner, holding every permission of B, names each of those ids to every call that takes one,
//! alone and beside B's own records, and so does a portal contact B files under A's customer id.
//! Each answers NOT_FOUND (not PERMISSION_DENIED, which would confirm the id exists, and never
//! the data), B's lists show none of A's ids, and A's records stay as A left them. Where a service
//! does not own the id it is given (a customer id outside invoicing, an installment payments has
//! not heard of yet, a CSV mapping's name), A's answers exactly as one nobody has.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use chrono::Datelike;
use cobro_e2e::platform::{Platform, Tenant, bearer, money};
use cobro_e2e::statements::{Credit, camt053};
use cobro_kit::testing::eventually;
use cobro_proto::identity::v1 as idpb;
use cobro_proto::invoicing::v1 as invpb;
use cobro_proto::notifications::v1 as notpb;
use cobro_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;
use cobro_proto::payments::v1 as paypb;
use cobro_proto::payments::v1::payments_service_client::PaymentsServiceClient;
use cobro_proto::reconciliation::v1 as recpb;
use cobro_proto::reconciliation::v1::reconciliation_service_client::ReconciliationServiceClient;
use tonic::Code;

const CLABE: &str = "012180001234567897";

/// One call and what it answered: the response's debug text, or the status.
type Call<'a> = (&'static str, Pin<Box<dyn Future<Output = Result<String, tonic::Status>> + 'a>>);

/// Everything tenant A made, by id.
struct Made {
    customer: String,
    contact: String,
    draft: String,
    card_invoice: String,
    plan_invoice: String,
    installment: String,
    hardship_invoice: String,
    dispute_invoice: String,
    credited_invoice: String,
    transfer_invoice: String,
    credit_note: String,
    hardship: String,
    dispute: String,
    recurring: String,
    intent: String,
    refund: String,
    method: String,
    link: String,
    reference: String,
    account: String,
    matched_line: String,
    free_line: String,
    matched: String,
    /// The match as the rules left it: confirmed by the reference, or suggested by amount and
    /// customer when the statement came first.
    matched_status: String,
    discrepancy: String,
    user: String,
    owner: String,
    api_key: String,
    mandate: String,
    mapping: String,
    /// A customer an ERP keeps under its own id.
    erp_customer: String,
    erp_external_id: String,
}

impl Made {
    fn ids(&self) -> Vec<&str> {
        vec![
            self.customer.as_str(),
            &self.contact,
            &self.draft,
            &self.card_invoice,
            &self.plan_invoice,
            &self.installment,
            &self.hardship_invoice,
            &self.dispute_invoice,
            &self.credited_invoice,
            &self.transfer_invoice,
            &self.credit_note,
            &self.hardship,
            &self.dispute,
            &self.recurring,
            &self.intent,
            &self.refund,
            &self.method,
            &self.link,
            &self.reference,
            &self.account,
            &self.matched_line,
            &self.free_line,
            &self.matched,
            &self.user,
            &self.owner,
            &self.api_key,
            &self.discrepancy,
            &self.mandate,
            &self.erp_customer,
        ]
    }
}

fn day(offset: i64) -> String {
    (chrono::Utc::now().date_naive() + chrono::Duration::days(offset)).to_string()
}

fn line(description: &str, amount: &str) -> Vec<invpb::LineInput> {
    vec![invpb::LineInput {
        description: description.into(),
        quantity: "1".into(),
        unit_price: amount.into(),
        ..Default::default()
    }]
}

fn card() -> paypb::NewCard {
    cobro_e2e::platform::card("4242424242424242")
}

async fn contact_token(platform: &Platform, t: &Tenant, email: &str, password: &str) -> String {
    let login = platform
        .identity_client()
        .login(idpb::LoginRequest {
            tenant: t.slug.clone(),
            email: email.into(),
            password: password.into(),
            client_ip: "127.0.0.1".into(),
        })
        .await
        .expect("the contact signs in")
        .into_inner();
    match login.result {
        Some(idpb::login_response::Result::Session(session)) => session.access.expect("an access token").access_token,
        other => panic!("a contact signs in with a password only: {other:?}"),
    }
}

/// Tenant A's customer, invoices, requests, payments, bank lines, policy, user and key.
async fn make_everything(platform: &Platform, a: &Tenant) -> Made {
    let mut identity = platform.identity_client();
    let mut invoicing = platform.invoicing_client();
    let payments = PaymentsServiceClient::new(platform.payments.clone());
    let mut reconciliation = ReconciliationServiceClient::new(platform.reconciliation.clone());
    let mut notifications = NotificationsServiceClient::new(platform.notifications.clone());

    let customer = platform.customer(a, "Constructora Álamo S.A. de C.V.", "es").await;
    let erp_external_id = format!("KUNNR-{}", a.slug);
    let erp_customer = invoicing
        .upsert_customer(a.staff(invpb::UpsertCustomerRequest {
            id: String::new(),
            customer: Some(invpb::Customer {
                external_id: erp_external_id.clone(),
                legal_name: "Distribuidora Norte S.A.".into(),
                tax_country: "MX".into(),
                currency: "MXN".into(),
                payment_terms_days: 30,
                ..Default::default()
            }),
        }))
        .await
        .unwrap()
        .into_inner()
        .id;
    let draft = invoicing
        .create_invoice(a.staff(invpb::CreateInvoiceRequest {
            customer_id: customer.id.clone(),
            lines: line("Borrador", "90.00"),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .id;
    let card_invoice = platform.open_invoice(a, &customer, "1200.00").await;
    let plan_invoice = platform.open_invoice(a, &customer, "2400.00").await;
    let hardship_invoice = platform.open_invoice(a, &customer, "3100.00").await;
    let dispute_invoice = platform.open_invoice(a, &customer, "400.00").await;
    let credited_invoice = platform.open_invoice(a, &customer, "500.00").await;
    let transfer_invoice = platform.open_invoice(a, &customer, "3480.00").await;

    let credit_note = invoicing
        .issue_credit_note(a.staff(invpb::IssueCreditNoteRequest {
            invoice_id: credited_invoice.clone(),
            amount: "10.00".into(),
            reason: "Descuento por pronto pago".into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .id;
    let planned = invoicing
        .set_installment_plan(a.staff(invpb::SetInstallmentPlanRequest {
            invoice_id: plan_invoice.clone(),
            plan: Some(invpb::set_installment_plan_request::Plan::Equal(invpb::EqualPlan {
                count: 2,
                first_due_date: day(30),
                every_months: 1,
            })),
        }))
        .await
        .unwrap()
        .into_inner();
    let installment = planned.installments[0].id.clone();

    let token = contact_token(platform, a, &customer.email, &customer.password).await;
    let hardship = invoicing
        .request_hardship(bearer(
            invpb::RequestHardshipRequest {
                invoice_id: hardship_invoice.clone(),
                reason: "Ventas bajas este trimestre".into(),
                installments: 3,
                first_date: day(40),
                note: String::new(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .id;
    let dispute = invoicing
        .open_dispute(bearer(
            invpb::OpenDisputeRequest { invoice_id: dispute_invoice.clone(), reason: "Llegaron mojadas".into() },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .id;
    let today = chrono::Utc::now().date_naive();
    let next_month = if today.month() == 12 {
        chrono::NaiveDate::from_ymd_opt(today.year() + 1, 1, 1)
    } else {
        chrono::NaiveDate::from_ymd_opt(today.year(), today.month() + 1, 1)
    }
    .unwrap();
    let recurring = invoicing
        .create_recurring_invoice(a.staff(invpb::CreateRecurringInvoiceRequest {
            invoice: Some(invpb::CreateInvoiceRequest {
                customer_id: customer.id.clone(),
                lines: line("Renta mensual de andamios", "7300.00"),
                ..Default::default()
            }),
            frequency: "monthly".into(),
            day_of_month: 1,
            first_period: next_month.to_string(),
            max_count: 3,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .id;

    // Payments learns of invoices from invoicing's events.
    let create = paypb::CreatePaymentIntentRequest {
        idempotency_key: format!("pay-{card_invoice}"),
        customer_id: customer.id.clone(),
        invoice_ids: vec![card_invoice.clone()],
        ..Default::default()
    };
    let known = eventually(Duration::from_secs(60), || {
        let (mut payments, request) = (payments.clone(), a.staff(create.clone()));
        async move { payments.create_payment_intent(request).await.is_ok() }
    })
    .await;
    assert!(known, "payments never learned of the invoice");
    let mut pay = payments.clone();
    let intent = pay.create_payment_intent(a.staff(create)).await.unwrap().into_inner();
    let paid = pay
        .confirm_payment_intent(a.staff(paypb::ConfirmPaymentIntentRequest {
            idempotency_key: format!("confirm-{card_invoice}"),
            id: intent.id.clone(),
            method: Some(paypb::confirm_payment_intent_request::Method::Card(card())),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(paid.status, "succeeded", "{paid:?}");
    let refund = pay
        .refund_payment(a.staff(paypb::RefundPaymentRequest {
            idempotency_key: format!("refund-{card_invoice}"),
            payment_id: intent.id.clone(),
            amount: money("1.00", "MXN"),
            reason: "Cargo de más".into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .id;
    let method = pay
        .save_payment_method(a.staff(paypb::SavePaymentMethodRequest {
            idempotency_key: format!("pm-{}", customer.id),
            customer_id: customer.id.clone(),
            source: Some(paypb::save_payment_method_request::Source::Card(card())),
            make_default: true,
        }))
        .await
        .unwrap()
        .into_inner()
        .id;
    let mandate = pay
        .enable_autopay(a.staff(paypb::EnableAutopayRequest {
            customer_id: customer.id.clone(),
            payment_method_id: method.clone(),
            consent_text: "Autorizo cargos automáticos".into(),
            consent_ip: "127.0.0.1".into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .id;
    let link_request = paypb::CreatePaymentLinkRequest {
        idempotency_key: format!("link-{plan_invoice}"),
        customer_id: customer.id.clone(),
        invoice_id: plan_invoice.clone(),
        ..Default::default()
    };
    let known = eventually(Duration::from_secs(60), || {
        let (mut payments, request) = (payments.clone(), a.staff(link_request.clone()));
        async move { payments.create_payment_link(request).await.is_ok() }
    })
    .await;
    assert!(known, "payments never learned of the invoice with a plan");
    let link = pay.create_payment_link(a.staff(link_request)).await.unwrap().into_inner().link.unwrap().id;
    let transfer = paypb::GetTransferInstructionsRequest {
        customer_id: customer.id.clone(),
        invoice_id: transfer_invoice.clone(),
    };
    let known = eventually(Duration::from_secs(60), || {
        let (mut payments, request) = (payments.clone(), a.staff(transfer.clone()));
        async move { payments.get_transfer_instructions(request).await.is_ok() }
    })
    .await;
    assert!(known, "payments never learned of the invoice paid by transfer");
    let instructions = pay.get_transfer_instructions(a.staff(transfer)).await.unwrap().into_inner();

    // Reconciliation: a transfer quoting its reference (matched by it, or suggested by amount and
    // customer when the statement arrives first), a credit nobody claims, and one matched by hand
    // to less than it brought (an overpayment).
    let mapping = format!("banorte-{}", a.slug);
    reconciliation
        .save_csv_mapping(a.staff(recpb::CsvMapping {
            name: mapping.clone(),
            delimiter: ",".into(),
            date_format: "%Y-%m-%d".into(),
            booking_date: "Fecha".into(),
            amount: "Importe".into(),
            default_currency: "MXN".into(),
            remittance: "Concepto".into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    let account = reconciliation
        .create_bank_account(a.staff(recpb::CreateBankAccountRequest {
            name: "BBVA cuenta concentradora".into(),
            number: CLABE.into(),
            currency: "MXN".into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .id;
    for (when, credit) in [
        (
            day(0),
            Credit {
                amount: "3480.00",
                payer: "CONSTRUCTORA ALAMO SA DE CV",
                reference: Some(&instructions.reference_grouped),
                remittance: "",
            },
        ),
        (day(-3), Credit { amount: "777.77", payer: "DESCONOCIDO SA", reference: None, remittance: "varios" }),
        (day(-4), Credit { amount: "888.88", payer: "CONSTRUCTORA ALAMO", reference: None, remittance: "pago" }),
    ] {
        let chunks = vec![recpb::ImportStatementChunk {
            bank_account_id: account.clone(),
            csv_mapping: String::new(),
            data: camt053(CLABE, &when, &credit).into_bytes(),
        }];
        reconciliation.import_statement(a.staff(tokio_stream::iter(chunks))).await.unwrap();
    }
    // Matching runs after every import; run it again until the transfer has a match.
    let matched = eventually(Duration::from_secs(60), || {
        let mut reconciliation = reconciliation.clone();
        let (run, list) = (a.staff(recpb::RunMatchingRequest {}), a.staff(recpb::ListMatchesRequest::default()));
        let invoice = &transfer_invoice;
        async move {
            let _ = reconciliation.run_matching(run).await;
            reconciliation
                .list_matches(list)
                .await
                .is_ok_and(|m| m.into_inner().matches.iter().any(|m| m.items.iter().any(|i| &i.invoice_id == invoice)))
        }
    })
    .await;
    assert!(matched, "the transfer was never matched");
    let matches =
        reconciliation.list_matches(a.staff(recpb::ListMatchesRequest::default())).await.unwrap().into_inner().matches;
    let matched = matches
        .into_iter()
        .find(|m| m.items.iter().any(|i| i.invoice_id == transfer_invoice))
        .expect("the transfer's match");
    let lines = reconciliation
        .list_bank_lines(a.staff(recpb::ListBankLinesRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .lines;
    let line_of = |amount: &str| {
        lines.iter().find(|l| l.amount.as_ref().is_some_and(|m| m.amount == amount)).expect("a credit").id.clone()
    };
    let free_line = line_of("777.77");
    let manual = recpb::ManualMatchRequest {
        bank_line_id: line_of("888.88"),
        items: vec![recpb::ManualItem { invoice_id: credited_invoice.clone(), ..Default::default() }],
        reason: "Pago sin referencia".into(),
    };
    let known = eventually(Duration::from_secs(60), || {
        let (mut reconciliation, request) = (reconciliation.clone(), a.staff(manual.clone()));
        async move { reconciliation.manual_match(request).await.is_ok() }
    })
    .await;
    let last = reconciliation.manual_match(a.staff(manual)).await;
    assert!(known, "reconciliation never learned of the credited invoice: {last:?}");
    let discrepancies = reconciliation
        .list_discrepancies(a.staff(recpb::ListDiscrepanciesRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .discrepancies;
    let discrepancy = discrepancies.first().unwrap_or_else(|| panic!("an overpayment: {last:?}")).id.clone();

    // Notifications: a customer's own reminder policy (it learns of customers from events).
    let policy = notpb::UpsertPolicyRequest {
        policy: Some(notpb::Policy {
            customer_id: customer.id.clone(),
            steps: vec![notpb::Step {
                offset_days: 3,
                channels: vec!["email".into()],
                tone: "firm".into(),
                template: "reminder_firm".into(),
                templates: vec![],
            }],
            send_at: "09:00".into(),
            default_timezone: "America/Mexico_City".into(),
            sender_name: "Aceros del Norte".into(),
            ..Default::default()
        }),
    };
    let upserted = eventually(Duration::from_secs(60), || {
        let (mut notifications, request) = (notifications.clone(), a.staff(policy.clone()));
        async move { notifications.upsert_policy(request).await.is_ok() }
    })
    .await;
    let last = notifications.upsert_policy(a.staff(policy)).await;
    assert!(upserted, "the customer's reminder policy: {last:?}");

    let user = identity
        .create_user(a.staff(idpb::CreateUserRequest {
            email: format!("cobranza@{}.example.com", a.slug),
            display_name: "Luis Cobranza".into(),
            role: "ar_clerk".into(),
            password: cobro_e2e::platform::PASSWORD.into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .id;
    let api_key = identity
        .create_api_key(a.staff(idpb::CreateApiKeyRequest {
            name: "SAP S/4HANA".into(),
            scopes: vec!["invoices:read".into()],
            expires_at: None,
        }))
        .await
        .unwrap()
        .into_inner()
        .api_key
        .unwrap()
        .id;
    let users = identity.list_users(a.staff(idpb::ListUsersRequest::default())).await.unwrap().into_inner().users;
    let owner = users.iter().find(|u| u.email == a.owner_email).expect("the owner").id.clone();
    let contact = users.iter().find(|u| u.email == customer.email).expect("the contact").id.clone();

    Made {
        customer: customer.id,
        contact,
        draft,
        card_invoice,
        plan_invoice,
        installment,
        hardship_invoice,
        dispute_invoice,
        credited_invoice,
        transfer_invoice,
        credit_note,
        hardship,
        dispute,
        recurring,
        intent: intent.id,
        refund,
        method,
        link,
        reference: instructions.reference,
        account,
        matched_line: matched.bank_line_id.clone(),
        free_line,
        matched: matched.id.clone(),
        matched_status: matched.status.clone(),
        discrepancy,
        user,
        owner,
        api_key,
        mandate,
        mapping,
        erp_customer,
        erp_external_id,
    }
}

#[tokio::test]
async fn another_tenants_ids_answer_not_found_on_every_call_that_takes_one() {
    let started = Instant::now();
    let platform = Platform::start().await;
    let a = platform.tenant().await;
    let b = platform.tenant().await;
    let m = make_everything(&platform, &a).await;
    let made = started.elapsed();

    let identity = platform.identity_client();
    let invoicing = platform.invoicing_client();
    let payments = PaymentsServiceClient::new(platform.payments.clone());
    let notifications = NotificationsServiceClient::new(platform.notifications.clone());
    let reconciliation = ReconciliationServiceClient::new(platform.reconciliation.clone());

    // Not here: ConfirmBankTransfer (only reconciliation's own service token may call it; staff
    // get PERMISSION_DENIED whatever the reference), and the public calls that take a token, not
    // an id (ResolvePaymentLink, PayPaymentLink, CompleteSandboxChallenge, HandleWebhook).
    let mut calls: Vec<Call<'_>> = Vec::new();
    // One call as tenant B's owner: its name, the client, the method and the request.
    macro_rules! rpc {
        ($name:literal, $client:ident . $method:ident, $request:expr) => {{
            let mut client = $client.clone();
            let request = b.staff($request);
            calls.push((
                $name,
                Box::pin(async move { client.$method(request).await.map(|r| format!("{:?}", r.into_inner())) }),
            ));
        }};
    }

    // identity
    rpc!("identity.GetUser", identity.get_user, idpb::GetUserRequest { id: m.user.clone() });
    rpc!("identity.GetUser(contact)", identity.get_user, idpb::GetUserRequest { id: m.contact.clone() });
    rpc!("identity.GetUser(owner)", identity.get_user, idpb::GetUserRequest { id: m.owner.clone() });
    rpc!(
        "identity.SetUserRole",
        identity.set_user_role,
        idpb::SetUserRoleRequest { id: m.user.clone(), role: "viewer".into() }
    );
    rpc!("identity.DisableUser", identity.disable_user, idpb::DisableUserRequest { id: m.user.clone() });
    rpc!("identity.UnlockUser", identity.unlock_user, idpb::UnlockUserRequest { id: m.user.clone() });
    rpc!("identity.ResetUserMfa", identity.reset_user_mfa, idpb::ResetUserMfaRequest { id: m.owner.clone() });
    rpc!("identity.RevokeApiKey", identity.revoke_api_key, idpb::RevokeApiKeyRequest { id: m.api_key.clone() });

    // invoicing
    rpc!("invoicing.GetCustomer", invoicing.get_customer, invpb::GetCustomerRequest { id: m.customer.clone() });
    rpc!(
        "invoicing.UpsertCustomer",
        invoicing.upsert_customer,
        invpb::UpsertCustomerRequest {
            id: m.customer.clone(),
            customer: Some(invpb::Customer {
                legal_name: "Renombrada".into(),
                tax_country: "MX".into(),
                currency: "MXN".into(),
                payment_terms_days: 30,
                ..Default::default()
            }),
        }
    );
    rpc!(
        "invoicing.CreateInvoice",
        invoicing.create_invoice,
        invpb::CreateInvoiceRequest {
            customer_id: m.customer.clone(),
            lines: line("Intruso", "1.00"),
            ..Default::default()
        }
    );
    rpc!("invoicing.GetInvoice", invoicing.get_invoice, invpb::GetInvoiceRequest { id: m.card_invoice.clone() });
    rpc!("invoicing.GetInvoice(draft)", invoicing.get_invoice, invpb::GetInvoiceRequest { id: m.draft.clone() });
    rpc!("invoicing.IssueInvoice", invoicing.issue_invoice, invpb::IssueInvoiceRequest { id: m.draft.clone() });
    rpc!(
        "invoicing.VoidInvoice",
        invoicing.void_invoice,
        invpb::VoidInvoiceRequest { id: m.dispute_invoice.clone(), reason: "Intruso".into() }
    );
    rpc!(
        "invoicing.MarkUncollectible",
        invoicing.mark_uncollectible,
        invpb::MarkUncollectibleRequest { id: m.hardship_invoice.clone(), reason: "Intruso".into() }
    );
    rpc!(
        "invoicing.SetInstallmentPlan",
        invoicing.set_installment_plan,
        invpb::SetInstallmentPlanRequest {
            invoice_id: m.credited_invoice.clone(),
            plan: Some(invpb::set_installment_plan_request::Plan::Equal(invpb::EqualPlan {
                count: 2,
                first_due_date: day(30),
                every_months: 1,
            })),
        }
    );
    rpc!(
        "invoicing.IssueCreditNote",
        invoicing.issue_credit_note,
        invpb::IssueCreditNoteRequest {
            invoice_id: m.credited_invoice.clone(),
            amount: "1.00".into(),
            reason: "Intruso".into(),
        }
    );
    rpc!(
        "invoicing.ApplyPayment",
        invoicing.apply_payment,
        invpb::ApplyPaymentRequest {
            payment_id: "TRF-INTRUSO-1".into(),
            customer_id: m.customer.clone(),
            amount: money("1.00", "MXN"),
            method: "transfer".into(),
            received_on: day(0),
            ..Default::default()
        }
    );
    rpc!(
        "invoicing.ApplyPayment(installment)",
        invoicing.apply_payment,
        invpb::ApplyPaymentRequest {
            payment_id: "TRF-INTRUSO-2".into(),
            customer_id: m.customer.clone(),
            amount: money("1.00", "MXN"),
            method: "transfer".into(),
            received_on: day(0),
            invoice_ids: vec![m.plan_invoice.clone()],
            installment_id: m.installment.clone(),
        }
    );
    rpc!(
        "invoicing.ApplyCustomerCredit",
        invoicing.apply_customer_credit,
        invpb::ApplyCustomerCreditRequest { customer_id: m.customer.clone(), invoice_id: m.card_invoice.clone() }
    );
    rpc!(
        "invoicing.CreateRecurringInvoice",
        invoicing.create_recurring_invoice,
        invpb::CreateRecurringInvoiceRequest {
            invoice: Some(invpb::CreateInvoiceRequest {
                customer_id: m.customer.clone(),
                lines: line("Intruso", "1.00"),
                ..Default::default()
            }),
            frequency: "monthly".into(),
            day_of_month: 1,
            first_period: {
                let today = chrono::Utc::now().date_naive();
                chrono::NaiveDate::from_ymd_opt(today.year() + 1, 1, 1).unwrap().to_string()
            },
            max_count: 1,
            ..Default::default()
        }
    );
    rpc!(
        "invoicing.RequestHardship",
        invoicing.request_hardship,
        invpb::RequestHardshipRequest {
            invoice_id: m.card_invoice.clone(),
            reason: "Intruso".into(),
            installments: 2,
            first_date: day(40),
            note: String::new(),
        }
    );
    rpc!(
        "invoicing.ResolveHardship",
        invoicing.resolve_hardship,
        invpb::ResolveHardshipRequest { request_id: m.hardship.clone(), accept: true, note: "Intruso".into() }
    );
    rpc!(
        "invoicing.OpenDispute",
        invoicing.open_dispute,
        invpb::OpenDisputeRequest { invoice_id: m.card_invoice.clone(), reason: "Intruso".into() }
    );
    rpc!(
        "invoicing.ResolveDispute",
        invoicing.resolve_dispute,
        invpb::ResolveDisputeRequest {
            dispute_id: m.dispute.clone(),
            credit_amount: "100.00".into(),
            note: "Intruso".into(),
        }
    );
    rpc!(
        "invoicing.GetStatement",
        invoicing.get_statement,
        invpb::GetStatementRequest { customer_id: m.customer.clone(), from: day(-90), to: day(0) }
    );
    rpc!(
        "invoicing.GetStatementPdf",
        invoicing.get_statement_pdf,
        invpb::GetStatementRequest { customer_id: m.customer.clone(), from: day(-90), to: day(0) }
    );
    rpc!(
        "invoicing.GetInvoicePdf",
        invoicing.get_invoice_pdf,
        invpb::GetInvoicePdfRequest { id: m.card_invoice.clone() }
    );

    // payments
    rpc!(
        "payments.CreatePaymentIntent",
        payments.create_payment_intent,
        paypb::CreatePaymentIntentRequest {
            idempotency_key: "intruso-pay".into(),
            customer_id: m.customer.clone(),
            invoice_ids: vec![m.transfer_invoice.clone()],
            ..Default::default()
        }
    );
    rpc!(
        "payments.GetPaymentIntent",
        payments.get_payment_intent,
        paypb::GetPaymentIntentRequest { id: m.intent.clone() }
    );
    rpc!(
        "payments.ConfirmPaymentIntent",
        payments.confirm_payment_intent,
        paypb::ConfirmPaymentIntentRequest {
            idempotency_key: "intruso-confirm".into(),
            id: m.intent.clone(),
            method: Some(paypb::confirm_payment_intent_request::Method::Card(card())),
            ..Default::default()
        }
    );
    rpc!(
        "payments.CompletePaymentAction",
        payments.complete_payment_action,
        paypb::CompletePaymentActionRequest { id: m.intent.clone() }
    );
    rpc!(
        "payments.CancelPaymentIntent",
        payments.cancel_payment_intent,
        paypb::CancelPaymentIntentRequest { idempotency_key: "intruso-cancel".into(), id: m.intent.clone() }
    );
    rpc!(
        "payments.RefundPayment",
        payments.refund_payment,
        paypb::RefundPaymentRequest {
            idempotency_key: "intruso-refund".into(),
            payment_id: m.intent.clone(),
            amount: money("1.00", "MXN"),
            reason: "Intruso".into(),
        }
    );
    rpc!(
        "payments.SetDefaultPaymentMethod",
        payments.set_default_payment_method,
        paypb::SetDefaultPaymentMethodRequest { customer_id: m.customer.clone(), payment_method_id: m.method.clone() }
    );
    rpc!(
        "payments.RemovePaymentMethod",
        payments.remove_payment_method,
        paypb::RemovePaymentMethodRequest { customer_id: m.customer.clone(), payment_method_id: m.method.clone() }
    );
    rpc!(
        "payments.EnableAutopay",
        payments.enable_autopay,
        paypb::EnableAutopayRequest {
            customer_id: m.customer.clone(),
            payment_method_id: m.method.clone(),
            consent_text: "Autorizo cargos automáticos".into(),
            consent_ip: "127.0.0.1".into(),
        }
    );
    rpc!(
        "payments.DisableAutopay",
        payments.disable_autopay,
        paypb::DisableAutopayRequest { customer_id: m.customer.clone() }
    );
    rpc!(
        "payments.CreatePaymentLink",
        payments.create_payment_link,
        paypb::CreatePaymentLinkRequest {
            idempotency_key: "intruso-link".into(),
            customer_id: m.customer.clone(),
            invoice_id: m.transfer_invoice.clone(),
            ..Default::default()
        }
    );
    rpc!(
        "payments.CreatePaymentLink(installment)",
        payments.create_payment_link,
        paypb::CreatePaymentLinkRequest {
            idempotency_key: "intruso-link-2".into(),
            customer_id: m.customer.clone(),
            invoice_id: m.plan_invoice.clone(),
            installment_id: m.installment.clone(),
            amount: money("1.00", "MXN"),
            ..Default::default()
        }
    );
    rpc!(
        "payments.RevokePaymentLink",
        payments.revoke_payment_link,
        paypb::RevokePaymentLinkRequest { id: m.link.clone() }
    );
    rpc!(
        "payments.GetTransferInstructions",
        payments.get_transfer_instructions,
        paypb::GetTransferInstructionsRequest {
            customer_id: m.customer.clone(),
            invoice_id: m.transfer_invoice.clone(),
        }
    );
    rpc!(
        "payments.LookupReference",
        payments.lookup_reference,
        paypb::LookupReferenceRequest { reference: m.reference.clone() }
    );

    // notifications
    rpc!(
        "notifications.PreviewSchedule",
        notifications.preview_schedule,
        notpb::PreviewScheduleRequest { invoice_id: m.card_invoice.clone() }
    );
    rpc!(
        "notifications.PauseReminders(invoice)",
        notifications.pause_reminders,
        notpb::PauseRemindersRequest { invoice_id: m.transfer_invoice.clone(), customer_id: String::new() }
    );
    rpc!(
        "notifications.PauseReminders(customer)",
        notifications.pause_reminders,
        notpb::PauseRemindersRequest { invoice_id: String::new(), customer_id: m.customer.clone() }
    );
    rpc!(
        "notifications.ResumeReminders(invoice)",
        notifications.resume_reminders,
        notpb::PauseRemindersRequest { invoice_id: m.hardship_invoice.clone(), customer_id: String::new() }
    );
    rpc!(
        "notifications.ResumeReminders(customer)",
        notifications.resume_reminders,
        notpb::PauseRemindersRequest { invoice_id: String::new(), customer_id: m.customer.clone() }
    );
    rpc!(
        "notifications.SetOptOut",
        notifications.set_opt_out,
        notpb::SetOptOutRequest {
            customer_id: m.customer.clone(),
            address: "intruso@example.com".into(),
            channel: "email".into(),
            opted_out: true,
        }
    );

    // reconciliation
    {
        let mut client = reconciliation.clone();
        let chunks = vec![recpb::ImportStatementChunk {
            bank_account_id: m.account.clone(),
            csv_mapping: String::new(),
            data: camt053(
                CLABE,
                &day(-2),
                &Credit { amount: "5.00", payer: "INTRUSO", reference: None, remittance: "x" },
            )
            .into_bytes(),
        }];
        let request = b.staff(tokio_stream::iter(chunks));
        calls.push((
            "reconciliation.ImportStatement",
            Box::pin(async move { client.import_statement(request).await.map(|r| format!("{:?}", r.into_inner())) }),
        ));
    }
    rpc!(
        "reconciliation.ConfirmMatch",
        reconciliation.confirm_match,
        recpb::DecideMatchRequest { match_id: m.matched.clone(), reason: "Intruso".into() }
    );
    rpc!(
        "reconciliation.RejectMatch",
        reconciliation.reject_match,
        recpb::DecideMatchRequest { match_id: m.matched.clone(), reason: "Intruso".into() }
    );
    rpc!(
        "reconciliation.Unmatch",
        reconciliation.unmatch,
        recpb::DecideMatchRequest { match_id: m.matched.clone(), reason: "Intruso".into() }
    );
    rpc!(
        "reconciliation.ManualMatch(line)",
        reconciliation.manual_match,
        recpb::ManualMatchRequest {
            bank_line_id: m.free_line.clone(),
            items: vec![recpb::ManualItem {
                invoice_id: m.card_invoice.clone(),
                installment_id: String::new(),
                amount: "1.00".into(),
            }],
            reason: "Intruso".into(),
        }
    );
    rpc!(
        "reconciliation.ManualMatch(installment)",
        reconciliation.manual_match,
        recpb::ManualMatchRequest {
            bank_line_id: m.free_line.clone(),
            items: vec![recpb::ManualItem {
                invoice_id: m.plan_invoice.clone(),
                installment_id: m.installment.clone(),
                amount: String::new(),
            }],
            reason: "Intruso".into(),
        }
    );
    rpc!(
        "reconciliation.ResolveDiscrepancy",
        reconciliation.resolve_discrepancy,
        recpb::ResolveDiscrepancyRequest { discrepancy_id: m.discrepancy.clone(), resolution: "Intruso".into() }
    );

    let covered = calls.len();
    let mut wrong = Vec::new();
    for (name, call) in calls {
        match call.await {
            Err(status) if status.code() == Code::NotFound => {}
            Err(status) => wrong.push(format!("{name}: {:?} {}", status.code(), status.message())),
            Ok(body) => wrong.push(format!("{name}: answered {}", &body[..body.len().min(300)])),
        }
    }

    // One call with `token` into `calls`, as above.
    macro_rules! call {
        ($calls:ident, $token:expr, $name:literal, $client:ident . $method:ident, $request:expr) => {{
            let mut client = $client.clone();
            let request = bearer($request, $token);
            $calls.push((
                $name,
                Box::pin(async move { client.$method(request).await.map(|r| format!("{:?}", r.into_inner())) }),
            ));
        }};
    }

    // B's own lists and reports, also filtered by A's ids, show nothing of A's.
    let mut lists: Vec<Call<'_>> = Vec::new();
    let t = b.token.as_str();
    call!(lists, t, "identity.ListUsers", identity.list_users, idpb::ListUsersRequest::default());
    call!(lists, t, "identity.ListApiKeys", identity.list_api_keys, idpb::ListApiKeysRequest::default());
    call!(lists, t, "identity.ListAuditEvents", identity.list_audit_events, idpb::ListAuditEventsRequest::default());
    call!(lists, t, "invoicing.ListCustomers", invoicing.list_customers, invpb::ListCustomersRequest::default());
    call!(lists, t, "invoicing.ListInvoices", invoicing.list_invoices, invpb::ListInvoicesRequest::default());
    call!(
        lists,
        t,
        "invoicing.ListInvoices(customer)",
        invoicing.list_invoices,
        invpb::ListInvoicesRequest { customer_id: m.customer.clone(), ..Default::default() }
    );
    call!(lists, t, "invoicing.ListRequests", invoicing.list_requests, invpb::ListRequestsRequest::default());
    call!(lists, t, "invoicing.ListChanges", invoicing.list_changes, invpb::ListChangesRequest::default());
    call!(
        lists,
        t,
        "invoicing.GetAgingReport",
        invoicing.get_aging_report,
        invpb::GetAgingReportRequest { currency: "MXN".into(), ..Default::default() }
    );
    call!(
        lists,
        t,
        "invoicing.GetCollectionForecast",
        invoicing.get_collection_forecast,
        invpb::GetCollectionForecastRequest { currency: "MXN".into(), weeks: 12 }
    );
    call!(
        lists,
        t,
        "invoicing.GetPaymentBehaviour",
        invoicing.get_payment_behaviour,
        invpb::GetPaymentBehaviourRequest { currency: "MXN".into() }
    );
    call!(
        lists,
        t,
        "payments.ListPaymentIntents",
        payments.list_payment_intents,
        paypb::ListPaymentIntentsRequest::default()
    );
    call!(
        lists,
        t,
        "payments.ListPaymentIntents(customer)",
        payments.list_payment_intents,
        paypb::ListPaymentIntentsRequest { customer_id: m.customer.clone(), ..Default::default() }
    );
    call!(
        lists,
        t,
        "payments.ListPaymentMethods(customer)",
        payments.list_payment_methods,
        paypb::ListPaymentMethodsRequest { customer_id: m.customer.clone() }
    );
    call!(
        lists,
        t,
        "payments.ListPayouts",
        payments.list_payouts,
        paypb::ListPayoutsRequest { from: day(-30), to: day(0) }
    );
    call!(lists, t, "notifications.ListPolicies", notifications.list_policies, notpb::ListPoliciesRequest {});
    call!(lists, t, "notifications.ListMessages", notifications.list_messages, notpb::ListMessagesRequest::default());
    call!(
        lists,
        t,
        "notifications.ListMessages(invoice)",
        notifications.list_messages,
        notpb::ListMessagesRequest { invoice_id: m.card_invoice.clone(), ..Default::default() }
    );
    call!(
        lists,
        t,
        "notifications.ListMessages(customer)",
        notifications.list_messages,
        notpb::ListMessagesRequest { customer_id: m.customer.clone(), ..Default::default() }
    );
    call!(
        lists,
        t,
        "reconciliation.ListBankAccounts",
        reconciliation.list_bank_accounts,
        recpb::ListBankAccountsRequest::default()
    );
    call!(
        lists,
        t,
        "reconciliation.ListBankLines",
        reconciliation.list_bank_lines,
        recpb::ListBankLinesRequest::default()
    );
    call!(
        lists,
        t,
        "reconciliation.ListBankLines(account)",
        reconciliation.list_bank_lines,
        recpb::ListBankLinesRequest { bank_account_id: m.account.clone(), ..Default::default() }
    );
    call!(lists, t, "reconciliation.ListMatches", reconciliation.list_matches, recpb::ListMatchesRequest::default());
    call!(
        lists,
        t,
        "reconciliation.ListMatches(line)",
        reconciliation.list_matches,
        recpb::ListMatchesRequest { bank_line_id: m.matched_line.clone(), ..Default::default() }
    );
    call!(
        lists,
        t,
        "reconciliation.ListDiscrepancies",
        reconciliation.list_discrepancies,
        recpb::ListDiscrepanciesRequest::default()
    );
    let listed = lists.len();
    let ids = m.ids();
    for (name, call) in lists {
        match call.await {
            Ok(body) => {
                let seen: Vec<&str> = ids.iter().copied().filter(|id| body.contains(id)).collect();
                if !seen.is_empty() {
                    wrong.push(format!("{name}: lists {seen:?}"));
                }
            }
            Err(status) => wrong.push(format!("{name}: {:?} {}", status.code(), status.message())),
        }
    }

    // Identity, payments and notifications do not own customers: B may file its own contact,
    // card, mandate or policy under any customer id, A's or one nobody has, and the answer is
    // the same for both, so it tells B nothing about A.
    let nobody = format!("cus_{}", uuid::Uuid::now_v7().simple());
    let mut kinds = Vec::new();
    for customer in [&m.customer, &nobody] {
        let tag = &customer[customer.len() - 8..];
        let mut answers: Vec<Call<'_>> = Vec::new();
        call!(
            answers,
            t,
            "identity.CreateContact",
            identity.create_contact,
            idpb::CreateContactRequest {
                email: format!("intruso-{tag}@{}.example.com", b.slug),
                display_name: "Intruso".into(),
                customer_id: customer.clone(),
                password: cobro_e2e::platform::PASSWORD.into(),
            }
        );
        call!(
            answers,
            t,
            "payments.SavePaymentMethod",
            payments.save_payment_method,
            paypb::SavePaymentMethodRequest {
                idempotency_key: format!("intruso-pm-{tag}"),
                customer_id: customer.clone(),
                source: Some(paypb::save_payment_method_request::Source::Card(card())),
                make_default: true,
            }
        );
        call!(
            answers,
            t,
            "payments.CreateDirectDebitMandate",
            payments.create_direct_debit_mandate,
            paypb::CreateDirectDebitMandateRequest {
                customer_id: customer.clone(),
                iban: "DE89370400440532013000".into(),
                account_holder: "Intruso".into(),
                mandate_reference: format!("MDT-{tag}"),
                consent_text: "Autorizo".into(),
                consent_ip: "127.0.0.1".into(),
            }
        );
        call!(
            answers,
            t,
            "notifications.UpsertPolicy(customer)",
            notifications.upsert_policy,
            notpb::UpsertPolicyRequest {
                policy: Some(notpb::Policy {
                    customer_id: customer.clone(),
                    steps: vec![notpb::Step {
                        offset_days: 1,
                        channels: vec!["email".into()],
                        tone: "friendly".into(),
                        template: "reminder_friendly".into(),
                        templates: vec![],
                    }],
                    send_at: "09:00".into(),
                    default_timezone: "UTC".into(),
                    ..Default::default()
                }),
            }
        );
        let mut answered = Vec::new();
        for (name, call) in answers {
            answered.push((name, call.await.map(|_| ()).map_err(|s| s.code())));
        }
        kinds.push(answered);
    }
    for (theirs, nobodys) in kinds[0].iter().zip(&kinds[1]) {
        if theirs != nobodys {
            wrong.push(format!("{}: {:?} for A's customer, {:?} for nobody's", theirs.0, theirs.1, nobodys.1));
        }
    }
    let unmoved = payments
        .clone()
        .list_payment_methods(a.staff(paypb::ListPaymentMethodsRequest { customer_id: m.customer.clone() }))
        .await
        .unwrap()
        .into_inner();
    let methods: Vec<&str> = unmoved.methods.iter().map(|pm| pm.id.as_str()).collect();
    if methods != [m.method.as_str()] || unmoved.autopay.as_ref().map(|m| m.id.as_str()) != Some(m.mandate.as_str()) {
        wrong.push(format!("A's customer's cards and autopay changed: {unmoved:?}"));
    }
    let policies = notifications.clone().list_policies(a.staff(notpb::ListPoliciesRequest {})).await.unwrap();
    let policy = policies.into_inner().policies.into_iter().find(|p| p.customer_id == m.customer);
    if policy.as_ref().is_none_or(|p| p.steps.iter().map(|s| s.offset_days).collect::<Vec<_>>() != [3]) {
        wrong.push(format!("A's customer's reminder policy changed: {policy:?}"));
    }

    // The contact B filed under A's customer signs in to B, and sees nothing of A's.
    let intruder = format!("intruso-{}@{}.example.com", &m.customer[m.customer.len() - 8..], b.slug);
    let token = contact_token(&platform, &b, &intruder, cobro_e2e::platform::PASSWORD).await;
    let mut portal: Vec<Call<'_>> = Vec::new();
    let t = token.as_str();
    call!(
        portal,
        t,
        "contact: invoicing.GetInvoice",
        invoicing.get_invoice,
        invpb::GetInvoiceRequest { id: m.card_invoice.clone() }
    );
    call!(
        portal,
        t,
        "contact: invoicing.GetInvoicePdf",
        invoicing.get_invoice_pdf,
        invpb::GetInvoicePdfRequest { id: m.card_invoice.clone() }
    );
    call!(
        portal,
        t,
        "contact: invoicing.GetStatement",
        invoicing.get_statement,
        invpb::GetStatementRequest { customer_id: m.customer.clone(), from: day(-90), to: day(0) }
    );
    call!(
        portal,
        t,
        "contact: invoicing.RequestHardship",
        invoicing.request_hardship,
        invpb::RequestHardshipRequest {
            invoice_id: m.transfer_invoice.clone(),
            reason: "Intruso".into(),
            installments: 2,
            first_date: day(40),
            note: String::new(),
        }
    );
    call!(
        portal,
        t,
        "contact: invoicing.OpenDispute",
        invoicing.open_dispute,
        invpb::OpenDisputeRequest { invoice_id: m.transfer_invoice.clone(), reason: "Intruso".into() }
    );
    call!(
        portal,
        t,
        "contact: payments.GetPaymentIntent",
        payments.get_payment_intent,
        paypb::GetPaymentIntentRequest { id: m.intent.clone() }
    );
    call!(
        portal,
        t,
        "contact: payments.CreatePaymentIntent",
        payments.create_payment_intent,
        paypb::CreatePaymentIntentRequest {
            idempotency_key: "intruso-contact-pay".into(),
            customer_id: m.customer.clone(),
            invoice_ids: vec![m.transfer_invoice.clone()],
            ..Default::default()
        }
    );
    call!(
        portal,
        t,
        "contact: payments.GetTransferInstructions",
        payments.get_transfer_instructions,
        paypb::GetTransferInstructionsRequest {
            customer_id: m.customer.clone(),
            invoice_id: m.transfer_invoice.clone(),
        }
    );
    call!(
        portal,
        t,
        "contact: payments.SetDefaultPaymentMethod",
        payments.set_default_payment_method,
        paypb::SetDefaultPaymentMethodRequest { customer_id: m.customer.clone(), payment_method_id: m.method.clone() }
    );
    call!(
        portal,
        t,
        "contact: payments.EnableAutopay",
        payments.enable_autopay,
        paypb::EnableAutopayRequest {
            customer_id: m.customer.clone(),
            payment_method_id: m.method.clone(),
            consent_text: "Autorizo cargos automáticos".into(),
            consent_ip: "127.0.0.1".into(),
        }
    );
    let contact_calls = portal.len();
    for (name, call) in portal {
        match call.await {
            Err(status) if status.code() == Code::NotFound => {}
            Err(status) => wrong.push(format!("{name}: {:?} {}", status.code(), status.message())),
            Ok(body) => wrong.push(format!("{name}: answered {}", &body[..body.len().min(300)])),
        }
    }
    let mut seen_by_contact: Vec<Call<'_>> = Vec::new();
    call!(
        seen_by_contact,
        t,
        "contact: invoicing.ListInvoices",
        invoicing.list_invoices,
        invpb::ListInvoicesRequest { customer_id: m.customer.clone(), ..Default::default() }
    );
    call!(
        seen_by_contact,
        t,
        "contact: payments.ListPaymentIntents",
        payments.list_payment_intents,
        paypb::ListPaymentIntentsRequest { customer_id: m.customer.clone(), ..Default::default() }
    );
    call!(
        seen_by_contact,
        t,
        "contact: payments.ListPaymentMethods",
        payments.list_payment_methods,
        paypb::ListPaymentMethodsRequest { customer_id: m.customer.clone() }
    );
    // The customer id is the contact's own claim; anything else of A's would be a leak.
    let others: Vec<&str> = ids.iter().copied().filter(|id| *id != m.customer).collect();
    for (name, call) in seen_by_contact {
        match call.await {
            Ok(body) => {
                let seen: Vec<&str> = others.iter().copied().filter(|id| body.contains(id)).collect();
                if !seen.is_empty() {
                    wrong.push(format!("{name}: lists {seen:?}"));
                }
            }
            Err(status) => wrong.push(format!("{name}: {:?} {}", status.code(), status.message())),
        }
    }

    // B's own records, named together with A's: a customer of B's with A's invoice, card or
    // mandate, B's bank line with A's invoice, B's import with A's CSV mapping.
    let own = platform.customer(&b, "Ferretería La Estrella", "es").await;
    let own_invoice = platform.open_invoice(&b, &own, "150.00").await;
    let create = paypb::CreatePaymentIntentRequest {
        idempotency_key: format!("pay-{own_invoice}"),
        customer_id: own.id.clone(),
        invoice_ids: vec![own_invoice.clone()],
        ..Default::default()
    };
    let known = eventually(Duration::from_secs(60), || {
        let (mut payments, request) = (payments.clone(), b.staff(create.clone()));
        async move { payments.create_payment_intent(request).await.is_ok() }
    })
    .await;
    assert!(known, "payments never learned of B's invoice");
    let own_intent = payments.clone().create_payment_intent(b.staff(create)).await.unwrap().into_inner().id;
    let own_account = reconciliation
        .clone()
        .create_bank_account(b.staff(recpb::CreateBankAccountRequest {
            name: "Banorte operativa".into(),
            number: CLABE.into(),
            currency: "MXN".into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .id;
    let statement = camt053(
        CLABE,
        &day(-1),
        &Credit { amount: "150.00", payer: "FERRETERIA LA ESTRELLA", reference: None, remittance: "sin datos" },
    );
    let chunks = vec![recpb::ImportStatementChunk {
        bank_account_id: own_account.clone(),
        csv_mapping: String::new(),
        data: statement.into_bytes(),
    }];
    reconciliation.clone().import_statement(b.staff(tokio_stream::iter(chunks))).await.unwrap();
    let own_lines = reconciliation
        .clone()
        .list_bank_lines(b.staff(recpb::ListBankLinesRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .lines;
    let own_line = own_lines.iter().find(|l| l.status == "unmatched").expect("B's unmatched credit").id.clone();

    let mut mixed: Vec<Call<'_>> = Vec::new();
    let t = b.token.as_str();
    call!(
        mixed,
        t,
        "mixed: invoicing.ApplyCustomerCredit",
        invoicing.apply_customer_credit,
        invpb::ApplyCustomerCreditRequest { customer_id: own.id.clone(), invoice_id: m.transfer_invoice.clone() }
    );
    call!(
        mixed,
        t,
        "mixed: payments.CreatePaymentIntent(invoice)",
        payments.create_payment_intent,
        paypb::CreatePaymentIntentRequest {
            idempotency_key: "mixto-pay-1".into(),
            customer_id: own.id.clone(),
            invoice_ids: vec![m.transfer_invoice.clone()],
            ..Default::default()
        }
    );
    call!(
        mixed,
        t,
        "mixed: payments.ConfirmPaymentIntent(method)",
        payments.confirm_payment_intent,
        paypb::ConfirmPaymentIntentRequest {
            idempotency_key: "mixto-confirm-1".into(),
            id: own_intent.clone(),
            method: Some(paypb::confirm_payment_intent_request::Method::PaymentMethodId(m.method.clone())),
            ..Default::default()
        }
    );
    call!(
        mixed,
        t,
        "mixed: payments.ConfirmPaymentIntent(mandate)",
        payments.confirm_payment_intent,
        paypb::ConfirmPaymentIntentRequest {
            idempotency_key: "mixto-confirm-2".into(),
            id: own_intent.clone(),
            method: Some(paypb::confirm_payment_intent_request::Method::MandateId(m.mandate.clone())),
            ..Default::default()
        }
    );
    call!(
        mixed,
        t,
        "mixed: payments.SetDefaultPaymentMethod",
        payments.set_default_payment_method,
        paypb::SetDefaultPaymentMethodRequest { customer_id: own.id.clone(), payment_method_id: m.method.clone() }
    );
    call!(
        mixed,
        t,
        "mixed: payments.RemovePaymentMethod",
        payments.remove_payment_method,
        paypb::RemovePaymentMethodRequest { customer_id: own.id.clone(), payment_method_id: m.method.clone() }
    );
    call!(
        mixed,
        t,
        "mixed: payments.EnableAutopay",
        payments.enable_autopay,
        paypb::EnableAutopayRequest {
            customer_id: own.id.clone(),
            payment_method_id: m.method.clone(),
            consent_text: "Autorizo cargos automáticos".into(),
            consent_ip: "127.0.0.1".into(),
        }
    );
    call!(
        mixed,
        t,
        "mixed: payments.CreatePaymentLink",
        payments.create_payment_link,
        paypb::CreatePaymentLinkRequest {
            idempotency_key: "mixto-link".into(),
            customer_id: own.id.clone(),
            invoice_id: m.transfer_invoice.clone(),
            ..Default::default()
        }
    );
    call!(
        mixed,
        t,
        "mixed: payments.GetTransferInstructions",
        payments.get_transfer_instructions,
        paypb::GetTransferInstructionsRequest { customer_id: own.id.clone(), invoice_id: m.transfer_invoice.clone() }
    );
    call!(
        mixed,
        t,
        "mixed: reconciliation.ManualMatch",
        reconciliation.manual_match,
        recpb::ManualMatchRequest {
            bank_line_id: own_line.clone(),
            items: vec![recpb::ManualItem { invoice_id: m.transfer_invoice.clone(), ..Default::default() }],
            reason: "Mixto".into(),
        }
    );
    let mixed_calls = mixed.len();
    for (name, call) in mixed {
        match call.await {
            Err(status) if status.code() == Code::NotFound => {}
            Err(status) => wrong.push(format!("{name}: {:?} {}", status.code(), status.message())),
            Ok(body) => wrong.push(format!("{name}: answered {}", &body[..body.len().min(300)])),
        }
    }

    // A payment names invoices to prefer; one that is not the customer's open invoice (A's, or
    // one that never was) is passed over and the money goes to the customer's own, oldest first.
    let mut applied: Vec<Call<'_>> = Vec::new();
    call!(
        applied,
        t,
        "mixed: invoicing.ApplyPayment(invoice)",
        invoicing.apply_payment,
        invpb::ApplyPaymentRequest {
            payment_id: "TRF-MIXTO-1".into(),
            customer_id: own.id.clone(),
            amount: money("1.00", "MXN"),
            method: "transfer".into(),
            received_on: day(0),
            invoice_ids: vec![m.transfer_invoice.clone()],
            ..Default::default()
        }
    );
    call!(
        applied,
        t,
        "mixed: invoicing.ApplyPayment(installment)",
        invoicing.apply_payment,
        invpb::ApplyPaymentRequest {
            payment_id: "TRF-MIXTO-2".into(),
            customer_id: own.id.clone(),
            amount: money("1.00", "MXN"),
            method: "transfer".into(),
            received_on: day(0),
            installment_id: m.installment.clone(),
            ..Default::default()
        }
    );
    for (name, call) in applied {
        match call.await {
            Ok(body) if !ids.iter().any(|id| body.contains(id)) && body.contains(&own_invoice) => {}
            other => wrong.push(format!("{name}: {other:?}")),
        }
    }
    // Payments hears of an installment only once it falls due, so an early payment of one names
    // it with an amount, unchecked: A's installment answers as one that never was.
    let mut early = Vec::new();
    for installment in [m.installment.clone(), format!("ins_{}", uuid::Uuid::now_v7().simple())] {
        let request = paypb::CreatePaymentIntentRequest {
            idempotency_key: format!("mixto-{installment}"),
            customer_id: own.id.clone(),
            invoice_ids: vec![own_invoice.clone()],
            installment_id: installment,
            amount: money("1.00", "MXN"),
            ..Default::default()
        };
        let answer = payments.clone().create_payment_intent(b.staff(request)).await;
        early.push(answer.map(|r| r.into_inner().amount).map_err(|s| s.code()));
    }
    if early[0] != early[1] {
        wrong.push(format!("payments.CreatePaymentIntent(installment): {early:?}"));
    }
    // External ids are the tenant's own: B's ERP importing under A's customer number finds no
    // customer, as under one nobody has, and B upserting that number makes a customer of B's.
    let mut imported = Vec::new();
    for external in [m.erp_external_id.clone(), format!("KUNNR-{}", b.slug)] {
        let item = invpb::ImportInvoiceItem {
            invoice: Some(invpb::CreateInvoiceRequest {
                external_id: format!("SAP-{external}"),
                lines: line("Pedido", "10.00"),
                ..Default::default()
            }),
            customer_external_id: external,
            number: String::new(),
        };
        let answer = invoicing.clone().import_invoices(b.staff(tokio_stream::iter(vec![item]))).await;
        imported.push(answer.map(|r| {
            r.into_inner().results.into_iter().map(|r| (r.outcome, r.error_code, r.error_field)).collect::<Vec<_>>()
        }));
    }
    let imported: Vec<_> = imported.into_iter().map(|r| r.map_err(|s| s.code())).collect();
    if imported[0] != imported[1] || imported[0].as_ref().is_ok_and(|r| r.iter().any(|r| r.0 != "error")) {
        wrong.push(format!("invoicing.ImportInvoices(customer_external_id): {imported:?}"));
    }
    let upserted = invoicing
        .clone()
        .upsert_customer(b.staff(invpb::UpsertCustomerRequest {
            id: String::new(),
            customer: Some(invpb::Customer {
                external_id: m.erp_external_id.clone(),
                legal_name: "Otra Distribuidora".into(),
                tax_country: "MX".into(),
                currency: "MXN".into(),
                payment_terms_days: 15,
                ..Default::default()
            }),
        }))
        .await
        .map(|r| r.into_inner().id);
    if upserted.as_ref().map_or(true, |id| ids.contains(&id.as_str())) {
        wrong.push(format!("invoicing.UpsertCustomer(external_id): {upserted:?}"));
    }
    // A CSV mapping is named, not an id: A's name answers as a name no tenant has.
    let mut imports = Vec::new();
    for name in [m.mapping.clone(), format!("banorte-{}", b.slug)] {
        let chunks = vec![recpb::ImportStatementChunk {
            bank_account_id: own_account.clone(),
            csv_mapping: name,
            data: format!("Fecha,Importe,Concepto\n{},10.00,mixto\n", day(-1)).into_bytes(),
        }];
        let answer = reconciliation.clone().import_statement(b.staff(tokio_stream::iter(chunks))).await;
        imports.push(answer.map(|r| format!("{:?}", r.into_inner())).map_err(|s| (s.code(), s.message().to_owned())));
    }
    if imports[0] != imports[1] || imports[0].is_ok() {
        wrong.push(format!("reconciliation.ImportStatement(mapping): {imports:?}"));
    }

    // A's records are as A left them.
    let mut invoicing_a = platform.invoicing_client();
    // (Only what B aimed at: A's own payments keep landing on A's invoices meanwhile.)
    let mut invoice_of = async |id: &String| {
        let invoice = invoicing_a.get_invoice(a.staff(invpb::GetInvoiceRequest { id: id.clone() })).await;
        invoice.unwrap().into_inner()
    };
    let (draft, voided, written_off, credited) = (
        invoice_of(&m.draft).await,
        invoice_of(&m.dispute_invoice).await,
        invoice_of(&m.hardship_invoice).await,
        invoice_of(&m.credited_invoice).await,
    );
    if draft.status != "draft"
        || voided.status == "void"
        || written_off.status == "uncollectible"
        || credited.credited.as_ref().map(|c| c.amount.as_str()) != Some("10.00")
        || !credited.installments.is_empty()
    {
        wrong.push(format!("A's invoices changed: {draft:?} {voided:?} {written_off:?} {credited:?}"));
    }
    let erp = invoicing_a.get_customer(a.staff(invpb::GetCustomerRequest { id: m.erp_customer.clone() })).await;
    if erp.as_ref().map(|c| c.get_ref().legal_name.as_str()).ok() != Some("Distribuidora Norte S.A.") {
        wrong.push(format!("A's ERP customer changed: {erp:?}"));
    }
    let requests =
        invoicing_a.list_requests(a.staff(invpb::ListRequestsRequest::default())).await.unwrap().into_inner().requests;
    if requests.iter().any(|r| r.state != "open") || requests.len() != 2 {
        wrong.push(format!("A's hardship request and dispute changed: {requests:?}"));
    }
    let user = platform.identity_client().get_user(a.staff(idpb::GetUserRequest { id: m.user.clone() })).await;
    if user.as_ref().map(|u| (u.get_ref().role.as_str(), u.get_ref().disabled)).ok() != Some(("ar_clerk", false)) {
        wrong.push(format!("A's user changed: {user:?}"));
    }
    let keys = platform.identity_client().list_api_keys(a.staff(idpb::ListApiKeysRequest::default())).await.unwrap();
    if keys.get_ref().api_keys.iter().any(|k| k.id == m.api_key && k.revoked_at.is_some()) {
        wrong.push(format!("A's API key was revoked: {keys:?}"));
    }
    let intent =
        payments.clone().get_payment_intent(a.staff(paypb::GetPaymentIntentRequest { id: m.intent.clone() })).await;
    let intent = intent.unwrap().into_inner();
    if intent.status != "succeeded" || intent.amount_refunded.as_ref().map(|r| r.amount.as_str()) != Some("1.00") {
        wrong.push(format!("A's payment changed: {intent:?}"));
    }
    let matches =
        reconciliation.clone().list_matches(a.staff(recpb::ListMatchesRequest::default())).await.unwrap().into_inner();
    if !matches.matches.iter().any(|x| x.id == m.matched && x.status == m.matched_status) {
        wrong.push(format!("A's matches changed: {matches:?}"));
    }

    println!(
        "{covered} staff calls, {mixed_calls} mixed and {contact_calls} contact calls with another tenant's ids, {listed} lists; \
         made in {made:.1?}, checked in {:.1?}",
        started.elapsed() - made
    );
    assert!(
        wrong.is_empty(),
        "calls that did not answer NOT_FOUND or listed another tenant's ids:\n{}",
        wrong.join("\n")
    );
    platform.stop().await;
}
