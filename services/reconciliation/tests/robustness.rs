//! No input makes the statement parsers panic: every real sample under shared/testdata, cut at
//! many points and mutated thousands of ways (bytes flipped, inserted, deleted, lines repeated)
//! by a seeded generator, so a failure names a seed that reproduces it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use cobro_kit::seeded::SeededRng;
use cobro_reconciliation::domain::formats::detect::parse_any;

/// Bytes that matter to the formats: XML and SWIFT/BAI2 punctuation, digits, signs, newlines.
const INTERESTING: &[u8] = b"<>/\"'=:;,.+-0123456789CDRTNXYZ{}\r\n\t :61:86:20:16,88,49,/&#\x00\xff\xc3";

fn mutate(input: &[u8], rng: &mut SeededRng) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(8) {
        let at = rng.below(out.len() + 1);
        match rng.below(5) {
            0 if at < out.len() => out[at] = INTERESTING[rng.below(INTERESTING.len())],
            1 => out.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
            2 if at < out.len() => {
                let end = (at + 1 + rng.below(40)).min(out.len());
                out.drain(at..end);
            }
            3 => {
                // Repeat a line: duplicated records, balances and tags.
                let start = out[..at].iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
                let end = out[at..].iter().position(|b| *b == b'\n').map_or(out.len(), |p| at + p + 1);
                let line = out[start..end].to_vec();
                out.splice(end..end, line);
            }
            _ => out.truncate(at),
        }
    }
    out
}

fn samples() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/statements");
    let mut files = Vec::new();
    for dir in ["camt", "mt940", "bai2"] {
        for entry in std::fs::read_dir(root.join(dir)).expect("the statement samples") {
            let path = entry.unwrap().path();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
            if matches!(ext, "xml" | "sta" | "txt" | "bai2") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn survives(input: &[u8]) -> bool {
    catch_unwind(AssertUnwindSafe(|| {
        let _ = parse_any(input);
    }))
    .is_ok()
}

#[test]
fn no_statement_input_makes_a_parser_panic() {
    let files = samples();
    assert!(files.len() >= 10, "the samples are there: {files:?}");
    let mut parsed = 0;
    for (n, path) in files.iter().enumerate() {
        let original = std::fs::read(path).unwrap();
        if parse_any(&original).is_ok() {
            parsed += 1;
        }
        for cut in (0..original.len()).step_by((original.len() / 97).max(1)) {
            assert!(survives(&original[..cut]), "{}: cut at byte {cut} panics", path.display());
        }
        for round in 0..400_u64 {
            let seed = 0x9E37_79B9_7F4A_7C15 ^ (u64::try_from(n).unwrap() << 32) ^ round;
            let mut rng = SeededRng::new(seed);
            let input = mutate(&original, &mut rng);
            assert!(survives(&input), "{}: mutation with seed {seed:#x} panics", path.display());
        }
    }
    assert!(parsed >= 5, "most samples parse as they are ({parsed} of {})", files.len());
    // Arbitrary bytes, and what looks like each format's start followed by noise.
    let mut rng = SeededRng::new(0xD1B5_4A32_D192_ED03);
    for prefix in [&b""[..], b"<?xml version=\"1.0\"?><Document>", b":20:STMT\r\n:25:", b"01,BANK,CUST,"] {
        for _ in 0..500 {
            let mut input = prefix.to_vec();
            input.extend((0..rng.below(300)).map(|_| rng.byte()));
            assert!(survives(&input), "{input:?} panics");
        }
    }
}
