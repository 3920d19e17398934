//! Reconciliation end to end over gRPC against the real Postgres: what is owed arrives as
//! invoicing's and payments' events, statements are uploaded, matches are confirmed or
//! suggested, people decide, discrepancies are raised once, and the audit report tells it all.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{Days, Utc};
use cobro_kit::auth::PrincipalKind;
use cobro_kit::auth::testing::TestIssuer;
use cobro_kit::config::GrpcConfig;
use cobro_kit::events::EventHandler;
use cobro_kit::grpc::GrpcServer;
use cobro_kit::testing::TestDb;
use cobro_proto::common::v1::Money;
use cobro_proto::events::v1::{
    CustomerUpserted, Envelope, InvoiceChanged, MatchDecided, PaymentApplied, PaymentReceived, PayoutCreated,
    ReferenceAssigned,
};
use cobro_proto::reconciliation::v1 as pb;
use cobro_proto::reconciliation::v1::reconciliation_service_client::ReconciliationServiceClient;
use cobro_proto::reconciliation::v1::reconciliation_service_server::ReconciliationServiceServer;
use cobro_reconciliation::api::ReconciliationApi;
use cobro_reconciliation::app::Reconciliation;
use cobro_reconciliation::domain::rf::rf_reference as rf;
use cobro_reconciliation::events::Handler;
use prost::Message;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Request};
use uuid::Uuid;

const STAFF: [&str; 3] = ["recon:read", "recon:write", "recon:confirm"];
const MAPPING: &str = "bank-csv";

struct H {
    db: TestDb,
    issuer: Arc<TestIssuer>,
    tenant: Uuid,
    app: Arc<Reconciliation>,
    client: ReconciliationServiceClient<Channel>,
    _shutdown: CancellationToken,
}

fn money(amount: &str, currency: &str) -> Option<Money> {
    Some(Money { currency: currency.into(), amount: amount.into() })
}

impl H {
    async fn new() -> H {
        let db = TestDb::new(&cobro_reconciliation::migrator()).await;
        let issuer = Arc::new(TestIssuer::new());
        let shutdown = CancellationToken::new();
        let app = Arc::new(Reconciliation::new(db.pool.clone()));
        let server = GrpcServer::new(GrpcConfig::default(), Arc::new(issuer.verifier()))
            .add_service(ReconciliationServiceServer::new(ReconciliationApi::new(Arc::clone(&app))));
        let (addr, serving) = server.bind("127.0.0.1:0".parse().unwrap(), shutdown.clone()).await.unwrap();
        tokio::spawn(serving);
        let channel = cobro_kit::grpc::connect(&format!("http://{addr}"), Duration::from_secs(30)).await.unwrap();
        H {
            db,
            issuer,
            tenant: Uuid::now_v7(),
            app,
            client: ReconciliationServiceClient::new(channel),
            _shutdown: shutdown,
        }
    }

    fn req<T>(&self, message: T) -> Request<T> {
        self.req_as(self.tenant, &STAFF, message)
    }

    fn req_as<T>(&self, tenant: Uuid, permissions: &[&str], message: T) -> Request<T> {
        let token = self.issuer.token(tenant, PrincipalKind::User, permissions);
        let mut request = Request::new(message);
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
    }

    async fn deliver(&self, kind: &str, payload: &impl Message) {
        let envelope = Envelope {
            id: Uuid::now_v7().to_string(),
            r#type: kind.into(),
            tenant_id: self.tenant.to_string(),
            aggregate_id: "x".into(),
            occurred_at: None,
            traceparent: String::new(),
            payload: payload.encode_to_vec(),
        };
        let mut tx = self.db.pool.begin().await.unwrap();
        Handler.handle(&mut tx, &envelope).await.unwrap();
        tx.commit().await.unwrap();
    }

    async fn customer(&self, name: &str) -> Uuid {
        let id = Uuid::now_v7();
        let event = CustomerUpserted {
            customer_id: cobro_kit::ids::format("cus", id),
            legal_name: name.into(),
            ..Default::default()
        };
        self.deliver("customer.upserted", &event).await;
        id
    }

    /// An issued invoice due in ten days, with its own RF reference.
    async fn invoice(&self, customer: Uuid, number: &str, amount: &str) -> (Uuid, String) {
        let id = Uuid::now_v7();
        let event = InvoiceChanged {
            invoice_id: cobro_kit::ids::format("inv", id),
            customer_id: cobro_kit::ids::format("cus", customer),
            number: number.into(),
            status: "open".into(),
            total: money(amount, "MXN"),
            balance: money(amount, "MXN"),
            due_date: (Utc::now().date_naive() + Days::new(10)).to_string(),
        };
        self.deliver("invoice.issued", &event).await;
        let reference = rf(&format!("{}I{}", number.replace('-', ""), &id.simple().to_string()[..6]).to_uppercase());
        let assigned = ReferenceAssigned {
            reference: reference.clone(),
            customer_id: cobro_kit::ids::format("cus", customer),
            invoice_id: cobro_kit::ids::format("inv", id),
        };
        self.deliver("reference.assigned", &assigned).await;
        (id, reference)
    }

