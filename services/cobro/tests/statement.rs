//! `cobro statement parse`: a statement file in, its normalized lines out as JSON Lines.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/testdata/statements");

fn parse(file: &str) -> Output {
    let config_dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_cobro"))
        .env("COBRO_CONFIG_DIR", config_dir.path())
        .env("COBRO_ENV", "test")
        .args(["statement", "parse", file])
        .output()
        .unwrap()
}

fn lines(out: &Output) -> Vec<serde_json::Value> {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

const FIELDS: [&str; 13] = [
    "booking_date",
    "value_date",
    "amount",
    "currency",
    "direction",
    "counterparty_name",
    "counterparty_account",
    "end_to_end_id",
    "reference",
    "remittance",
    "bank_code",
    "statement_id",
    "entry_id",
];

fn well_formed(line: &serde_json::Value) {
    for field in FIELDS {
        assert!(line.get(field).is_some(), "{field} missing in {line}");
    }
    let amount: rust_decimal::Decimal = line["amount"].as_str().unwrap().parse().unwrap();
    assert!(amount >= rust_decimal::Decimal::ZERO);
    assert!(matches!(line["direction"].as_str(), Some("credit" | "debit")));
    assert!(chrono::NaiveDate::parse_from_str(line["booking_date"].as_str().unwrap(), "%Y-%m-%d").is_ok());
}

#[test]
fn every_format_prints_one_object_per_bank_transaction() {
    for (file, expected) in [
        ("mt940/abnamro__mt940.sta", "mt940/abnamro__mt940.json"),
        ("mt940/danskebank__MT940_DK_Example.sta", "mt940/danskebank__MT940_DK_Example.json"),
    ] {
        let printed = lines(&parse(&format!("{TESTDATA}/{file}")));
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(format!("{TESTDATA}/{expected}")).unwrap()).unwrap();
        let count: usize =
            json.as_array().unwrap().iter().map(|s| s["statement_lines"].as_array().map_or(0, Vec::len)).sum();
        assert_eq!(printed.len(), count, "{file}");
        printed.iter().for_each(well_formed);
    }
    for file in [
        "camt/camt053.v4.xml",
        "camt/camt053.v2.minimal.xml",
        "camt/camt053.v2.minimal.ultimate.xml",
        "camt/camt054.v2.xml",
        "camt/camt054.v2.with-account-name.xml",
        "camt/camt052.v2.xml",
        "camt/camt052.v2.other-account.xml",
        "camt/camt052.v2.with-account-name.xml",
        "mt940/jejik__ing.sta",
        "bai2/citi_example.bai2",
    ] {
        let printed = lines(&parse(&format!("{TESTDATA}/{file}")));
        assert!(!printed.is_empty(), "{file}");
        printed.iter().for_each(well_formed);
    }
}

#[test]
fn an_invalid_file_exits_non_zero_with_the_error() {
    for file in ["camt/camt053.v2.wrong.xml", "mt940/jejik__knab_broken.sta", "README.md"] {
        let path = format!("{TESTDATA}/../{file}").replace("statements/../README.md", "README.md");
        let path = if file.ends_with(".md") { path } else { format!("{TESTDATA}/{file}") };
        let out = parse(&path);
        assert!(!out.status.success(), "{file} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(file.rsplit('/').next().unwrap()), "the error names the file: {err}");
        assert!(out.stdout.is_empty(), "nothing printed for a refused file");
    }
    let out = parse("/nonexistent/statement.xml");
    assert!(!out.status.success());
}
