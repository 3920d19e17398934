//! An ERP (SAP, Oracle) integrates over gRPC with an API key: it imports a thousand invoices
//! in one stream, importing them again changes nothing, and it syncs back what changed since
//! its cursor (a payment, a void) without reading everything again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use cobro_e2e::platform::{Platform, bearer};
use cobro_proto::identity::v1 as idpb;
use cobro_proto::invoicing::v1 as invpb;

const INVOICES: usize = 1000;

fn items(customers: &[String]) -> Vec<invpb::ImportInvoiceItem> {
    // Issued today, due in a month: a due-notice sweep during the test finds nothing to mark.
    let today = chrono::Utc::now().date_naive();
    let (issued, due) = (today.to_string(), (today + chrono::Days::new(30)).to_string());
    (0..INVOICES)
        .map(|i| invpb::ImportInvoiceItem {
            invoice: Some(invpb::CreateInvoiceRequest {
                external_id: format!("SAP-90{i:05}"),
                lines: vec![invpb::LineInput {
                    description: format!("Pedido {i}"),
                    quantity: "2".into(),
                    unit_price: format!("{}.25", 100 + i),
                    taxes: vec![invpb::TaxRate { name: "IVA".into(), rate_percent: "16".into(), inclusive: false }],
                    ..Default::default()
                }],
                issue_date: issued.clone(),
                due_date: due.clone(),
                ..Default::default()
            }),
            customer_external_id: customers[i % customers.len()].clone(),
            number: format!("F-{i:05}"),
        })
        .collect()
}

#[tokio::test]
async fn an_erp_imports_a_thousand_invoices_and_syncs_back_what_changed() {
    let platform = Platform::start().await;
    let tenant = platform.tenant().await;
    let mut identity = platform.identity_client();
    let key = identity
        .create_api_key(tenant.staff(idpb::CreateApiKeyRequest {
            name: "SAP S/4HANA".into(),
            scopes: ["customers:read", "customers:write", "invoices:read", "invoices:write"].map(String::from).to_vec(),
            expires_at: None,
        }))
        .await
        .unwrap()
        .into_inner();
    let token = identity
        .exchange_api_key(idpb::ExchangeApiKeyRequest { api_key: key.secret.clone() })
        .await
        .unwrap()
        .into_inner()
        .access_token;
    let mut invoicing = platform.invoicing_client();

    let externals: Vec<String> = (0..10).map(|i| format!("KUNNR-{i:04}")).collect();
    for external in &externals {
        invoicing
            .upsert_customer(bearer(
                invpb::UpsertCustomerRequest {
                    id: String::new(),
                    customer: Some(invpb::Customer {
                        external_id: external.clone(),
                        legal_name: format!("Cliente {external}"),
                        tax_country: "MX".into(),
                        currency: "MXN".into(),
                        payment_terms_days: 30,
                        ..Default::default()
                    }),
                },
                &token,
            ))
            .await
            .unwrap();
    }

    let imported = invoicing
        .import_invoices(bearer(tokio_stream::iter(items(&externals)), &token))
        .await
        .unwrap()
        .into_inner()
        .results;
    let outcomes = imported.iter().fold(BTreeMap::<&str, usize>::new(), |mut m, r| {
        *m.entry(r.outcome.as_str()).or_default() += 1;
        m
    });
    assert_eq!(
        outcomes,
        BTreeMap::from([("created", INVOICES)]),
        "{:?}",
        imported.iter().find(|r| r.outcome == "error")
    );
    let again = invoicing
        .import_invoices(bearer(tokio_stream::iter(items(&externals)), &token))
        .await
        .unwrap()
        .into_inner()
        .results;
    assert!(again.iter().all(|r| r.outcome == "unchanged"), "a second import of the same file changes nothing");

    // The ERP reads everything once, keeping the cursor.
    let mut cursor = String::new();
    let mut seen = 0;
    loop {
        let page = invoicing
            .list_changes(bearer(invpb::ListChangesRequest { cursor: cursor.clone(), page_size: 400 }, &token))
            .await
            .unwrap()
            .into_inner();
        seen += page.invoices.len();
        if page.invoices.is_empty() {
            break;
        }
        assert!(page.invoices.iter().all(|i| i.status == "open" && i.number.starts_with("F-")));
        cursor = page.next_cursor;
    }
    assert_eq!(seen, INVOICES);

    // Then the finance team records a payment and voids an invoice...
    let (paid, voided) = (&imported[7], &imported[8]);
    let paid_invoice = invoicing
        .get_invoice(bearer(invpb::GetInvoiceRequest { id: paid.invoice_id.clone() }, &token))
        .await
        .unwrap()
        .into_inner();
    invoicing
        .apply_payment(tenant.staff(invpb::ApplyPaymentRequest {
            payment_id: "TRF-2026-118".into(),
            customer_id: paid_invoice.customer_id.clone(),
            amount: paid_invoice.balance.clone(),
            method: "transfer".into(),
            received_on: chrono::Utc::now().date_naive().to_string(),
            invoice_ids: vec![paid.invoice_id.clone()],
            ..Default::default()
        }))
        .await
        .unwrap();
    invoicing
        .void_invoice(
            tenant
                .staff(invpb::VoidInvoiceRequest { id: voided.invoice_id.clone(), reason: "Pedido cancelado".into() }),
        )
        .await
        .unwrap();

    // ...and the ERP's next sync brings exactly those two, with their new state.
    let changes = invoicing
        .list_changes(bearer(invpb::ListChangesRequest { cursor: cursor.clone(), page_size: 400 }, &token))
        .await
        .unwrap()
        .into_inner();
    let changed: BTreeMap<String, (String, String)> = changes
        .invoices
        .iter()
        .map(|i| (i.external_id.clone(), (i.status.clone(), i.balance.clone().unwrap_or_default().amount)))
        .collect();
    assert_eq!(
        changed,
        BTreeMap::from([
            (paid.external_id.clone(), ("paid".to_owned(), "0.00".to_owned())),
            (voided.external_id.clone(), ("void".to_owned(), "0.00".to_owned())),
        ])
    );

    // The key is the ERP's, not a person's: it cannot read another tenant, nor act beyond its scopes.
    let other = platform.tenant().await;
    let stranger = platform.customer(&other, "Otra Empresa", "es").await;
    let foreign = platform.open_invoice(&other, &stranger, "10.00").await;
    let err = invoicing.get_invoice(bearer(invpb::GetInvoiceRequest { id: foreign }, &token)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err = invoicing.get_aging_report(bearer(invpb::GetAgingReportRequest::default(), &token)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "reports:read was not granted");
    platform.stop().await;
}