    async fn account(&self, number: &str, currency: &str) -> String {
        let request =
            pb::CreateBankAccountRequest { name: "Operating".into(), number: number.into(), currency: currency.into() };
        self.client.clone().create_bank_account(self.req(request)).await.unwrap().into_inner().id
    }

    async fn save_mapping(&self) {
        let mapping = pb::CsvMapping {
            name: MAPPING.into(),
            delimiter: ",".into(),
            date_format: "%Y-%m-%d".into(),
            booking_date: "Date".into(),
            amount: "Amount".into(),
            currency: "Currency".into(),
            default_currency: "MXN".into(),
            counterparty_name: "Payer".into(),
            counterparty_account: "Account".into(),
            reference: "Reference".into(),
            remittance: "Details".into(),
            entry_id: "Id".into(),
            ..Default::default()
        };
        self.client.clone().save_csv_mapping(self.req(mapping)).await.unwrap();
    }

    /// Upload a CSV export in 7-byte chunks, as a slow client would.
    async fn upload(&self, account: &str, rows: &[[&str; 7]]) -> Result<pb::ImportStatementResponse, tonic::Status> {
        let mut file = String::from("Id,Date,Amount,Currency,Payer,Account,Reference,Details\n");
        let today = Utc::now().date_naive().to_string();
        for r in rows {
            file.push_str(&format!("{},{today},{},{},{},{},{},{}\n", r[0], r[1], r[2], r[3], r[4], r[5], r[6]));
        }
        self.upload_bytes(account, MAPPING, file.into_bytes(), 7).await
    }

    async fn upload_bytes(
        &self,
        account: &str,
        mapping: &str,
        file: Vec<u8>,
        chunk: usize,
    ) -> Result<pb::ImportStatementResponse, tonic::Status> {
        let mut chunks: Vec<pb::ImportStatementChunk> =
            file.chunks(chunk).map(|c| pb::ImportStatementChunk { data: c.to_vec(), ..Default::default() }).collect();
        if chunks.is_empty() {
            chunks.push(pb::ImportStatementChunk::default());
        }
        chunks[0].bank_account_id = account.into();
        chunks[0].csv_mapping = mapping.into();
        let stream = tokio_stream::iter(chunks);
        self.client.clone().import_statement(self.req(stream)).await.map(|r| r.into_inner())
    }

    async fn matches(&self, status: &str) -> Vec<pb::Match> {
        let request = pb::ListMatchesRequest { status: status.into(), ..Default::default() };
        self.client.clone().list_matches(self.req(request)).await.unwrap().into_inner().matches
    }

    async fn discrepancies(&self) -> Vec<pb::Discrepancy> {
        let request = pb::ListDiscrepanciesRequest::default();
        self.client.clone().list_discrepancies(self.req(request)).await.unwrap().into_inner().discrepancies
    }

    async fn events<T: Message + Default>(&self, kind: &str) -> Vec<T> {
        let rows: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT envelope FROM outbox WHERE event_type = $1 ORDER BY created_at, event_id")
                .bind(kind)
                .fetch_all(&self.db.pool)
                .await
                .unwrap();
        rows.iter().map(|r| T::decode(Envelope::decode(r.as_slice()).unwrap().payload.as_slice()).unwrap()).collect()
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(&self.db.pool).await.unwrap()
    }

    async fn set_threshold(&self, threshold: &str) {
        let settings = pb::Settings {
            auto_confirm_threshold: threshold.into(),
            unmatched_after_days: 5,
            date_window_days: 30,
            payout_tolerance: "0.50".into(),
        };
        self.client.clone().update_settings(self.req(settings)).await.unwrap();
    }
}

fn field_of(status: &tonic::Status) -> String {
    let detail = cobro_proto::common::v1::ErrorDetail::decode(status.details()).unwrap_or_default();
    detail.field
}

