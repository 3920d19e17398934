//! `cobro bench recon`: the matcher over a labelled synthetic book of bank lines and open items,
//! timed and scored against the truth. No database: generation and matching are pure.

use std::time::Instant;

use chrono::NaiveDate;
use cobro_reconciliation::domain::matching::{DEFAULT_AUTO_CONFIRM, DEFAULT_WINDOW_DAYS, match_lines};
use cobro_reconciliation::domain::synthetic::{Shape, Tally, breakdown, generate, score};

use crate::Failure;

/// Open items per customer in the generated book.
const ITEMS_PER_CUSTOMER: u32 = 20;

/// Generate the book (not timed), match it (timed), score it at the default confidence
/// threshold; the last line printed is the result.
pub fn run(lines: u32, items: u32, seed: u64) -> Result<(), Failure> {
    let start = NaiveDate::from_ymd_opt(2026, 3, 1).ok_or("bad start date")?;
    let shape =
        Shape { customers: (items / ITEMS_PER_CUSTOMER).max(1) as usize, lines: lines as usize, items: items as usize };
    let generating = Instant::now();
    let book = generate(seed, shape, start);
    println!(
        "book: {} lines, {} open items, {} customers, seed {seed}, generated in {:.3} s",
        book.lines.len(),
        book.items.len(),
        shape.customers,
        generating.elapsed().as_secs_f64()
    );

    let matching = Instant::now();
    let matches = match_lines(&book.lines, &book.items, DEFAULT_WINDOW_DAYS);
    let elapsed = matching.elapsed();

    let figures = score(&book, &matches, DEFAULT_AUTO_CONFIRM);
    let detail = breakdown(&book, &matches, DEFAULT_AUTO_CONFIRM);
    println!("confirmed automatically at confidence >= {DEFAULT_AUTO_CONFIRM}");
    println!(
        "{:<24} {:>8} {:>8} {:>8} {:>10} {:>8} {:>8}",
        "scenario", "lines", "matched", "right", "confirmed", "right", "wrong"
    );
    for (scenario, t) in &detail.by_scenario {
        print_tally(&format!("{scenario:?}"), t);
    }
    println!(
        "{:<24} {:>8} {:>8} {:>8} {:>10} {:>8} {:>8}",
        "rule", "matches", "matched", "right", "confirmed", "right", "wrong"
    );
    for (rule, t) in &detail.by_rule {
        print_tally(&format!("{rule:?}"), t);
    }
    println!(
        "matched {} lines, confirmed {}, of which right {}; {} lines pay something",
        figures.matched, figures.confirmed, figures.correct, figures.lines
    );
    let seconds = elapsed.as_secs_f64();
    println!(
        "bench recon: lines={} seconds={seconds:.3} lines_per_s={} precision={:.4} coverage={:.4}",
        book.lines.len(),
        per_second(book.lines.len(), seconds),
        figures.precision().round_dp(4),
        figures.coverage().round_dp(4)
    );
    Ok(())
}

fn print_tally(label: &str, t: &Tally) {
    println!(
        "{label:<24} {:>8} {:>8} {:>8} {:>10} {:>8} {:>8}",
        t.lines,
        t.matched,
        t.matched_right,
        t.confirmed,
        t.confirmed_right,
        t.confirmed - t.confirmed_right
    );
}

#[allow(
    clippy::float_arithmetic,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn per_second(n: usize, seconds: f64) -> u64 {
    if seconds > 0.0 { (n as f64 / seconds).round() as u64 } else { 0 }
}
