//! A customer pays by bank transfer quoting the invoice's RF reference; the bank's camt.053
//! statement is imported, the line is matched to the invoice on its own, and the invoice is
//! paid: payments, reconciliation and invoicing agree through their events alone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use cobro_e2e::platform::Platform;
use cobro_e2e::statements::{Credit, camt053};
use cobro_kit::testing::eventually;
use cobro_proto::invoicing::v1 as invpb;
use cobro_proto::payments::v1 as paypb;
use cobro_proto::payments::v1::payments_service_client::PaymentsServiceClient;
use cobro_proto::reconciliation::v1 as recpb;
use cobro_proto::reconciliation::v1::reconciliation_service_client::ReconciliationServiceClient;

const CLABE: &str = "012180001234567897";

#[tokio::test]
async fn a_transfer_quoting_the_reference_pays_the_invoice_once_the_statement_arrives() {
    let platform = Platform::start().await;
    let tenant = platform.tenant().await;
    let customer = platform.customer(&tenant, "Constructora Álamo S.A. de C.V.", "es").await;
    let invoice = platform.open_invoice(&tenant, &customer, "3480.00").await;
    let payments = PaymentsServiceClient::new(platform.payments.clone());
    let mut reconciliation = ReconciliationServiceClient::new(platform.reconciliation.clone());

    // The portal shows the bank details and the invoice's reference once payments knows it.
    let request =
        paypb::GetTransferInstructionsRequest { customer_id: customer.id.clone(), invoice_id: invoice.clone() };
    let known = eventually(Duration::from_secs(30), || {
        let (mut payments, request) = (payments.clone(), tenant.staff(request.clone()));
        async move { payments.get_transfer_instructions(request).await.is_ok() }
    })
    .await;
    assert!(known, "payments never learned of the invoice");
    let instructions = payments.clone().get_transfer_instructions(tenant.staff(request)).await.unwrap().into_inner();
    assert!(instructions.reference.starts_with("RF"), "{instructions:?}");
    assert_eq!(instructions.amount.as_ref().map(|m| m.amount.as_str()), Some("3480.00"));

    // Days pass before the money arrives: by then reconciliation knows the reference too.
    let db = platform.observe().await;
    let propagated = eventually(Duration::from_secs(30), || {
        let (db, reference, tenant) = (db.clone(), instructions.reference.clone(), tenant.id);
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM reconciliation.payment_references WHERE tenant_id = $1 AND reference = $2",
            )
            .bind(tenant)
            .bind(reference)
            .fetch_one(&db)
            .await
            .is_ok_and(|n| n == 1)
        }
    })
    .await;
    assert!(propagated, "reconciliation never learned the reference");

    let account = reconciliation
        .create_bank_account(tenant.staff(recpb::CreateBankAccountRequest {
            name: "BBVA cuenta concentradora".into(),
            number: CLABE.into(),
            currency: "MXN".into(),
        }))
        .await
        .unwrap()
        .into_inner();

    // The customer's bank quotes the reference, grouped as people type it.
    let today = chrono::Utc::now().date_naive().to_string();
    let credit = Credit {
        amount: "3480.00",
        payer: "CONSTRUCTORA ALAMO SA DE CV",
        reference: Some(&instructions.reference_grouped),
        remittance: "",
    };
    let file = camt053(CLABE, &today, &credit);
    let chunks = vec![recpb::ImportStatementChunk {
        bank_account_id: account.id.clone(),
        csv_mapping: String::new(),
        data: file.into_bytes(),
    }];
    let imported =
        reconciliation.import_statement(tenant.staff(tokio_stream::iter(chunks))).await.unwrap().into_inner();
    assert_eq!((imported.format.as_str(), imported.lines_new), ("camt.053", 1));

    // Matching runs after every import; the reference may reach reconciliation a moment
    // after the statement, so ask again until it has.
    let mut invoicing = platform.invoicing_client();
    let paid = eventually(Duration::from_secs(60), || {
        let (mut reconciliation, mut invoicing) = (reconciliation.clone(), invoicing.clone());
        let (run, get) = (
            tenant.staff(recpb::RunMatchingRequest {}),
            tenant.staff(invpb::GetInvoiceRequest { id: invoice.clone() }),
        );
        async move {
            let _ = reconciliation.run_matching(run).await;
            invoicing.get_invoice(get).await.is_ok_and(|i| i.into_inner().status == "paid")
        }
    })
    .await;
    if !paid {
        let matches = reconciliation
            .list_matches(tenant.staff(recpb::ListMatchesRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .matches;
        let issues = reconciliation
            .list_discrepancies(tenant.staff(recpb::ListDiscrepanciesRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .discrepancies;
        panic!("the invoice was never paid; matches {matches:?}; discrepancies {issues:?}");
    }

    let confirmed = reconciliation
        .list_matches(tenant.staff(recpb::ListMatchesRequest { status: "confirmed".into(), ..Default::default() }))
        .await
        .unwrap()
        .into_inner()
        .matches;
    assert_eq!(confirmed.len(), 1);
    assert_eq!((confirmed[0].rule.as_str(), confirmed[0].decided_by.as_str()), ("reference", "auto"));
    assert_eq!(confirmed[0].items[0].invoice_id, invoice);

    // The same statement again changes nothing: no second line, no second payment.
    let again = vec![recpb::ImportStatementChunk {
        bank_account_id: account.id.clone(),
        csv_mapping: String::new(),
        data: camt053(CLABE, &today, &credit).into_bytes(),
    }];
    let twice = reconciliation.import_statement(tenant.staff(tokio_stream::iter(again))).await.unwrap().into_inner();
    assert_eq!(twice.lines_new, 0);
    let after = invoicing
        .get_invoice(tenant.staff(invpb::GetInvoiceRequest { id: invoice.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.paid.map(|m| m.amount), Some("3480.00".to_owned()));
    platform.stop().await;
}