#[tokio::test]
async fn credits_quoting_a_reference_or_an_invoice_number_pay_their_invoices_once() {
    let h = H::new().await;
    let acme = h.customer("Comercializadora Acme S.A. de C.V.").await;
    let (a, ref_a) = h.invoice(acme, "F-1001", "1500.00").await;
    let (b, _) = h.invoice(acme, "F-1002", "800.00").await;
    let (c, _) = h.invoice(acme, "F-1003", "999.00").await;
    let account = h.account("002180700123456789", "MXN").await;
    h.save_mapping().await;

    let rows = [
        ["B1", "1500.00", "MXN", "ACME SA DE CV", "012180001234567890", &ref_a, "pago"],
        ["B2", "800.00", "MXN", "ACME SA DE CV", "012180001234567890", "", "Pago factura F-1002"],
        ["B3", "123.45", "MXN", "Desconocido", "", "", "transferencia"],
        ["B4", "-50.00", "MXN", "Banco", "", "", "comision"],
    ];
    let done = h.upload(&account, &rows).await.unwrap();
    assert_eq!((done.format.as_str(), done.lines_read, done.lines_new), ("csv", 4, 4));
    let run = done.matching.unwrap();
    assert_eq!((run.lines_considered, run.confirmed, run.suggested), (3, 2, 0), "{run:?}");

    let confirmed = h.matches("confirmed").await;
    assert_eq!(confirmed.len(), 2);
    assert!(confirmed.iter().all(|m| m.decided_by == "auto"));
    let rules: Vec<&str> = confirmed.iter().map(|m| m.rule.as_str()).collect();
    assert!(rules.contains(&"reference") && rules.contains(&"invoice_number"), "{rules:?}");

    // Invoicing hears of each payment once, for the invoices matched.
    let paid: Vec<PaymentReceived> = h.events("payment.received").await;
    assert_eq!(paid.len(), 2);
    let mut invoices: Vec<String> = paid.iter().flat_map(|p| p.invoice_ids.clone()).collect();
    invoices.sort();
    let mut want = vec![cobro_kit::ids::format("inv", a), cobro_kit::ids::format("inv", b)];
    want.sort();
    assert_eq!(invoices, want);
    assert!(paid.iter().all(|p| p.method == "transfer" && p.payment_id.starts_with("rcm_")));
    let decided: Vec<MatchDecided> = h.events("reconciliation.match_confirmed").await;
    assert_eq!(decided.len(), 2);
    assert!(decided.iter().all(|d| d.customer_id == cobro_kit::ids::format("cus", acme)));

    // Until invoicing's balances come back, the money is pending: matching again pays nothing twice.
    let again = h.client.clone().run_matching(h.req(pb::RunMatchingRequest {})).await.unwrap().into_inner();
    assert_eq!((again.confirmed, again.suggested), (0, 0));
    let applied = PaymentApplied {
        payment_id: paid[0].payment_id.clone(),
        invoice_id: paid[0].invoice_ids[0].clone(),
        installment_id: String::new(),
        amount: paid[0].amount.clone(),
        balance: money("0", "MXN"),
    };
    h.deliver("invoice.payment_applied", &applied).await;
    assert_eq!(h.count("SELECT count(*) FROM invoices WHERE pending <> 0").await, 1);
    assert_eq!(h.count("SELECT count(*) FROM pending_payments").await, 1);

    // The same file again imports nothing and pays nothing.
    let repeat = h.upload(&account, &rows).await.unwrap();
    assert_eq!((repeat.lines_new, h.events::<PaymentReceived>("payment.received").await.len()), (0, 2));
    assert_eq!(h.count("SELECT count(*) FROM invoices WHERE balance - pending > 0").await, 1, "only {c} is open");
    h.db.drop_schema().await;
}

