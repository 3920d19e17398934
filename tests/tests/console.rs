//! The staff console through its pages: the dashboard's charts, customers and invoices made
//! through the forms, the hardship inbox, a bank statement upload, and who may not come in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cobro_e2e::platform::{Platform, Tenant, bearer};
use cobro_e2e::web::{Web, csrf};
use cobro_kit::testing::eventually;
use cobro_proto::identity::v1 as idpb;
use cobro_proto::invoicing::v1 as invpb;

/// The portal contact's own access token, as the portal would hold it.
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

/// The first `prefix…` id in a page after `after`.
fn id_after(html: &str, after: &str, prefix: &str) -> String {
    let start = html.find(after).unwrap_or_else(|| panic!("{after} not in the page:\n{html}"));
    let rest = &html[start..];
    let at = rest.find(prefix).unwrap_or_else(|| panic!("no {prefix} id after {after}"));
    rest[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
}

#[tokio::test]
async fn staff_run_collections_from_the_console() {
    let platform = Platform::start().await;
    let t = platform.tenant().await;
    let ferreteria = platform.customer(&t, "Ferretería La Estrella", "es").await;
    let open = platform.open_invoice(&t, &ferreteria, "1500.00").await;

    let web = Web::new(&platform.gateway_url);
    web.sign_in_staff(&t).await;

    // The dashboard: KPIs and the aging chart with the open invoice in the current bucket.
    let dashboard = web.get("/console?lang=en&currency=MXN").await;
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    let body = &dashboard.body;
    assert!(body.contains("Days sales outstanding") && body.contains("Overdue"), "{body}");
    let svg_start = body.find("<svg").expect("an SVG chart");
    let svg = &body[svg_start..svg_start + body[svg_start..].find("</svg>").unwrap()];
    assert!(svg.contains("role=\"img\"") && svg.contains("aria-label=\"Receivables aging chart"), "{svg}");
    assert!(svg.contains("<title>Current: 1,500.00 MXN</title>"), "the open invoice is current:\n{svg}");
    let current = svg.split("<title>Current:").nth(1).unwrap();
    let height = current.split("height=\"").nth(1).unwrap().split('"').next().unwrap();
    assert_eq!(height, "160", "the only open amount fills the chart");
    assert!(body.contains("<td class=\"num\">1,500.00 MXN</td>"), "the numbers are in a table too");
    assert_eq!(body.matches("role=\"img\"").count(), 2, "aging and forecast charts");
    let dso = body.split("Days sales outstanding").nth(1).unwrap().split("</li>").next().unwrap();
    assert!(dso.contains(" days</span>"), "a sale in the window gives a DSO: {dso}");
    let es = web.get("/console?lang=es").await;
    assert!(es.body.contains("<title>Al corriente: 1.500,00 MXN</title>"), "{}", es.body);
    web.get("/console?lang=en").await;

    // A customer through the form; a refusal names the field and keeps what was typed.
    let page = web.get("/console/customers").await;
    assert_eq!(page.status, 200);
    let token = csrf(&page.body);
    let refused = web
        .post(
            "/console/customers",
            &[
                ("csrf_token", &token),
                ("legal_name", "Papelería Sin Moneda"),
                ("currency", "XX"),
                ("payment_terms_days", "15"),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains("currency"), "the message names the field: {}", refused.body);
    assert!(refused.body.contains("value=\"Papelería Sin Moneda\""), "the form keeps its values");
    let created = web
        .post(
            "/console/customers",
            &[
                ("csrf_token", &token),
                ("legal_name", "Papelería Central"),
                ("tax_id", "PCE010101AB1"),
                ("tax_country", "MX"),
                ("currency", "MXN"),
                ("payment_terms_days", "15"),
                ("contact_name", "Lucía"),
                ("contact_email", "lucia@papeleria.example.com"),
                ("contact_language", "es"),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let customer_path = created.location.clone().unwrap();
    let customer_id = customer_path.trim_start_matches("/console/customers/").to_owned();
    assert!(customer_id.starts_with("cus_"), "{customer_path}");
    let detail = web.get(&customer_path).await;
    assert!(detail.status == 200 && detail.body.contains("Papelería Central") && detail.body.contains("PCE010101AB1"));
    let edited = web
        .post(
            &customer_path,
            &[
                ("csrf_token", &token),
                ("legal_name", "Papelería Central del Norte"),
                ("tax_country", "MX"),
                ("currency", "MXN"),
                ("payment_terms_days", "quince"),
            ],
        )
        .await;
    assert_eq!(edited.status, 422);
    assert!(edited.body.contains("payment_terms_days:") && edited.body.contains("value=\"quince\""));
    let edited = web
        .post(
            &customer_path,
            &[
                ("csrf_token", &token),
                ("legal_name", "Papelería Central del Norte"),
                ("tax_id", "PCE010101AB1"),
                ("tax_country", "MX"),
                ("currency", "MXN"),
                ("payment_terms_days", "15"),
                ("contact_name", "Lucía"),
                ("contact_email", "lucia@papeleria.example.com"),
            ],
        )
        .await;
    assert_eq!((edited.status, edited.location.as_deref()), (303, Some(customer_path.as_str())));
    assert!(web.get(&customer_path).await.body.contains("Papelería Central del Norte"));

    // An invoice of three lines through the form, then issued: invoicing has it open.
    let page = web.get(&format!("/console/invoices?customer_id={customer_id}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("name=\"description_2\""), "at least three line rows");
    let token = csrf(&page.body);
    let bad = web
        .post(
            "/console/invoices",
            &[
                ("csrf_token", &token),
                ("customer_id", &customer_id),
                ("description_0", "Papel"),
                ("quantity_0", "many"),
                ("unit_price_0", "10"),
            ],
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(bad.body.contains("quantity"), "the service's message names the field: {}", bad.body);
    let draft = web
        .post(
            "/console/invoices",
            &[
                ("csrf_token", &token),
                ("customer_id", &customer_id),
                ("currency", ""),
                ("description_0", "Papel bond carta"),
                ("quantity_0", "2"),
                ("unit_price_0", "100.00"),
                ("tax_rate_0", "16"),
                ("description_1", "Engrapadora"),
                ("quantity_1", "1"),
                ("unit_price_1", "50.00"),
                ("tax_rate_1", ""),
                ("description_2", "Folders"),
                ("quantity_2", "10"),
                ("unit_price_2", "3.50"),
                ("tax_rate_2", "16"),
            ],
        )
        .await;
    assert_eq!(draft.status, 303, "{}", draft.body);
    let invoice_path = draft.location.clone().unwrap();
    let invoice_id = invoice_path.trim_start_matches("/console/invoices/").to_owned();
    let page = web.get(&invoice_path).await;
    assert!(page.body.contains("/issue\""), "a draft can be issued: {}", page.body);
    let issued = web.post(&format!("{invoice_path}/issue"), &[("csrf_token", &csrf(&page.body))]).await;
    assert_eq!((issued.status, issued.location.as_deref()), (303, Some(invoice_path.as_str())));
    let stored = platform
        .invoicing_client()
        .get_invoice(t.staff(invpb::GetInvoiceRequest { id: invoice_id.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.status, "open");
    assert!(!stored.number.is_empty());
    assert_eq!(stored.lines.len(), 3);
    // 200 + 32 tax, 50, 35 + 5.60 tax.
    assert_eq!(stored.total.unwrap().amount, "322.60");

    // A credit note and an explicit installment plan on it; a refused plan names its field.
    let page = web.get(&invoice_path).await;
    let token = csrf(&page.body);
    let credited = web
        .post(
            &format!("{invoice_path}/credit"),
            &[("csrf_token", &token), ("amount", "22.60"), ("reason", "Descuento")],
        )
        .await;
    assert_eq!(credited.status, 303, "{}", credited.body);
    let refused = web.post(&format!("{invoice_path}/plan"), &[("csrf_token", &token), ("count", "dos")]).await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("count:") && refused.body.contains("value=\"dos\""), "{}", refused.body);
    let today = chrono::Utc::now().date_naive();
    let (d1, d2) = ((today + chrono::Duration::days(10)).to_string(), (today + chrono::Duration::days(40)).to_string());
    let planned = web
        .post(
            &format!("{invoice_path}/plan"),
            &[
                ("csrf_token", &token),
                ("due_date_0", &d1),
                ("amount_0", "100.00"),
                ("due_date_1", &d2),
                ("amount_1", "200.00"),
            ],
        )
        .await;
    assert_eq!(planned.status, 303, "{}", planned.body);
    let stored = platform
        .invoicing_client()
        .get_invoice(t.staff(invpb::GetInvoiceRequest { id: invoice_id.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.balance.unwrap().amount, "300.00");
    assert_eq!(
        stored.installments.iter().map(|s| s.due_date.as_str()).collect::<Vec<_>>(),
        vec![d1.as_str(), d2.as_str()]
    );

    // The reminder policy: steps saved through the editor, laid on a sample due date.
    let page = web.get("/console/policies").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let saved = web
        .post(
            "/console/policies",
            &[
                ("csrf_token", &csrf(&page.body)),
                ("offset_days_0", "-3"),
                ("channel_0", "email"),
                ("tone_0", "friendly"),
                ("template_0", "reminder_friendly"),
                ("offset_days_1", "7"),
                ("channel_1", "email"),
                ("tone_1", "firm"),
                ("template_1", "reminder_firm"),
                ("send_at", "09:00"),
            ],
        )
        .await;
    assert_eq!((saved.status, saved.location.as_deref()), (303, Some("/console/policies")), "{}", saved.body);
    let sample = web.get("/console/policies?sample_due=2027-03-10").await;
    assert!(sample.body.contains("Mar 7, 2027") && sample.body.contains("Mar 17, 2027"), "{}", sample.body);
    // Notifications learns of invoices from their events: wait for the invoice's schedule.
    let mut preview = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        let page = web.get(&format!("/console/policies?invoice_id={open}")).await;
        assert_eq!(page.status, 200);
        preview = page.body;
        if preview.contains(&ferreteria.email) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(preview.contains(&ferreteria.email), "the invoice's planned reminders: {preview}");
    let bad = web
        .post("/console/policies", &[("csrf_token", &csrf(&page.body)), ("offset_days_0", "soon"), ("template_0", "x")])
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("offset_days"), "{}", bad.body);

    // A contact's "I can't pay" appears in the inbox; accepting it makes the plan.
    let token = contact_token(&platform, &t, &ferreteria.email, &ferreteria.password).await;
    let first = (chrono::Utc::now().date_naive() + chrono::Duration::days(40)).to_string();
    let request = platform
        .invoicing_client()
        .request_hardship(bearer(
            invpb::RequestHardshipRequest {
                invoice_id: open.clone(),
                reason: "Ventas bajas este trimestre".into(),
                installments: 3,
                first_date: first.clone(),
                note: String::new(),
            },
            &token,
        ))
        .await
        .expect("the contact asks for a plan")
        .into_inner();
    let inbox = web.get("/console/inbox").await;
    assert_eq!(inbox.status, 200, "{}", inbox.body);
    assert!(inbox.body.contains(&request.id) && inbox.body.contains("Ventas bajas este trimestre"), "{}", inbox.body);
    let accepted = web
        .post(
            &format!("/console/inbox/hardship/{}", request.id),
            &[("csrf_token", &csrf(&inbox.body)), ("decision", "accept"), ("note", "De acuerdo")],
        )
        .await;
    assert_eq!((accepted.status, accepted.location.as_deref()), (303, Some("/console/inbox")), "{}", accepted.body);
    let planned = platform
        .invoicing_client()
        .get_invoice(t.staff(invpb::GetInvoiceRequest { id: open.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(planned.installments.len(), 3);
    assert_eq!(planned.installments[0].due_date, first);
    let open_now = web.get("/console/inbox").await;
    assert!(!open_now.body.contains(&request.id), "resolved requests leave the open list");
    let resolved = web.get("/console/inbox?state=resolved").await;
    assert!(resolved.body.contains(&request.id) && resolved.body.contains("De acuerdo"));

    // A request turned down leaves the invoice as it was.
    let other = platform.open_invoice(&t, &ferreteria, "250.00").await;
    let declined = platform
        .invoicing_client()
        .request_hardship(bearer(
            invpb::RequestHardshipRequest {
                invoice_id: other.clone(),
                reason: "Otra vez".into(),
                installments: 2,
                first_date: first.clone(),
                note: String::new(),
            },
            &token,
        ))
        .await
        .expect("a second request")
        .into_inner();
    let inbox = web.get("/console/inbox").await;
    let rejected = web
        .post(
            &format!("/console/inbox/hardship/{}", declined.id),
            &[("csrf_token", &csrf(&inbox.body)), ("decision", "reject")],
        )
        .await;
    assert_eq!(rejected.status, 303, "{}", rejected.body);
    let again = web
        .post(
            &format!("/console/inbox/hardship/{}", declined.id),
            &[("csrf_token", &csrf(&inbox.body)), ("decision", "accept")],
        )
        .await;
    assert_eq!(again.status, 422, "a decided request cannot be decided again");
    assert!(again.body.contains("already rejected"), "{}", again.body);
    let untouched = platform
        .invoicing_client()
        .get_invoice(t.staff(invpb::GetInvoiceRequest { id: other.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert!(untouched.installments.is_empty());

    // Voided with a reason from the invoice's page.
    let page = web.get(&format!("/console/invoices/{other}")).await;
    let voided = web
        .post(&format!("/console/invoices/{other}/void"), &[("csrf_token", &csrf(&page.body)), ("reason", "Duplicada")])
        .await;
    assert_eq!(voided.status, 303, "{}", voided.body);
    let stored = platform
        .invoicing_client()
        .get_invoice(t.staff(invpb::GetInvoiceRequest { id: other }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.status, "void");

    // A dispute resolved with a credit.
    let disputed = platform.open_invoice(&t, &ferreteria, "400.00").await;
    let dispute = platform
        .invoicing_client()
        .open_dispute(bearer(
            invpb::OpenDisputeRequest { invoice_id: disputed.clone(), reason: "Llegaron dos cajas mojadas".into() },
            &token,
        ))
        .await
        .expect("the contact disputes")
        .into_inner();
    let inbox = web.get("/console/inbox").await;
    assert!(inbox.body.contains(&dispute.id) && inbox.body.contains("Ferretería La Estrella"), "{}", inbox.body);
    let resolved = web
        .post(
            &format!("/console/inbox/disputes/{}", dispute.id),
            &[("csrf_token", &csrf(&inbox.body)), ("credit_amount", "100.00"), ("note", "Dos cajas")],
        )
        .await;
    assert_eq!(resolved.status, 303, "{}", resolved.body);
    let stored = platform
        .invoicing_client()
        .get_invoice(t.staff(invpb::GetInvoiceRequest { id: disputed }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.balance.unwrap().amount, "300.00");

    // Users and API keys: a clerk created with a role; a key's secret shown once, then revoked.
    let page = web.get("/console/users").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<option value=\"ar_clerk\">"), "roles come from identity");
    let token = csrf(&page.body);
    let clerk = web
        .post(
            "/console/users",
            &[
                ("csrf_token", &token),
                ("display_name", "Pablo Cobranza"),
                ("email", &format!("pablo@{}.example.com", t.slug)),
                ("role", "ar_clerk"),
                ("password", "a long enough password for pablo"),
            ],
        )
        .await;
    assert_eq!(clerk.status, 303, "{}", clerk.body);
    let page = web.get("/console/users").await;
    assert!(page.body.contains("Pablo Cobranza"));
    let pablo = id_after(&page.body, "Pablo Cobranza", "usr_");
    let disabled = web.post(&format!("/console/users/{pablo}/disable"), &[("csrf_token", &token)]).await;
    assert_eq!(disabled.status, 303, "{}", disabled.body);
    let page = web.get("/console/users").await;
    let row = page.body.split("Pablo Cobranza").nth(1).unwrap().split("</tr>").next().unwrap();
    assert!(row.contains("Disabled") && !row.contains("/disable\""), "{row}");
    let made = web
        .post(
            "/console/keys",
            &[("csrf_token", &token), ("key_name", "ERP"), ("scopes", "invoices:read"), ("scopes", "customers:read")],
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.body);
    let secret: String = made
        .body
        .split("class=\"reference secret\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .expect("the secret, shown once")
        .to_owned();
    assert!(secret.len() > 20, "{secret}");
    let page = web.get("/console/users").await;
    assert!(page.body.contains("ERP") && !page.body.contains(&secret), "listed, never shown again");
    let key = id_after(&page.body, "/console/keys/", "key_");
    let revoked = web.post(&format!("/console/keys/{key}/revoke"), &[("csrf_token", &token)]).await;
    assert_eq!(revoked.status, 303, "{}", revoked.body);

    // A camt.053 statement uploaded to a new bank account produces bank lines.
    let page = web.get("/console/reconciliation").await;
    assert_eq!(page.status, 200);
    let made = web
        .post(
            "/console/reconciliation/accounts",
            &[
                ("csrf_token", &csrf(&page.body)),
                ("name", "Cuenta EUR"),
                ("number", "NL26VAYB8060476890"),
                ("currency", "EUR"),
            ],
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.body);
    let page = web.get("/console/reconciliation").await;
    let account = id_after(&page.body, "name=\"bank_account_id\"", "bac_");
    let file = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/testdata/statements/camt/camt053.v2.minimal.xml"
    ))
    .expect("the camt.053 sample");
    let imported = web
        .post_multipart(
            "/console/reconciliation/import",
            &[("csrf_token", &csrf(&page.body)), ("bank_account_id", &account)],
            ("file", "camt053.v2.minimal.xml", &file),
        )
        .await;
    assert_eq!(imported.status, 200, "{}", imported.body);
    assert!(imported.body.contains("camt.053"), "{}", imported.body);
    let read: u32 = imported
        .body
        .split("class=\"lines-read\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .and_then(|n| n.trim().parse().ok())
        .expect("the count of lines read");
    assert!(read >= 1, "{}", imported.body);
    assert!(imported.body.contains("class=\"bank-line\""), "the new lines are listed");
    let without_token = web
        .post_multipart("/console/reconciliation/import", &[("bank_account_id", &account)], ("file", "x.xml", &file))
        .await;
    assert_eq!(without_token.status, 403);

    // A form without the session's CSRF token is refused.
    let forged = web.post("/console/customers", &[("legal_name", "Forged")]).await;
    assert_eq!(forged.status, 403);
    let forged = web.post(&format!("/console/invoices/{invoice_id}/void"), &[("reason", "x")]).await;
    assert_eq!(forged.status, 403);

    // A portal contact is not staff: the console does not exist for them.
    let contact = Web::new(&platform.gateway_url);
    contact.sign_in_contact(&t, &ferreteria).await;
    for path in ["/console", "/console/customers", "/console/inbox", &invoice_path] {
        assert_eq!(contact.get(path).await.status, 404, "{path}");
    }
    let page = contact.get("/account").await;
    let refused =
        contact.post("/console/customers", &[("csrf_token", &csrf(&page.body)), ("legal_name", "Mine")]).await;
    assert_eq!(refused.status, 404);

    platform.stop().await;
}

/// A camt.053 statement of today's credits to `account` (MXN): (amount, payer, free text).
fn statement(account: &str, entries: &[(&str, &str, &str)]) -> Vec<u8> {
    let today = chrono::Utc::now().date_naive();
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.02\">\
         <BkToCstmrStmt><GrpHdr><MsgId>CONSOLE-{id}</MsgId><CreDtTm>{today}T18:00:00</CreDtTm></GrpHdr>\
         <Stmt><Id>STMT-{id}</Id><CreDtTm>{today}T18:00:00</CreDtTm><Acct><Id><IBAN>{account}</IBAN></Id><Ccy>MXN</Ccy></Acct>",
        id = uuid::Uuid::now_v7().simple()
    );
    for (i, (amount, payer, text)) in entries.iter().enumerate() {
        xml.push_str(&format!(
            "<Ntry><NtryRef>{i}</NtryRef><Amt Ccy=\"MXN\">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>\
             <BookgDt><Dt>{today}</Dt></BookgDt><ValDt><Dt>{today}</Dt></ValDt><AcctSvcrRef>CONSOLE-{i}-{id}</AcctSvcrRef>\
             <NtryDtls><TxDtls><RltdPties><Dbtr><Nm>{payer}</Nm></Dbtr></RltdPties>\
             <RmtInf><Ustrd>{text}</Ustrd></RmtInf></TxDtls></NtryDtls></Ntry>",
            id = uuid::Uuid::now_v7().simple()
        ));
    }
    xml.push_str("</Stmt></BkToCstmrStmt></Document>");
    xml.into_bytes()
}

#[tokio::test]
async fn bank_credits_are_matched_and_suggestions_decided_in_the_console() {
    let platform = Platform::start().await;
    let t = platform.tenant().await;
    let customer = platform.customer(&t, "Abarrotes Don Beto", "es").await;
    let paid = platform.open_invoice(&t, &customer, "777.00").await;
    let partly = platform.open_invoice(&t, &customer, "900.00").await;
    let number = |id: &str| {
        let id = id.to_owned();
        let mut invoicing = platform.invoicing_client();
        let request = t.staff(invpb::GetInvoiceRequest { id });
        async move { invoicing.get_invoice(request).await.unwrap().into_inner().number }
    };
    let (paid_number, partly_number) = (number(&paid).await, number(&partly).await);
    // Reconciliation learns of open invoices from invoicing's events; a consumer group that is
    // still rebalancing after an earlier platform can take a while.
    let db = platform.observe().await;
    let known = eventually(std::time::Duration::from_secs(120), || {
        let (db, tenant) = (db.clone(), t.id);
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM reconciliation.invoices WHERE tenant_id = $1")
                .bind(tenant)
                .fetch_one(&db)
                .await
                .is_ok_and(|n| n == 2)
        }
    })
    .await;
    assert!(known, "reconciliation never learned of the open invoices");

    let web = Web::new(&platform.gateway_url);
    web.sign_in_staff(&t).await;
    let page = web.get("/console/reconciliation?lang=en").await;
    assert!(page.body.contains("New bank account"), "no account yet: the form to make one");
    let made = web
        .post(
            "/console/reconciliation/accounts",
            &[
                ("csrf_token", &csrf(&page.body)),
                ("name", "BBVA MXN"),
                ("number", "012180001234567897"),
                ("currency", "MXN"),
            ],
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.body);
    let page = web.get("/console/reconciliation").await;
    let account = id_after(&page.body, "name=\"bank_account_id\"", "bac_");
    let file = statement(
        "012180001234567897",
        &[
            ("777.00", "ABARROTES DON BETO", &format!("Pago factura {paid_number}")),
            ("100.00", "ABARROTES DON BETO", &format!("Abono a {partly_number}")),
        ],
    );
    let imported = web
        .post_multipart(
            "/console/reconciliation/import",
            &[("csrf_token", &csrf(&page.body)), ("bank_account_id", &account)],
            ("file", "estado.xml", &file),
        )
        .await;
    assert_eq!(imported.status, 200, "{}", imported.body);
    assert!(imported.body.contains("class=\"lines-read\">2<"), "{}", imported.body);

    // Matching runs after the import; ask again until the partial payment has its suggestion.
    let mut page = imported.body;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        if page.contains("/confirm\"") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        page = web.post("/console/reconciliation/run", &[("csrf_token", &csrf(&page))]).await.body;
    }
    let suggestion = id_after(&page, "/console/reconciliation/matches/", "mat_");
    assert!(page.contains(&partly_number), "the partial payment is a suggestion: {page}");
    let confirmed = web
        .post(&format!("/console/reconciliation/matches/{suggestion}/confirm"), &[("csrf_token", &csrf(&page))])
        .await;
    assert_eq!(confirmed.status, 303, "{}", confirmed.body);
    let page = web.get("/console/reconciliation").await;
    assert!(!page.body.contains(&suggestion), "decided suggestions leave the queue");

    // One match by the rules, one by a person: half of the confirmed matches were automatic.
    let dashboard = web.get("/console?lang=en").await;
    assert!(dashboard.body.contains("50.0% (1 of 2)"), "{}", dashboard.body);
    let collected = dashboard.body.split("Collected this month").nth(1).unwrap().split("</li>").next().unwrap();
    assert!(collected.contains("877.00 MXN"), "both matched transfers count as collected: {collected}");
    platform.stop().await;
}
