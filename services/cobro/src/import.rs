//! `cobro import invoices FILE.csv`: an ERP export streamed through ImportInvoices.
//!
//! One row per invoice line; consecutive rows with the same external_id make one invoice. The
//! header names the columns (any order): external_id, customer_external_id, number, currency,
//! issue_date, due_date, description, quantity, unit_price, and optionally tax_name, tax_rate,
//! tax_inclusive (true/false), memo.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use clap::Subcommand;
use cobro_proto::invoicing::v1 as pb;
use cobro_proto::invoicing::v1::invoicing_service_client::InvoicingServiceClient;

use crate::Failure;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Upsert invoices by external id from a CSV file. The bearer token comes from COBRO_TOKEN
    /// (an API key exchanged at identity, scope invoices:write).
    Invoices {
        file: std::path::PathBuf,
        /// The invoicing service.
        #[arg(long, default_value = "http://127.0.0.1:50052")]
        url: String,
    },
}

/// RFC 4180 fields: commas, double quotes ("" inside quotes), CRLF or LF line ends.
pub fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, '\n') => {
                line += 1;
                field.push('\n');
            }
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, '"') => return Err(format!("line {line}: a quote inside an unquoted field")),
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                line += 1;
                row.push(std::mem::take(&mut field));
                if !(row.len() == 1 && row.first().is_some_and(String::is_empty)) {
                    rows.push(std::mem::take(&mut row));
                }
                row.clear();
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err(format!("line {line}: a quoted field is not closed"));
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    Ok(rows)
}

/// The import items of a CSV export.
pub fn items(text: &str) -> Result<Vec<pb::ImportInvoiceItem>, String> {
    let rows = parse_csv(text)?;
    let mut rows = rows.into_iter();
    let header = rows.next().ok_or("the file is empty")?;
    let columns: HashMap<String, usize> =
        header.iter().enumerate().map(|(i, h)| (h.trim().to_ascii_lowercase(), i)).collect();
    for required in ["external_id", "description", "quantity", "unit_price"] {
        if !columns.contains_key(required) {
            return Err(format!("the header has no {required} column"));
        }
    }
    let mut out: Vec<pb::ImportInvoiceItem> = Vec::new();
    for (n, row) in rows.enumerate() {
        let get =
            |name: &str| columns.get(name).and_then(|i| row.get(*i)).map(|v| v.trim().to_owned()).unwrap_or_default();
        let external_id = get("external_id");
        if external_id.is_empty() {
            return Err(format!("row {}: external_id is empty", n + 2));
        }
        let tax = (!get("tax_name").is_empty()).then(|| pb::TaxRate {
            name: get("tax_name"),
            rate_percent: get("tax_rate"),
            inclusive: matches!(get("tax_inclusive").to_ascii_lowercase().as_str(), "true" | "yes" | "1"),
        });
        let line = pb::LineInput {
            description: get("description"),
            quantity: get("quantity"),
            unit_price: get("unit_price"),
            discount: None,
            taxes: tax.into_iter().collect(),
        };
        match out.last_mut() {
            Some(last) if last.invoice.as_ref().is_some_and(|i| i.external_id == external_id) => {
                if let Some(invoice) = last.invoice.as_mut() {
                    invoice.lines.push(line);
                }
            }
            _ => out.push(pb::ImportInvoiceItem {
                invoice: Some(pb::CreateInvoiceRequest {
                    customer_id: String::new(),
                    external_id,
                    currency: get("currency"),
                    lines: vec![line],
                    discount: None,
                    memo: get("memo"),
                    issue_date: get("issue_date"),
                    due_date: get("due_date"),
                }),
                customer_external_id: get("customer_external_id"),
                number: get("number"),
            }),
        }
    }
    Ok(out)
}

pub async fn run(command: Command) -> Result<(), Failure> {
    let Command::Invoices { file, url } = command;
    let token = std::env::var("COBRO_TOKEN").map_err(|_| "set COBRO_TOKEN to a bearer token with invoices:write")?;
    let items = read(&file)?;
    let count = items.len();
    let channel = cobro_kit::grpc::connect(&url, Duration::from_secs(3600)).await?;
    let mut client = InvoicingServiceClient::new(channel).max_decoding_message_size(64 * 1024 * 1024);
    let mut request = tonic::Request::new(tokio_stream::iter(items));
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse()?);
    let results = client.import_invoices(request).await?.into_inner().results;
    let mut tally: HashMap<&str, usize> = HashMap::new();
    for r in &results {
        *tally.entry(r.outcome.as_str()).or_default() += 1;
        if r.outcome == "error" {
            println!("{}: {} ({}: {})", r.external_id, r.error_code, r.error_field, r.error_message);
        }
    }
    println!(
        "imported {count} invoices: created={} updated={} unchanged={} errors={}",
        tally.get("created").unwrap_or(&0),
        tally.get("updated").unwrap_or(&0),
        tally.get("unchanged").unwrap_or(&0),
        tally.get("error").unwrap_or(&0)
    );
    if tally.get("error").is_some_and(|n| *n > 0) { Err("some invoices were refused".into()) } else { Ok(()) }
}

fn read(file: &Path) -> Result<Vec<pb::ImportInvoiceItem>, Failure> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    items(&text).map_err(|e| format!("{}: {e}", file.display()).into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_commas_and_line_ends() {
        let rows = parse_csv("a,b\r\n\"x, y\",\"he said \"\"hi\"\"\"\n\"multi\nline\",z").unwrap();
        assert_eq!(rows, vec![vec!["a", "b"], vec!["x, y", "he said \"hi\""], vec!["multi\nline", "z"]]);
        assert!(parse_csv("a,\"open").is_err());
        assert!(parse_csv("a,b\"c").is_err());
    }

    #[test]
    fn consecutive_rows_of_one_invoice_become_its_lines() {
        let csv = "external_id,customer_external_id,number,currency,issue_date,due_date,description,quantity,unit_price,tax_name,tax_rate\n\
                   A1,C1,F-1,MXN,2026-11-01,2026-12-01,Bolts,10,1.50,IVA,16\n\
                   A1,C1,F-1,MXN,2026-11-01,2026-12-01,Nuts,20,0.75,IVA,16\n\
                   A2,C1,F-2,MXN,2026-11-02,2026-12-02,Washers,5,0.10,,\n";
        let parsed = items(csv).unwrap();
        assert_eq!(parsed.len(), 2);
        let first = parsed[0].invoice.as_ref().unwrap();
        assert_eq!((first.external_id.as_str(), first.lines.len()), ("A1", 2));
        assert_eq!(first.lines[1].taxes[0].rate_percent, "16");
        assert!(parsed[1].invoice.as_ref().unwrap().lines[0].taxes.is_empty());
        assert!(items("description,quantity\nx,1\n").unwrap_err().contains("external_id"));
    }
}