#[tokio::test]
async fn suggestions_wait_for_a_person_and_every_decision_is_audited() {
    let h = H::new().await;
    h.set_threshold("0.99").await;
    let acme = h.customer("Comercializadora Acme S.A. de C.V.").await;
    let (a, _) = h.invoice(acme, "F-2001", "4321.09").await;
    let (_b, _) = h.invoice(acme, "F-2002", "777.70").await;
    let account = h.account("002180700123456789", "MXN").await;
    h.save_mapping().await;
    let rows = [
        ["C1", "4321.09", "MXN", "COMERCIALIZADORA ACME", "", "", "pago marzo"],
        ["C2", "777.70", "MXN", "Comercializadora ACME SA", "", "", "pago"],
    ];
    let run = h.upload(&account, &rows).await.unwrap().matching.unwrap();
    assert_eq!((run.confirmed, run.suggested), (0, 2), "below the threshold nothing is confirmed: {run:?}");
    assert!(h.events::<PaymentReceived>("payment.received").await.is_empty());

    let suggested = h.matches("suggested").await;
    let (first, second) = (&suggested[0], &suggested[1]);
    let mut client = h.client.clone();
    let confirmed = client
        .confirm_match(h.req(pb::DecideMatchRequest { match_id: first.id.clone(), reason: "checked".into() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(confirmed.status, "confirmed");
    assert!(!confirmed.decided_by.is_empty() && confirmed.decided_by != "auto");
    assert_eq!(h.events::<PaymentReceived>("payment.received").await.len(), 1);
    let again =
        client.confirm_match(h.req(pb::DecideMatchRequest { match_id: first.id.clone(), ..Default::default() })).await;
    assert_eq!(again.unwrap_err().code(), Code::FailedPrecondition);

    let rejected = client
        .reject_match(h.req(pb::DecideMatchRequest { match_id: second.id.clone(), reason: "not theirs".into() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rejected.status, "rejected");
    let rerun = client.run_matching(h.req(pb::RunMatchingRequest {})).await.unwrap().into_inner();
    assert_eq!((rerun.lines_considered, rerun.suggested), (1, 0), "a rejected suggestion is not made again");

    // Undoing a confirmed match needs a reason and tells the books.
    let no_reason =
        client.unmatch(h.req(pb::DecideMatchRequest { match_id: first.id.clone(), ..Default::default() })).await;
    assert_eq!(field_of(&no_reason.unwrap_err()), "reason");
    let reversed = client
        .unmatch(h.req(pb::DecideMatchRequest { match_id: first.id.clone(), reason: "wrong customer".into() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reversed.status, "reversed");
    let undone: Vec<MatchDecided> = h.events("reconciliation.match_reversed").await;
    assert_eq!(undone.len(), 1);
    assert_eq!(undone[0].items[0].invoice_id, cobro_kit::ids::format("inv", a));
    assert_eq!(h.count("SELECT count(*) FROM invoices WHERE pending <> 0").await, 0, "the invoice is open again");
    let rerun = client.run_matching(h.req(pb::RunMatchingRequest {})).await.unwrap().into_inner();
    assert_eq!(rerun.suggested, 1, "the freed line is suggested again");

    let actions: Vec<(String, String)> =
        sqlx::query_as("SELECT action, actor FROM match_audit ORDER BY id").fetch_all(&h.db.pool).await.unwrap();
    let names: Vec<&str> = actions.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(names, ["suggested", "suggested", "confirmed", "rejected", "reversed", "suggested"]);
    assert!(actions[..2].iter().all(|(_, actor)| actor.is_empty()), "nobody decided a suggestion yet");
    assert!(actions[2..5].iter().all(|(_, actor)| !actor.is_empty() && actor != "auto"), "{actions:?}");
    h.db.drop_schema().await;
}

#[tokio::test]
async fn manual_matches_name_the_bad_field_and_write_nothing() {
    let h = H::new().await;
    let acme = h.customer("Acme").await;
    let other = h.customer("Otra").await;
    let (a, _) = h.invoice(acme, "F-3001", "100.00").await;
    let (b, _) = h.invoice(acme, "F-3002", "50.00").await;
    let (x, _) = h.invoice(other, "F-3003", "20.00").await;
    let account = h.account("002180700123456789", "MXN").await;
    h.save_mapping().await;
    h.upload(&account, &[["D1", "140.00", "MXN", "Someone", "", "", "varios"]]).await.unwrap();
    let line = h
        .client
        .clone()
        .list_bank_lines(h.req(pb::ListBankLinesRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .lines
        .remove(0);
    let item = |invoice: Uuid, amount: &str| pb::ManualItem {
        invoice_id: cobro_kit::ids::format("inv", invoice),
        installment_id: String::new(),
        amount: amount.into(),
    };
    let cases = [
        (vec![item(a, ""), item(b, "")], "items"),
        (vec![item(a, ""), item(x, "")], "items[1].invoice_id"),
        (vec![item(a, "100.01")], "items[0].amount"),
        (vec![item(a, "abc")], "items[0].amount"),
        (vec![item(a, ""), item(a, "")], "items[1].invoice_id"),
        (vec![], "items"),
    ];
    for (items, field) in cases {
        let request = pb::ManualMatchRequest { bank_line_id: line.id.clone(), items, reason: String::new() };
        let err = h.client.clone().manual_match(h.req(request)).await.unwrap_err();
        assert_eq!((err.code(), field_of(&err).as_str()), (Code::InvalidArgument, field), "{err:?}");
    }
    assert_eq!(h.count("SELECT count(*) FROM matches").await, 0);
    assert_eq!(h.count("SELECT count(*) FROM outbox").await, 0);

    let request = pb::ManualMatchRequest {
        bank_line_id: line.id.clone(),
        items: vec![item(a, ""), item(b, "40.00")],
        reason: "phone call".into(),
    };
    let m = h.client.clone().manual_match(h.req(request)).await.unwrap().into_inner();
    assert_eq!((m.rule.as_str(), m.status.as_str(), m.items.len()), ("manual", "confirmed", 2));
    let paid: Vec<PaymentReceived> = h.events("payment.received").await;
    assert_eq!(paid[0].amount, money("140", "MXN"));
    h.db.drop_schema().await;
}

#[tokio::test]
async fn discrepancies_are_raised_once_listed_and_announced() {
    let h = H::new().await;
    let acme = h.customer("Acme").await;
    let (_a, ref_a) = h.invoice(acme, "F-4001", "100.00").await;
    let (_b, ref_b) = h.invoice(acme, "F-4002", "200.00").await;
    let (_c, ref_c) = h.invoice(acme, "F-4003", "300.00").await;
    let mxn = h.account("002180700123456789", "MXN").await;
    let usd = h.account("002180700123456789", "USD").await;
    h.save_mapping().await;
    let payout = PayoutCreated {
        payout_id: cobro_kit::ids::format("po", Uuid::now_v7()),
        connector: "stripe".into(),
        payout_ref: "po_TEST12345".into(),
        day: Utc::now().date_naive().to_string(),
        gross: money("1000.00", "MXN"),
        fees: money("30.00", "MXN"),
        refunds: money("0", "MXN"),
        net: money("960.00", "MXN"),
    };
    h.deliver("payout.created", &payout).await;

    let rows = [
        // 120 for a 100 invoice: paid, 20 left as credit.
        ["E1", "120.00", "MXN", "Acme", "", &ref_a, ""],
        // Part of F-4002 only.
        ["E2", "150.00", "MXN", "Acme", "", &ref_b, ""],
        // F-4003 paid, then paid again.
        ["E3", "300.00", "MXN", "Acme", "", &ref_c, ""],
        ["E4", "300.00", "MXN", "Acme", "", &ref_c, ""],
        // The payout, short by 10.
        ["E5", "950.00", "MXN", "STRIPE", "", "po_TEST12345", ""],
        // Nobody's.
        ["E6", "42.00", "MXN", "?", "", "", ""],
    ];
    h.upload(&mxn, &rows).await.unwrap();
    // An overpayment may wait for a person; once confirmed it is reported.
    for m in h.matches("suggested").await {
        let decide = pb::DecideMatchRequest { match_id: m.id.clone(), reason: "ok".into() };
        h.client.clone().confirm_match(h.req(decide)).await.unwrap();
    }
    // A dollar payment quoting a peso invoice.
    let (_d, ref_d) = h.invoice(acme, "F-4004", "50.00").await;
    h.upload(&usd, &[["U1", "50.00", "USD", "Acme", "", &ref_d, ""]]).await.unwrap();
    let later = Utc::now().date_naive() + Days::new(10);
    assert_eq!(h.app.check_unmatched(h.tenant, later).await.unwrap(), 4, "E4, E5, E6 and U1 are left");
    assert_eq!(h.app.check_unmatched(h.tenant, later).await.unwrap(), 0, "raised once");

    let mut kinds: Vec<String> = h.discrepancies().await.iter().map(|d| d.kind.clone()).collect();
    kinds.sort();
    let mut want = vec![
        "amount_mismatch",
        "currency_mismatch",
        "duplicate_payment",
        "overpayment",
        "payout_mismatch",
        "payout_mismatch",
        "unmatched_credit",
        "unmatched_credit",
        "unmatched_credit",
        "unmatched_credit",
    ];
    want.sort();
    assert_eq!(kinds, want);
    assert_eq!(
        h.events::<cobro_proto::events::v1::DiscrepancyRaised>("reconciliation.discrepancy_raised").await.len(),
        10
    );

    let open = h.discrepancies().await.remove(0);
    let mut client = h.client.clone();
    let empty = client
        .resolve_discrepancy(
            h.req(pb::ResolveDiscrepancyRequest { discrepancy_id: open.id.clone(), resolution: " ".into() }),
        )
        .await;
    assert_eq!(field_of(&empty.unwrap_err()), "resolution");
    let resolved = client
        .resolve_discrepancy(h.req(pb::ResolveDiscrepancyRequest {
            discrepancy_id: open.id.clone(),
            resolution: "credit kept for next invoice".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.status, "resolved");
    h.db.drop_schema().await;
}

#[tokio::test]
async fn a_payout_is_matched_by_its_reference_within_the_tolerance() {
    let h = H::new().await;
    let payout = PayoutCreated {
        payout_id: cobro_kit::ids::format("po", Uuid::now_v7()),
        connector: "stripe".into(),
        payout_ref: "po_ABC123456".into(),
        day: Utc::now().date_naive().to_string(),
        gross: money("1000.00", "MXN"),
        fees: money("30.00", "MXN"),
        refunds: money("0", "MXN"),
        net: money("970.00", "MXN"),
    };
    h.deliver("payout.created", &payout).await;
    let account = h.account("002180700123456789", "MXN").await;
    h.save_mapping().await;
    let run = h.upload(&account, &[["P1", "970.30", "MXN", "STRIPE", "", "", "PO_ABC123456"]]).await.unwrap();
    assert_eq!(run.matching.unwrap().confirmed, 1);
    let m = h.matches("confirmed").await.remove(0);
    assert_eq!((m.rule.as_str(), m.items[0].payout_id.as_str()), ("payout", payout.payout_id.as_str()));
    assert!(h.events::<PaymentReceived>("payment.received").await.is_empty(), "card payments were applied already");
    assert!(h.discrepancies().await.is_empty());
    h.db.drop_schema().await;
}

#[tokio::test]
async fn replicas_matching_at_once_pay_each_invoice_once() {
    let h = H::new().await;
    let acme = h.customer("Acme").await;
    let account = h.account("002180700123456789", "MXN").await;
    h.save_mapping().await;
    let mut refs = Vec::new();
    for i in 0..20 {
        refs.push(h.invoice(acme, &format!("F-5{i:03}"), &format!("{}.00", 100 + i)).await.1);
    }
    // Import without matching: the lines land first, then four replicas race.
    let statement_rows: Vec<[String; 7]> = refs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            [
                format!("R{i}"),
                format!("{}.00", 100 + i),
                "MXN".into(),
                "Acme".into(),
                String::new(),
                r.clone(),
                String::new(),
            ]
        })
        .collect();
    sqlx::query("INSERT INTO settings (tenant_id, auto_confirm_threshold) VALUES ($1, 1)")
        .bind(h.tenant)
        .execute(&h.db.pool)
        .await
        .unwrap();
    let borrowed: Vec<[&str; 7]> = statement_rows.iter().map(|r| std::array::from_fn(|k| r[k].as_str())).collect();
    let first = h.upload(&account, &borrowed).await.unwrap().matching.unwrap();
    assert_eq!(first.confirmed, 0, "threshold 1: nothing confirmed yet");
    sqlx::query("UPDATE settings SET auto_confirm_threshold = 0.9").execute(&h.db.pool).await.unwrap();
    sqlx::query("UPDATE matches SET status = 'rejected' WHERE status = 'suggested'").execute(&h.db.pool).await.unwrap();
    sqlx::query("DELETE FROM match_items").execute(&h.db.pool).await.unwrap();
    sqlx::query("UPDATE bank_lines SET status = 'unmatched'").execute(&h.db.pool).await.unwrap();

    let mut runs = Vec::new();
    for _ in 0..4 {
        let replica = Reconciliation::new(h.db.another_pool(4).await);
        let tenant = h.tenant;
        runs.push(tokio::spawn(async move { replica.run_matching(tenant).await.unwrap().confirmed }));
    }
    let mut total = 0;
    for run in runs {
        total += run.await.unwrap();
    }
    assert_eq!(total, 20);
    assert_eq!(h.events::<PaymentReceived>("payment.received").await.len(), 20);
    h.db.drop_schema().await;
}

#[tokio::test]
async fn invoices_arriving_after_the_statement_are_matched_by_the_background_job() {
    let h = H::new().await;
    let account = h.account("002180700123456789", "MXN").await;
    h.save_mapping().await;
    let acme = h.customer("Acme").await;
    let run = h.upload(&account, &[["L1", "640.00", "MXN", "Acme", "", "", "factura F-6001"]]).await.unwrap();
    assert_eq!(run.matching.unwrap().confirmed, 0);
    h.invoice(acme, "F-6001", "640.00").await;
    assert_eq!(h.app.rematch_dirty().await.unwrap(), 1);
    assert_eq!(h.matches("confirmed").await.len(), 1);
    assert_eq!(h.app.rematch_dirty().await.unwrap(), 0, "nothing is left marked");
    h.db.drop_schema().await;
}

#[tokio::test]
async fn the_audit_report_has_every_line_its_match_and_who_decided() {
    let h = H::new().await;
    let acme = h.customer("Acme").await;
    let (_a, ref_a) = h.invoice(acme, "F-7001", "10.00").await;
    let account = h.account("002180700123456789", "MXN").await;
    h.save_mapping().await;
    h.upload(&account, &[["A1", "10.00", "MXN", "Acme", "", &ref_a, ""], ["A2", "5.00", "MXN", "=cmd()", "", "", ""]])
        .await
        .unwrap();
    let today = Utc::now().date_naive().to_string();
    let export = |format: &str, from: &str, to: &str| pb::ExportReportRequest {
        from: from.into(),
        to: to.into(),
        format: format.into(),
    };
    let mut stream = h.client.clone().export_report(h.req(export("csv", &today, &today))).await.unwrap().into_inner();
    let mut body = Vec::new();
    let mut content_type = String::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        if content_type.is_empty() {
            content_type = chunk.content_type.clone();
        }
        body.extend(chunk.data);
    }
    let text = String::from_utf8(body).unwrap();
    assert_eq!(content_type, "text/csv");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("bank_line_id,"));
    assert!(text.contains(",reference,") && text.contains("F-7001=10") && text.contains(",auto,"), "{text}");
    assert!(text.contains("'=cmd()"), "payer text never runs as a formula: {text}");

    let mut stream = h.client.clone().export_report(h.req(export("json", &today, &today))).await.unwrap().into_inner();
    let mut body = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        body.extend(chunk.data);
    }
    let rows: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);

    for (request, field) in [
        (export("csv", "2026-13-01", &today), "from"),
        (export("csv", &today, "2020-01-01"), "to"),
        (export("xml", &today, &today), "format"),
    ] {
        let err = h.client.clone().export_report(h.req(request)).await.unwrap_err();
        assert_eq!(field_of(&err), field);
    }
    h.db.drop_schema().await;
}

#[tokio::test]
async fn bad_uploads_are_refused_whole_naming_what_is_wrong() {
    let h = H::new().await;
    let account = h.account("NL91ABNA0417164300", "EUR").await;
    h.save_mapping().await;
    let camt = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/testdata/statements/camt/camt053.v2.wrong.xml"
    ))
    .unwrap();
    let err = h.upload_bytes(&account, "", camt, 1000).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = h.upload_bytes(&account, "", b"hello".to_vec(), 1000).await.unwrap_err();
    assert!(err.message().contains("file"), "{err:?}");
    let err = h.upload_bytes(&account, "nope", b"a,b\n1,2\n".to_vec(), 1000).await.unwrap_err();
    assert_eq!(field_of(&err), "csv_mapping");
    let err = h.upload_bytes("bac_x", "", b"x".to_vec(), 1000).await.unwrap_err();
    assert_eq!(field_of(&err), "bank_account_id");
    // A broken CSV row: refused whole, nothing stored.
    let broken = "Id,Date,Amount,Currency,Payer,Account,Reference,Details\nA,2026-12-01,10.00,EUR,x,,,\nB,2026-13-01,5.00,EUR,y,,,\n";
    let err = h.upload_bytes(&account, MAPPING, broken.as_bytes().to_vec(), 1000).await.unwrap_err();
    assert!(err.message().contains("line 3"), "{err:?}");
    assert_eq!(h.count("SELECT count(*) FROM bank_lines").await, 0);
    // Over 100 MB: refused before parsing.
    let big = vec![b' '; 100 * 1024 * 1024 + 1];
    let err = h.upload_bytes(&account, "", big, 1024 * 1024).await.unwrap_err();
    assert_eq!(field_of(&err), "data");

    for (request, field) in [
        (pb::CreateBankAccountRequest { name: String::new(), number: "12345".into(), currency: "MXN".into() }, "name"),
        (pb::CreateBankAccountRequest { name: "a".into(), number: "12".into(), currency: "MXN".into() }, "number"),
        (
            pb::CreateBankAccountRequest { name: "a".into(), number: "12345".into(), currency: "PESO".into() },
            "currency",
        ),
    ] {
        let err = h.client.clone().create_bank_account(h.req(request)).await.unwrap_err();
        assert_eq!(field_of(&err), field);
    }
    let bad = pb::Settings { auto_confirm_threshold: "1.5".into(), unmatched_after_days: 5, ..Default::default() };
    let err = h.client.clone().update_settings(h.req(bad)).await.unwrap_err();
    assert_eq!(field_of(&err), "auto_confirm_threshold");
    h.db.drop_schema().await;
}

#[tokio::test]
async fn another_tenants_ids_answer_not_found_and_portal_contacts_see_nothing() {
    let h = H::new().await;
    h.set_threshold("0.99").await;
    let acme = h.customer("Acme Industrial").await;
    h.invoice(acme, "F-8001", "321.00").await;
    let account = h.account("002180700123456789", "MXN").await;
    h.save_mapping().await;
    h.upload(&account, &[["T1", "321.00", "MXN", "ACME INDUSTRIAL", "", "", ""]]).await.unwrap();
    let suggestion = h.matches("suggested").await.remove(0);
    let other = Uuid::now_v7();
    let mut client = h.client.clone();
    let decide = pb::DecideMatchRequest { match_id: suggestion.id.clone(), reason: "x".into() };
    assert_eq!(client.confirm_match(h.req_as(other, &STAFF, decide.clone())).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(client.reject_match(h.req_as(other, &STAFF, decide.clone())).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(client.unmatch(h.req_as(other, &STAFF, decide.clone())).await.unwrap_err().code(), Code::NotFound);
    let manual = pb::ManualMatchRequest {
        bank_line_id: suggestion.bank_line_id.clone(),
        items: vec![pb::ManualItem { invoice_id: suggestion.items[0].invoice_id.clone(), ..Default::default() }],
        reason: String::new(),
    };
    assert_eq!(client.manual_match(h.req_as(other, &STAFF, manual)).await.unwrap_err().code(), Code::NotFound);
    let upload =
        pb::ImportStatementChunk { bank_account_id: account.clone(), csv_mapping: String::new(), data: b"x".to_vec() };
    let err = client.import_statement(h.req_as(other, &STAFF, tokio_stream::iter([upload]))).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let lines = client.list_bank_lines(h.req_as(other, &STAFF, pb::ListBankLinesRequest::default())).await.unwrap();
    assert!(lines.into_inner().lines.is_empty());
    let found = client.list_matches(h.req_as(other, &STAFF, pb::ListMatchesRequest::default())).await.unwrap();
    assert!(found.into_inner().matches.is_empty());

    // A portal contact, or staff without recon:confirm, cannot decide.
    let contact = h.issuer.token(h.tenant, PrincipalKind::Customer, &STAFF);
    let mut request = Request::new(decide.clone());
    request.metadata_mut().insert("authorization", format!("Bearer {contact}").parse().unwrap());
    assert_eq!(client.confirm_match(request).await.unwrap_err().code(), Code::PermissionDenied);
    let viewer = client.confirm_match(h.req_as(h.tenant, &["recon:read"], decide)).await.unwrap_err();
    assert_eq!(viewer.code(), Code::PermissionDenied);
    h.db.drop_schema().await;
}

#[tokio::test]
async fn a_matching_run_that_dies_half_way_leaves_nothing_and_the_tenant_marked() {
    let h = H::new().await;
    let account = h.account("002180700123456789", "MXN").await;
    h.save_mapping().await;
    let acme = h.customer("Acme").await;
    h.upload(&account, &[["K1", "75.00", "MXN", "Acme", "", "", "factura F-9001"]]).await.unwrap();
    h.invoice(acme, "F-9001", "75.00").await;

    // Another replica holds the tenant's matching lock; this one gives up after 300 ms, as a
    // process killed mid-run would: its transaction never commits.
    let mut holder = h.db.pool.begin().await.unwrap();
    cobro_reconciliation::store::lock_tenant(&mut holder, h.tenant).await.unwrap();
    let impatient = h.db.another_pool(1).await;
    sqlx::query("SET statement_timeout = '300ms'").execute(&impatient).await.unwrap();
    assert!(Reconciliation::new(impatient).rematch_dirty().await.is_err());
    holder.rollback().await.unwrap();

    assert_eq!(h.count("SELECT count(*) FROM matches").await, 0);
    assert_eq!(h.count("SELECT count(*) FROM outbox").await, 0);
    assert_eq!(h.count("SELECT count(*) FROM dirty_tenants").await, 1, "still marked for the next pass");
    assert_eq!(h.app.rematch_dirty().await.unwrap(), 1);
    assert_eq!(h.matches("confirmed").await.len(), 1);
    assert_eq!(h.events::<PaymentReceived>("payment.received").await.len(), 1);
    h.db.drop_schema().await;
}

#[tokio::test]
async fn a_customers_own_reference_identifies_the_payer_for_a_match_by_amount() {
    let h = H::new().await;
    let acme = h.customer("Acme").await;
    let other = h.customer("Beta").await;
    let (a, _) = h.invoice(acme, "F-9101", "250.00").await;
    h.invoice(other, "F-9102", "250.00").await;
    let customer_ref = rf("C4471");
    let assigned = ReferenceAssigned {
        reference: customer_ref.clone(),
        customer_id: cobro_kit::ids::format("cus", acme),
        invoice_id: String::new(),
    };
    h.deliver("reference.assigned", &assigned).await;
    let account = h.account("002180700123456789", "MXN").await;
    h.save_mapping().await;
    // Two customers owe 250.00; only the quoted customer reference tells them apart.
    let run = h.upload(&account, &[["Q1", "250.00", "MXN", "", "", &customer_ref, ""]]).await.unwrap();
    assert_eq!(run.matching.unwrap().confirmed, 1);
    let m = h.matches("confirmed").await.remove(0);
    assert_eq!(
        (m.rule.as_str(), m.items[0].invoice_id.as_str()),
        ("amount_and_customer", cobro_kit::ids::format("inv", a).as_str())
    );
    h.db.drop_schema().await;
}
