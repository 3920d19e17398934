//! An issued invoice as a printable PDF, written byte by byte: no PDF crate and no I/O.
//!
//! [`render`] lays out an A4 document (595 x 842 points) with the two standard Type1 fonts every
//! reader carries, Helvetica and Helvetica-Bold in WinAnsi encoding, so nothing is embedded and
//! the text stays real, selectable text. Content streams are uncompressed.
//!
//! The layout, top to bottom: the seller's name, "Invoice <number>", the dates and currency
//! beside the bill-to block, the lines table, the totals, the installments (when any), how to
//! pay and the memo. Whatever does not fit continues on a new page (the lines and installments
//! tables repeat their header there) and every page is numbered "Page i of n".
//!
//! [`render_statement`] prints a customer's statement of account with the same machinery: the
//! customer and the period, the opening balance, one table row per movement (repeating its
//! header on every page) and the closing balance.
//!
//! Amounts arrive already formatted; they are only placed. Layout arithmetic is integer: points,
//! or thousandths of a point where text is measured with the Helvetica metrics. Text is mapped to
//! WinAnsi: Latin-1 and the Windows-1252 extras (€, curly quotes, dashes) are kept, control and
//! invisible format characters are dropped and anything else becomes "?". Text that does not fit
//! its column is cut with an ellipsis; the memo and the pay link wrap instead. Nothing is ever
//! drawn outside the page margins, whatever the input.

use std::fmt::Write as _;

/// An issued invoice as it is printed: every figure already formatted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PdfInvoice {
    /// The tenant's name.
    pub seller_name: String,
    /// "INV-2026-000042".
    pub number: String,
    /// "2026-11-23".
    pub issue_date: String,
    pub due_date: String,
    pub customer_name: String,
    pub customer_tax_id: String,
    /// One entry per printed line.
    pub customer_address: Vec<String>,
    /// "MXN".
    pub currency: String,
    pub lines: Vec<PdfLine>,
    pub subtotal: String,
    /// Printed only when not zero or empty.
    pub discount: String,
    /// (name, amount) for each tax.
    pub taxes: Vec<(String, String)>,
    pub total: String,
    /// Printed only when not zero or empty.
    pub credited: String,
    /// Printed only when not zero or empty.
    pub paid: String,
    pub balance: String,
    /// (due date, amount) for each installment.
    pub installments: Vec<(String, String)>,
    /// The bank transfer reference.
    pub payment_reference: String,
    /// May be empty; an http(s) link is also made clickable.
    pub pay_link: String,
    pub memo: String,
}

/// One row of the lines table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PdfLine {
    pub description: String,
    pub quantity: String,
    pub unit_price: String,
    pub tax: String,
    pub total: String,
}

/// The invoice as a complete PDF 1.4 file.
pub fn render(invoice: &PdfInvoice) -> Vec<u8> {
    let title = join_nonempty("Invoice", &invoice.number);
    let mut doc = Doc::new(&title, &invoice.seller_name);
    heading_block(&mut doc, invoice, &title);
    lines_table(&mut doc, invoice);
    totals_block(&mut doc, invoice);
    installments_table(&mut doc, invoice);
    how_to_pay(&mut doc, invoice);
    memo(&mut doc, invoice);
    let pages = doc.finish(&title);
    serialize(&pages, &title)
}

/// A statement of account as it is printed: every figure already formatted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PdfStatement {
    /// The tenant's name; may be empty.
    pub seller_name: String,
    pub customer_name: String,
    pub customer_tax_id: String,
    /// "MXN".
    pub currency: String,
    /// "2026-10-01".
    pub from: String,
    pub to: String,
    pub opening: String,
    pub entries: Vec<PdfStatementEntry>,
    pub closing: String,
}

/// One movement of a statement. Debit and credit print nothing when zero or empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PdfStatementEntry {
    pub date: String,
    /// The invoice, credit note or payment reference.
    pub document: String,
    /// "Invoice", "Payment", "Credit note".
    pub description: String,
    pub debit: String,
    pub credit: String,
    /// The running balance after this movement.
    pub balance: String,
}

/// The statement as a complete PDF 1.4 file.
pub fn render_statement(statement: &PdfStatement) -> Vec<u8> {
    let title = "Statement of account";
    let mut doc = Doc::new(title, &statement.seller_name);
    statement_heading(&mut doc, statement, title);
    statement_table(&mut doc, statement);
    let pages = doc.finish(title);
    serialize(&pages, title)
}

// ---------------------------------------------------------------------------------------------
// Page geometry, in points. The origin is the bottom left corner of the page.

const PAGE_WIDTH: i64 = 595;
const PAGE_HEIGHT: i64 = 842;
/// Left and right margins: nothing is drawn outside LEFT..=RIGHT.
const LEFT: i64 = 50;
const RIGHT: i64 = 545;
/// Inner padding of table cells.
const PAD: i64 = 4;
/// Where content starts on the first page, and on the others (below the running header).
const TOP_FIRST: i64 = 792;
const TOP_NEXT: i64 = 788;
/// Content never goes below this; the footer lives underneath.
const BOTTOM: i64 = 60;
const RUNNING_BASELINE: i64 = 808;
const RUNNING_RULE: i64 = 800;
const FOOTER_RULE: i64 = 50;
const FOOTER_BASELINE: i64 = 38;

const SECTION_GAP: i64 = 18;
const HEADING_HEIGHT: i64 = 20;
const TABLE_HEADER_HEIGHT: i64 = 20;
const ROW_HEIGHT: i64 = 17;
const LINE_HEIGHT: i64 = 14;
const TOTAL_ROW_HEIGHT: i64 = 16;
const BALANCE_ROW_HEIGHT: i64 = 22;

/// WinAnsi "…", what a cut text ends with.
const ELLIPSIS: u8 = 0x85;

// ---------------------------------------------------------------------------------------------
// Fonts and text.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Font {
    Regular,
    Bold,
}

impl Font {
    fn resource(self) -> &'static str {
        match self {
            Font::Regular => "F1",
            Font::Bold => "F2",
        }
    }

    /// Advance width of a WinAnsi byte, in thousandths of the font size.
    fn glyph_width(self, byte: u8) -> i64 {
        let table = match self {
            Font::Regular => &HELVETICA,
            Font::Bold => &HELVETICA_BOLD,
        };
        byte.checked_sub(32).and_then(|i| table.get(usize::from(i))).map_or(1000, |&w| i64::from(w))
    }
}

/// Helvetica advance widths (Adobe core font metrics) for WinAnsi codes 32..=255. The unused
/// codes 0x81, 0x8D, 0x8F, 0x90 and 0x9D are never written.
#[rustfmt::skip]
const HELVETICA: [u16; 224] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556,
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556,
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556,
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, 350,
    556, 350, 222, 556, 333, 1000, 556, 556, 333, 1000, 667, 333, 1000, 350, 611, 350,
    350, 222, 222, 333, 333, 350, 556, 1000, 333, 1000, 500, 333, 944, 350, 500, 667,
    278, 333, 556, 556, 556, 556, 260, 556, 333, 737, 370, 556, 584, 333, 737, 333,
    400, 584, 333, 333, 333, 556, 537, 278, 333, 333, 365, 556, 834, 834, 834, 611,
    667, 667, 667, 667, 667, 667, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278,
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611,
    556, 556, 556, 556, 556, 556, 889, 500, 556, 556, 556, 556, 278, 278, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 584, 611, 556, 556, 556, 556, 500, 556, 500,
];

/// Helvetica-Bold advance widths for WinAnsi codes 32..=255.
#[rustfmt::skip]
const HELVETICA_BOLD: [u16; 224] = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278,
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611,
    975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778,
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556,
    333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611,
    611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584, 350,
    556, 350, 278, 556, 500, 1000, 556, 556, 333, 1000, 667, 333, 1000, 350, 611, 350,
    350, 278, 278, 500, 500, 350, 556, 1000, 333, 1000, 556, 333, 944, 350, 500, 667,
    278, 333, 556, 556, 556, 556, 280, 556, 333, 737, 370, 556, 584, 333, 737, 333,
    400, 584, 333, 333, 333, 611, 556, 278, 333, 333, 365, 556, 834, 834, 834, 611,
    722, 722, 722, 722, 722, 722, 1000, 722, 667, 667, 667, 667, 278, 278, 278, 278,
    722, 722, 778, 778, 778, 778, 778, 584, 778, 722, 722, 722, 722, 667, 667, 611,
    556, 556, 556, 556, 556, 556, 889, 556, 556, 556, 556, 556, 278, 278, 278, 278,
    611, 611, 611, 611, 611, 611, 611, 584, 611, 611, 611, 611, 611, 556, 611, 556,
];

/// Fill colour of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ink {
    Black,
    Muted,
    Link,
}

impl Ink {
    fn operator(self) -> &'static str {
        match self {
            Ink::Black => "0 g",
            Ink::Muted => "0.42 g",
            Ink::Link => "0.05 0.33 0.65 rg",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Style {
    font: Font,
    size: i64,
    ink: Ink,
}

const BODY: Style = Style { font: Font::Regular, size: 9, ink: Ink::Black };
const BODY_BOLD: Style = Style { font: Font::Bold, size: 9, ink: Ink::Black };
const LABEL: Style = Style { font: Font::Regular, size: 9, ink: Ink::Muted };
const SMALL: Style = Style { font: Font::Regular, size: 8, ink: Ink::Muted };
const HEADING: Style = Style { font: Font::Bold, size: 11, ink: Ink::Black };
const LINK: Style = Style { font: Font::Regular, size: 9, ink: Ink::Link };

/// A horizontal span text is placed in, left or right aligned.
#[derive(Debug, Clone, Copy)]
struct Cell {
    left: i64,
    right: i64,
    right_aligned: bool,
}

const fn left_cell(left: i64, right: i64) -> Cell {
    Cell { left, right, right_aligned: false }
}

const fn right_cell(left: i64, right: i64) -> Cell {
    Cell { left, right, right_aligned: true }
}

/// `text` in WinAnsi bytes: see the module documentation.
fn encode(text: &str) -> Vec<u8> {
    text.chars().filter_map(win_ansi).collect()
}

/// The WinAnsi byte for `c`: `None` to drop it, `?` when WinAnsi has no such character.
fn win_ansi(c: char) -> Option<u8> {
    let code = u32::from(c);
    if c.is_control() || is_invisible(code) {
        return None;
    }
    if (0x20..0x7F).contains(&code) || (0xA0..=0xFF).contains(&code) {
        return u8::try_from(code).ok();
    }
    let byte = match c {
        '€' => 0x80,
        '‚' => 0x82,
        'ƒ' => 0x83,
        '„' => 0x84,
        '…' => 0x85,
        '†' => 0x86,
        '‡' => 0x87,
        'ˆ' => 0x88,
        '‰' => 0x89,
        'Š' => 0x8A,
        '‹' => 0x8B,
        'Œ' => 0x8C,
        'Ž' => 0x8E,
        '‘' => 0x91,
        '’' => 0x92,
        '“' => 0x93,
        '”' => 0x94,
        '•' => 0x95,
        '–' => 0x96,
        '—' => 0x97,
        '˜' => 0x98,
        '™' => 0x99,
        'š' => 0x9A,
        '›' => 0x9B,
        'œ' => 0x9C,
        'ž' => 0x9E,
        'Ÿ' => 0x9F,
        // Spaces and hyphens WinAnsi lacks but has a plain twin for (thin spaces are common in
        // formatted numbers).
        '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}' => b' ',
        '\u{2010}'..='\u{2012}' | '\u{2212}' => b'-',
        _ => b'?',
    };
    Some(byte)
}

/// Zero-width and other invisible format characters (joiners, direction marks, variation
/// selectors, byte order mark, tags): dropped rather than printed as "?".
fn is_invisible(code: u32) -> bool {
    matches!(
        code,
        0x200B..=0x200F
            | 0x2028..=0x202E
            | 0x2060..=0x2064
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xE0000..=0xE007F
            | 0xE0100..=0xE01EF
    )
}

/// Width of WinAnsi `bytes` set in `font` at `size` points, in thousandths of a point.
fn text_width(bytes: &[u8], font: Font, size: i64) -> i64 {
    bytes.iter().fold(0_i64, |sum, &b| sum.saturating_add(font.glyph_width(b))).saturating_mul(size)
}

/// `bytes` cut, with an ellipsis, to at most `max` thousandths of a point.
fn fit(mut bytes: Vec<u8>, font: Font, size: i64, max: i64) -> Vec<u8> {
    if text_width(&bytes, font, size) <= max {
        return bytes;
    }
    let budget = max.saturating_sub(font.glyph_width(ELLIPSIS).saturating_mul(size));
    if budget < 0 {
        return Vec::new();
    }
    let mut used = 0_i64;
    let mut keep = 0_usize;
    for &b in &bytes {
        let w = font.glyph_width(b).saturating_mul(size);
        if used.saturating_add(w) > budget {
            break;
        }
        used = used.saturating_add(w);
        keep += 1;
    }
    bytes.truncate(keep);
    while bytes.last() == Some(&b' ') {
        bytes.pop();
    }
    bytes.push(ELLIPSIS);
    bytes
}

/// `bytes` broken into lines of at most `max` thousandths of a point: at spaces, and inside
/// words too long for a line. Runs of spaces collapse.
fn wrap(bytes: &[u8], font: Font, size: i64, max: i64) -> Vec<Vec<u8>> {
    let space = font.glyph_width(b' ').saturating_mul(size);
    let mut lines = Vec::new();
    let mut line: Vec<u8> = Vec::new();
    let mut used = 0_i64;
    for word in bytes.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
        let width = text_width(word, font, size);
        let gap = if line.is_empty() { 0 } else { space };
        if used.saturating_add(gap).saturating_add(width) <= max {
            if !line.is_empty() {
                line.push(b' ');
            }
            line.extend_from_slice(word);
            used = used.saturating_add(gap).saturating_add(width);
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
            used = 0;
        }
        if width <= max {
            line.extend_from_slice(word);
            used = width;
            continue;
        }
        for &b in word {
            let w = font.glyph_width(b).saturating_mul(size);
            if used.saturating_add(w) > max && !line.is_empty() {
                lines.push(std::mem::take(&mut line));
                used = 0;
            }
            line.push(b);
            used = used.saturating_add(w);
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// A PDF literal string of WinAnsi bytes: `\`, `(` and `)` escaped, bytes outside printable
/// ASCII as octal escapes, so the file's text is plain ASCII.
fn pdf_literal(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().saturating_add(2));
    out.push('(');
    for &b in bytes {
        match b {
            b'\\' | b'(' | b')' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7E => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:03o}");
            }
        }
    }
    out.push(')');
    out
}

/// A PDF text string (document information) in UTF-16BE with a byte order mark: any character.
fn pdf_text_string(text: &str) -> String {
    let mut out = String::from("<FEFF");
    for unit in text.chars().filter(|c| !c.is_control()).collect::<String>().encode_utf16() {
        let _ = write!(out, "{unit:04X}");
    }
    out.push('>');
    out
}

/// A length in thousandths of a point as a PDF number: "54", "312.456".
fn milli(value: i64) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let abs = value.unsigned_abs();
    let (whole, frac) = (abs / 1000, abs % 1000);
    if frac == 0 { format!("{sign}{whole}") } else { format!("{sign}{whole}.{frac:03}") }
}

/// "Invoice" and "INV-1" as "Invoice INV-1"; either alone when the other is blank.
fn join_nonempty(a: &str, b: &str) -> String {
    match (a.trim().is_empty(), b.trim().is_empty()) {
        (false, false) => format!("{} {}", a.trim(), b.trim()),
        (false, true) => a.trim().to_owned(),
        (true, _) => b.trim().to_owned(),
    }
}

/// An amount that prints as nothing or as zero ("", "0", "0.00", "-0.00").
fn is_zero(amount: &str) -> bool {
    amount.trim().chars().all(|c| matches!(c, '0' | '.' | ',' | '-' | '+' | ' '))
}

// ---------------------------------------------------------------------------------------------
// Pages.

/// One page: its content stream and the link areas on it.
#[derive(Debug, Default)]
struct Page {
    ops: String,
    links: Vec<LinkArea>,
}

#[derive(Debug)]
struct LinkArea {
    /// x1, y1, x2, y2 in points.
    rect: [i64; 4],
    /// The URI as a PDF literal string.
    uri: String,
}

impl Page {
    /// Draws `bytes` in `cell` (cut to fit) and returns where the text starts and its width,
    /// both in thousandths of a point.
    fn text_bytes(&mut self, style: Style, cell: Cell, baseline: i64, bytes: Vec<u8>) -> (i64, i64) {
        let room = cell.right.saturating_sub(cell.left).saturating_mul(1000);
        let bytes = fit(bytes, style.font, style.size, room);
        let width = text_width(&bytes, style.font, style.size);
        let x = if cell.right_aligned {
            cell.right.saturating_mul(1000).saturating_sub(width)
        } else {
            cell.left.saturating_mul(1000)
        };
        if !bytes.is_empty() {
            let _ = writeln!(
                self.ops,
                "{} BT /{} {} Tf {} {} Td {} Tj ET",
                style.ink.operator(),
                style.font.resource(),
                style.size,
                milli(x),
                baseline,
                pdf_literal(&bytes),
            );
        }
        (x, width)
    }

    fn text(&mut self, style: Style, cell: Cell, baseline: i64, text: &str) -> (i64, i64) {
        self.text_bytes(style, cell, baseline, encode(text))
    }

    /// A thin horizontal rule at height `y`.
    fn rule(&mut self, left: i64, right: i64, y: i64, gray: &str) {
        let _ = writeln!(self.ops, "q {gray} G 0.5 w {left} {y} m {right} {y} l S Q");
    }

    /// A light gray band with its bottom at `y`.
    fn band(&mut self, left: i64, right: i64, y: i64, height: i64) {
        let _ = writeln!(self.ops, "q 0.93 g {left} {y} {} {height} re f Q", right.saturating_sub(left));
    }
}

/// The document being laid out, top to bottom, with `y` the top of the free space on the
/// current page.
struct Doc {
    done: Vec<Page>,
    page: Page,
    y: i64,
    /// Running header of the pages after the first.
    title: String,
    seller: String,
}

impl Doc {
    fn new(title: &str, seller: &str) -> Self {
        Doc {
            done: Vec::new(),
            page: Page::default(),
            y: TOP_FIRST,
            title: title.to_owned(),
            seller: seller.to_owned(),
        }
    }

    fn page_index(&self) -> usize {
        self.done.len()
    }

    fn top(&self) -> i64 {
        if self.done.is_empty() { TOP_FIRST } else { TOP_NEXT }
    }

    fn at_top(&self) -> bool {
        self.y >= self.top()
    }

    fn new_page(&mut self) {
        self.done.push(std::mem::take(&mut self.page));
        self.y = TOP_NEXT;
        let continued = format!("{} (continued)", self.title);
        self.page.text(BODY_BOLD, left_cell(LEFT, 330), RUNNING_BASELINE, &continued);
        self.page.text(LABEL, right_cell(340, RIGHT), RUNNING_BASELINE, &self.seller);
        self.page.rule(LEFT, RIGHT, RUNNING_RULE, "0.8");
    }

    /// Starts a new page unless `height` points fit on this one (or this one is still empty).
    /// True when a page was started.
    fn ensure(&mut self, height: i64) -> bool {
        if self.y.saturating_sub(height) < BOTTOM && !self.at_top() {
            self.new_page();
            return true;
        }
        false
    }

    /// Vertical space, unless at the top of a page.
    fn gap(&mut self, height: i64) {
        if !self.at_top() {
            self.y = self.y.saturating_sub(height);
        }
    }

    /// Baseline of `size`-point text in a row `height` points tall starting at `y`.
    fn baseline(&self, height: i64, size: i64) -> i64 {
        self.y - height + (height - size) / 2 + size / 4
    }

    /// One line of text in `cell`, on a new page when it does not fit.
    fn line(&mut self, style: Style, cell: Cell, height: i64, text: &str) {
        self.ensure(height);
        let baseline = self.baseline(height, style.size);
        self.page.text(style, cell, baseline, text);
        self.y -= height;
    }

    /// A section heading, kept on a page with the `keep` points that follow it.
    fn heading(&mut self, text: &str, keep: i64) {
        self.gap(SECTION_GAP);
        self.ensure(HEADING_HEIGHT.saturating_add(keep));
        self.line(HEADING, left_cell(LEFT, RIGHT), HEADING_HEIGHT, text);
    }

    /// A table header row: a band with the column titles.
    fn table_header(&mut self, columns: &[Column], right: i64) {
        self.page.band(LEFT, right, self.y - TABLE_HEADER_HEIGHT, TABLE_HEADER_HEIGHT);
        let baseline = self.baseline(TABLE_HEADER_HEIGHT, BODY_BOLD.size);
        for column in columns {
            self.page.text(BODY_BOLD, column.cell, baseline, column.title);
        }
        self.y -= TABLE_HEADER_HEIGHT;
    }

    /// One table row of `values` under `columns`, repeating the header on a new page.
    fn table_row(&mut self, columns: &[Column], right: i64, values: &[&str]) {
        if self.ensure(ROW_HEIGHT) {
            self.table_header(columns, right);
        }
        let baseline = self.baseline(ROW_HEIGHT, BODY.size);
        for (column, value) in columns.iter().zip(values) {
            self.page.text(BODY, column.cell, baseline, value);
        }
        self.y -= ROW_HEIGHT;
        self.page.rule(LEFT, right, self.y, "0.85");
    }

    /// The finished pages, each with its footer.
    fn finish(mut self, title: &str) -> Vec<Page> {
        self.done.push(self.page);
        let count = self.done.len();
        for (i, page) in self.done.iter_mut().enumerate() {
            page.rule(LEFT, RIGHT, FOOTER_RULE, "0.8");
            page.text(SMALL, left_cell(LEFT, 380), FOOTER_BASELINE, title);
            let number = format!("Page {} of {count}", i.saturating_add(1));
            page.text(SMALL, right_cell(390, RIGHT), FOOTER_BASELINE, &number);
        }
        self.done
    }
}

// ---------------------------------------------------------------------------------------------
// Sections.

struct Column {
    title: &'static str,
    cell: Cell,
}

const LINE_COLUMNS: [Column; 5] = [
    Column { title: "Description", cell: left_cell(LEFT + PAD, 266) },
    Column { title: "Qty", cell: right_cell(272, 316) },
    Column { title: "Unit price", cell: right_cell(322, 392) },
    Column { title: "Tax", cell: right_cell(398, 462) },
    Column { title: "Total", cell: right_cell(468, RIGHT - PAD) },
];

/// Right edge of the installments table.
const INSTALLMENTS_RIGHT: i64 = 340;

const INSTALLMENT_COLUMNS: [Column; 3] = [
    Column { title: "#", cell: left_cell(LEFT + PAD, 80) },
    Column { title: "Due date", cell: left_cell(86, 200) },
    Column { title: "Amount", cell: right_cell(206, INSTALLMENTS_RIGHT - PAD) },
];

/// Seller, invoice title, dates and the bill-to block.
fn heading_block(doc: &mut Doc, invoice: &PdfInvoice, title: &str) {
    let seller = Style { font: Font::Bold, size: 20, ink: Ink::Black };
    doc.line(seller, left_cell(LEFT, RIGHT), 28, &invoice.seller_name);
    let title_style = Style { font: Font::Bold, size: 13, ink: Ink::Black };
    doc.line(title_style, left_cell(LEFT, RIGHT), 22, title);
    doc.gap(14);

    // Dates and currency on the right, beside the bill-to block.
    let top = doc.y;
    let meta = [("Issue date", &invoice.issue_date), ("Due date", &invoice.due_date), ("Currency", &invoice.currency)];
    for (label, value) in meta {
        let baseline = doc.baseline(LINE_HEIGHT, BODY.size);
        doc.page.text(LABEL, left_cell(360, 430), baseline, label);
        doc.page.text(BODY_BOLD, right_cell(436, RIGHT), baseline, value);
        doc.y -= LINE_HEIGHT;
    }
    let meta_bottom = doc.y;
    doc.y = top;

    let page = doc.page_index();
    let block = left_cell(LEFT, 340);
    doc.line(Style { font: Font::Bold, size: 8, ink: Ink::Muted }, block, LINE_HEIGHT, "BILL TO");
    let name = Style { font: Font::Bold, size: 10, ink: Ink::Black };
    doc.line(name, block, LINE_HEIGHT, &invoice.customer_name);
    if !invoice.customer_tax_id.trim().is_empty() {
        doc.line(BODY, block, LINE_HEIGHT, &format!("Tax ID: {}", invoice.customer_tax_id.trim()));
    }
    for address in &invoice.customer_address {
        doc.line(BODY, block, LINE_HEIGHT, address);
    }
    if doc.page_index() == page {
        doc.y = doc.y.min(meta_bottom);
    }
}

fn lines_table(doc: &mut Doc, invoice: &PdfInvoice) {
    doc.gap(SECTION_GAP);
    doc.ensure(TABLE_HEADER_HEIGHT + ROW_HEIGHT);
    doc.table_header(&LINE_COLUMNS, RIGHT);
    if invoice.lines.is_empty() {
        let none = Style { ink: Ink::Muted, ..BODY };
        doc.line(none, LINE_COLUMNS[0].cell, ROW_HEIGHT, "No lines");
        doc.page.rule(LEFT, RIGHT, doc.y, "0.85");
    }
    for line in &invoice.lines {
        let values = [&*line.description, &*line.quantity, &*line.unit_price, &*line.tax, &*line.total];
        doc.table_row(&LINE_COLUMNS, RIGHT, &values);
    }
}

/// One row of the totals block.
struct TotalRow {
    label: String,
    value: String,
    strong: bool,
}

fn totals_block(doc: &mut Doc, invoice: &PdfInvoice) {
    let with_currency = |amount: &str| {
        if amount.trim().is_empty() { String::new() } else { join_nonempty(amount, &invoice.currency) }
    };
    let plain = |label: &str, value: &str| TotalRow { label: label.to_owned(), value: value.to_owned(), strong: false };
    let mut rows = vec![plain("Subtotal", &invoice.subtotal)];
    if !is_zero(&invoice.discount) {
        rows.push(plain("Discount", &invoice.discount));
    }
    for (name, amount) in &invoice.taxes {
        rows.push(plain(if name.trim().is_empty() { "Tax" } else { name }, amount));
    }
    rows.push(TotalRow { label: "Total".to_owned(), value: with_currency(&invoice.total), strong: true });
    if !is_zero(&invoice.credited) {
        rows.push(plain("Credited", &invoice.credited));
    }
    if !is_zero(&invoice.paid) {
        rows.push(plain("Paid", &invoice.paid));
    }

    let label_cell = left_cell(300, 436);
    let value_cell = right_cell(440, RIGHT - PAD);
    let rows_height = i64::try_from(rows.len()).unwrap_or(i64::MAX).saturating_mul(TOTAL_ROW_HEIGHT);
    let height = rows_height.saturating_add(BALANCE_ROW_HEIGHT).saturating_add(4);
    doc.gap(SECTION_GAP);
    // Kept on one page when it fits on one.
    doc.ensure(height.min(TOP_NEXT - BOTTOM));
    for row in &rows {
        doc.ensure(TOTAL_ROW_HEIGHT);
        if row.strong {
            doc.page.rule(label_cell.left, RIGHT, doc.y, "0.6");
        }
        let (label_style, value_style) =
            if row.strong { (Style { size: 10, ..BODY_BOLD }, Style { size: 10, ..BODY_BOLD }) } else { (LABEL, BODY) };
        let baseline = doc.baseline(TOTAL_ROW_HEIGHT, value_style.size);
        doc.page.text(label_style, label_cell, baseline, &row.label);
        doc.page.text(value_style, value_cell, baseline, &row.value);
        doc.y -= TOTAL_ROW_HEIGHT;
    }

    doc.ensure(BALANCE_ROW_HEIGHT.saturating_add(4));
    doc.y -= 4;
    doc.page.band(label_cell.left, RIGHT, doc.y - BALANCE_ROW_HEIGHT, BALANCE_ROW_HEIGHT);
    let strong = Style { font: Font::Bold, size: 11, ink: Ink::Black };
    let baseline = doc.baseline(BALANCE_ROW_HEIGHT, strong.size);
    doc.page.text(strong, left_cell(label_cell.left + PAD, 436), baseline, "Balance due");
    doc.page.text(strong, value_cell, baseline, &with_currency(&invoice.balance));
    doc.y -= BALANCE_ROW_HEIGHT;
}

fn installments_table(doc: &mut Doc, invoice: &PdfInvoice) {
    if invoice.installments.is_empty() {
        return;
    }
    doc.heading("Installments", TABLE_HEADER_HEIGHT + ROW_HEIGHT);
    doc.table_header(&INSTALLMENT_COLUMNS, INSTALLMENTS_RIGHT);
    for (i, (due, amount)) in invoice.installments.iter().enumerate() {
        let number = i.saturating_add(1).to_string();
        doc.table_row(&INSTALLMENT_COLUMNS, INSTALLMENTS_RIGHT, &[number.as_str(), due.as_str(), amount.as_str()]);
    }
}

fn how_to_pay(doc: &mut Doc, invoice: &PdfInvoice) {
    let reference = invoice.payment_reference.trim();
    let link = invoice.pay_link.trim();
    if reference.is_empty() && link.is_empty() {
        return;
    }
    doc.heading("How to pay", LINE_HEIGHT);
    let label_cell = left_cell(LEFT, 190);
    let value_cell = left_cell(196, RIGHT);
    if !reference.is_empty() {
        doc.ensure(LINE_HEIGHT);
        let baseline = doc.baseline(LINE_HEIGHT, BODY.size);
        doc.page.text(LABEL, label_cell, baseline, "Bank transfer reference");
        doc.page.text(Style { size: 10, ..BODY_BOLD }, value_cell, baseline, reference);
        doc.y -= LINE_HEIGHT;
    }
    if !link.is_empty() {
        let uri = web_uri(link);
        let room = (value_cell.right - value_cell.left) * 1000;
        for (i, piece) in wrap(&encode(link), LINK.font, LINK.size, room).into_iter().enumerate() {
            doc.ensure(LINE_HEIGHT);
            let baseline = doc.baseline(LINE_HEIGHT, LINK.size);
            if i == 0 {
                doc.page.text(LABEL, label_cell, baseline, "Pay online");
            }
            let (x, width) = doc.page.text_bytes(LINK, value_cell, baseline, piece);
            if let Some(uri) = &uri {
                let rect = [x / 1000, baseline - 3, (x + width + 999) / 1000, baseline + LINK.size];
                doc.page.links.push(LinkArea { rect, uri: uri.clone() });
            }
            doc.y -= LINE_HEIGHT;
        }
    }
}

/// The link as a URI literal when it is an http(s) address: anything outside printable ASCII
/// percent-encoded.
fn web_uri(link: &str) -> Option<String> {
    let scheme_ok = |scheme: &str| link.get(..scheme.len()).is_some_and(|s| s.eq_ignore_ascii_case(scheme));
    if !scheme_ok("https://") && !scheme_ok("http://") {
        return None;
    }
    let mut ascii = Vec::with_capacity(link.len());
    for b in link.bytes() {
        if (0x21..=0x7E).contains(&b) {
            ascii.push(b);
        } else {
            ascii.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    Some(pdf_literal(&ascii))
}

fn memo(doc: &mut Doc, invoice: &PdfInvoice) {
    if invoice.memo.trim().is_empty() {
        return;
    }
    doc.heading("Memo", LINE_HEIGHT);
    let room = (RIGHT - LEFT) * 1000;
    let text = invoice.memo.trim().replace("\r\n", "\n");
    for paragraph in text.split(['\n', '\r']) {
        let lines = wrap(&encode(paragraph), BODY.font, BODY.size, room);
        if lines.is_empty() {
            doc.gap(LINE_HEIGHT / 2);
        }
        for line in lines {
            doc.ensure(LINE_HEIGHT);
            let baseline = doc.baseline(LINE_HEIGHT, BODY.size);
            doc.page.text_bytes(BODY, left_cell(LEFT, RIGHT), baseline, line);
            doc.y -= LINE_HEIGHT;
        }
    }
}

const STATEMENT_COLUMNS: [Column; 6] = [
    Column { title: "Date", cell: left_cell(LEFT + PAD, 106) },
    Column { title: "Document", cell: left_cell(112, 222) },
    Column { title: "Description", cell: left_cell(228, 318) },
    Column { title: "Debit", cell: right_cell(324, 392) },
    Column { title: "Credit", cell: right_cell(398, 466) },
    Column { title: "Balance", cell: right_cell(472, RIGHT - PAD) },
];

/// Title, the customer, and the period and currency beside it.
fn statement_heading(doc: &mut Doc, statement: &PdfStatement, title: &str) {
    if !statement.seller_name.trim().is_empty() {
        let seller = Style { font: Font::Bold, size: 20, ink: Ink::Black };
        doc.line(seller, left_cell(LEFT, RIGHT), 28, &statement.seller_name);
    }
    let title_style = Style { font: Font::Bold, size: 13, ink: Ink::Black };
    doc.line(title_style, left_cell(LEFT, RIGHT), 22, title);
    doc.gap(14);

    let top = doc.y;
    let meta = [("From", &statement.from), ("To", &statement.to), ("Currency", &statement.currency)];
    for (label, value) in meta {
        let baseline = doc.baseline(LINE_HEIGHT, BODY.size);
        doc.page.text(LABEL, left_cell(360, 430), baseline, label);
        doc.page.text(BODY_BOLD, right_cell(436, RIGHT), baseline, value);
        doc.y -= LINE_HEIGHT;
    }
    let meta_bottom = doc.y;
    doc.y = top;

    let block = left_cell(LEFT, 340);
    doc.line(Style { font: Font::Bold, size: 8, ink: Ink::Muted }, block, LINE_HEIGHT, "CUSTOMER");
    let name = Style { font: Font::Bold, size: 10, ink: Ink::Black };
    doc.line(name, block, LINE_HEIGHT, &statement.customer_name);
    if !statement.customer_tax_id.trim().is_empty() {
        doc.line(BODY, block, LINE_HEIGHT, &format!("Tax ID: {}", statement.customer_tax_id.trim()));
    }
    doc.y = doc.y.min(meta_bottom);
}

/// A balance row right of the table: "Opening balance" or, banded, "Closing balance".
fn statement_balance(doc: &mut Doc, statement: &PdfStatement, label: &str, amount: &str, banded: bool) {
    let label_cell = left_cell(300, 436);
    let value_cell = right_cell(440, RIGHT - PAD);
    let value = if amount.trim().is_empty() { String::new() } else { join_nonempty(amount, &statement.currency) };
    let strong = Style { font: Font::Bold, size: 11, ink: Ink::Black };
    doc.ensure(BALANCE_ROW_HEIGHT);
    if banded {
        doc.page.band(label_cell.left, RIGHT, doc.y - BALANCE_ROW_HEIGHT, BALANCE_ROW_HEIGHT);
    }
    let baseline = doc.baseline(BALANCE_ROW_HEIGHT, strong.size);
    doc.page.text(strong, left_cell(label_cell.left + PAD, 436), baseline, label);
    doc.page.text(strong, value_cell, baseline, &value);
    doc.y -= BALANCE_ROW_HEIGHT;
}

fn statement_table(doc: &mut Doc, statement: &PdfStatement) {
    doc.gap(SECTION_GAP);
    statement_balance(doc, statement, "Opening balance", &statement.opening, false);
    doc.gap(6);
    doc.ensure(TABLE_HEADER_HEIGHT + ROW_HEIGHT);
    doc.table_header(&STATEMENT_COLUMNS, RIGHT);
    if statement.entries.is_empty() {
        let none = Style { ink: Ink::Muted, ..BODY };
        doc.line(none, left_cell(LEFT + PAD, RIGHT - PAD), ROW_HEIGHT, "No movements in this period");
        doc.page.rule(LEFT, RIGHT, doc.y, "0.85");
    }
    let blank_zero = |amount: &str| if is_zero(amount) { String::new() } else { amount.to_owned() };
    for e in &statement.entries {
        let (debit, credit) = (blank_zero(&e.debit), blank_zero(&e.credit));
        let values = [&*e.date, &*e.document, &*e.description, &*debit, &*credit, &*e.balance];
        doc.table_row(&STATEMENT_COLUMNS, RIGHT, &values);
    }
    doc.gap(SECTION_GAP);
    statement_balance(doc, statement, "Closing balance", &statement.closing, true);
}

// ---------------------------------------------------------------------------------------------
// The file.

/// Objects: 1 catalog, 2 page tree, 3 and 4 fonts, 5 document information, then each page
/// followed by its content stream.
const FIRST_PAGE_OBJECT: usize = 6;

fn serialize(pages: &[Page], title: &str) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::new();
    // The comment of high bytes marks the file as binary for transfer tools.
    out.extend_from_slice(b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n");
    let mut offsets: Vec<usize> = Vec::new();

    let page_object = |i: usize| FIRST_PAGE_OBJECT.saturating_add(i.saturating_mul(2));
    let kids: Vec<String> = (0..pages.len()).map(|i| format!("{} 0 R", page_object(i))).collect();

    object(&mut out, &mut offsets, "<< /Type /Catalog /Pages 2 0 R >>");
    let tree = format!("<< /Type /Pages /Kids [{}] /Count {} >>", kids.join(" "), pages.len());
    object(&mut out, &mut offsets, &tree);
    for name in ["Helvetica", "Helvetica-Bold"] {
        let font = format!("<< /Type /Font /Subtype /Type1 /BaseFont /{name} /Encoding /WinAnsiEncoding >>");
        object(&mut out, &mut offsets, &font);
    }
    let info = format!("<< /Title {} /Producer (Cobro) /Creator (Cobro) >>", pdf_text_string(title));
    object(&mut out, &mut offsets, &info);

    for (i, page) in pages.iter().enumerate() {
        let mut dict = format!(
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_WIDTH} {PAGE_HEIGHT}] \
             /Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents {} 0 R",
            page_object(i).saturating_add(1)
        );
        if !page.links.is_empty() {
            dict.push_str(" /Annots [");
            for link in &page.links {
                let [x1, y1, x2, y2] = link.rect;
                let _ = write!(
                    dict,
                    " << /Type /Annot /Subtype /Link /Rect [{x1} {y1} {x2} {y2}] /Border [0 0 0] \
                     /A << /S /URI /URI {} >> >>",
                    link.uri
                );
            }
            dict.push_str(" ]");
        }
        dict.push_str(" >>");
        object(&mut out, &mut offsets, &dict);
        let stream = format!("<< /Length {} >>\nstream\n{}\nendstream", page.ops.len(), page.ops);
        object(&mut out, &mut offsets, &stream);
    }

    let xref = out.len();
    let size = offsets.len().saturating_add(1);
    let mut table = format!("xref\n0 {size}\n0000000000 65535 f \n");
    for offset in &offsets {
        let _ = writeln!(table, "{offset:010} 00000 n ");
    }
    let _ = write!(table, "trailer\n<< /Size {size} /Root 1 0 R /Info 5 0 R >>\nstartxref\n{xref}\n%%EOF\n");
    out.extend_from_slice(table.as_bytes());
    out
}

/// Appends the next object, numbered in order from 1, and records where it starts.
fn object(out: &mut Vec<u8>, offsets: &mut Vec<usize>, body: &str) {
    offsets.push(out.len());
    let number = offsets.len();
    out.extend_from_slice(format!("{number} 0 obj\n{body}\nendobj\n").as_bytes());
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn sample() -> PdfInvoice {
        PdfInvoice {
            seller_name: "Acme Cobranzas S.A. de C.V.".to_owned(),
            number: "INV-2026-000042".to_owned(),
            issue_date: "2026-11-23".to_owned(),
            due_date: "2026-12-23".to_owned(),
            customer_name: "Ñandú Comercial".to_owned(),
            customer_tax_id: "NCO010101AB1".to_owned(),
            customer_address: vec!["Av. Reforma 123, piso 4".to_owned(), "Ciudad de México, 06600".to_owned()],
            currency: "MXN".to_owned(),
            lines: vec![
                PdfLine {
                    description: "Consultoría mensual".to_owned(),
                    quantity: "1".to_owned(),
                    unit_price: "1000.00".to_owned(),
                    tax: "16%".to_owned(),
                    total: "1160.00".to_owned(),
                },
                PdfLine {
                    description: "Soporte (horas extra)".to_owned(),
                    quantity: "2.5".to_owned(),
                    unit_price: "100.00".to_owned(),
                    tax: "16%".to_owned(),
                    total: "290.00".to_owned(),
                },
            ],
            subtotal: "1250.00".to_owned(),
            discount: "0.00".to_owned(),
            taxes: vec![("IVA 16%".to_owned(), "200.00".to_owned())],
            total: "1450.00".to_owned(),
            credited: "0.00".to_owned(),
            paid: "450.00".to_owned(),
            balance: "1000.00".to_owned(),
            installments: vec![
                ("2026-12-23".to_owned(), "500.00".to_owned()),
                ("2027-01-23".to_owned(), "500.00".to_owned()),
            ],
            payment_reference: "COBRO-42-7".to_owned(),
            pay_link: "https://pay.cobro.mx/i/abc123".to_owned(),
            memo: "Gracias por su preferencia.\nPagos después del vencimiento generan intereses.".to_owned(),
        }
    }

    fn line(description: &str) -> PdfLine {
        PdfLine {
            description: description.to_owned(),
            quantity: "1".to_owned(),
            unit_price: "10.00".to_owned(),
            tax: "16%".to_owned(),
            total: "11.60".to_owned(),
        }
    }

    fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
        haystack.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
    }

    fn count(haystack: &[u8], needle: &[u8]) -> usize {
        haystack.windows(needle.len()).filter(|w| *w == needle).count()
    }

    fn number_at(bytes: &[u8], at: usize) -> usize {
        let digits: Vec<u8> = bytes[at..].iter().copied().take_while(u8::is_ascii_digit).collect();
        std::str::from_utf8(&digits).unwrap().parse().unwrap()
    }

    /// Checks the file structure and returns the content streams, in page order.
    fn check_structure(pdf: &[u8]) -> Vec<String> {
        assert!(pdf.starts_with(b"%PDF-1.4\n"));
        assert!(pdf.ends_with(b"%%EOF\n"));

        // startxref points at the xref table.
        let marker = pdf.windows(10).rposition(|w| w == b"startxref\n").unwrap();
        let xref = number_at(pdf, marker + 10);
        assert!(pdf[marker..].ends_with(format!("startxref\n{xref}\n%%EOF\n").as_bytes()));
        assert!(pdf[xref..].starts_with(b"xref\n0 "));

        // Every in-use entry points at "N 0 obj".
        let size = number_at(pdf, xref + b"xref\n0 ".len());
        let entries = find(pdf, b"\n", xref + 5).unwrap() + 1;
        assert_eq!(&pdf[entries..entries + 20], b"0000000000 65535 f \n");
        for n in 1..size {
            let entry = &pdf[entries + 20 * n..entries + 20 * (n + 1)];
            assert_eq!(entry.len(), 20);
            assert!(entry.ends_with(b" 00000 n \n"), "entry {n}");
            let offset = number_at(entry, 0);
            let expected = format!("{n} 0 obj\n");
            assert!(pdf[offset..].starts_with(expected.as_bytes()), "object {n} at {offset}");
        }
        let trailer = find(pdf, b"trailer\n", xref).unwrap();
        assert_eq!(trailer, entries + 20 * size);
        let expected = format!("<< /Size {size} /Root 1 0 R");
        assert!(pdf[trailer..].starts_with(format!("trailer\n{expected}").as_bytes()));

        // Every stream is exactly /Length bytes.
        let mut streams = Vec::new();
        let mut at = 0;
        while let Some(length_at) = find(pdf, b"/Length ", at) {
            let length = number_at(pdf, length_at + 8);
            let start = find(pdf, b">>\nstream\n", length_at).unwrap() + b">>\nstream\n".len();
            assert!(pdf[start + length..].starts_with(b"\nendstream\nendobj\n"), "stream at {start}");
            assert_eq!(find(pdf, b"endstream", start).unwrap(), start + length + 1);
            streams.push(String::from_utf8(pdf[start..start + length].to_vec()).unwrap());
            at = start + length;
        }

        // One content stream per page, as many pages as /Count says.
        let count_at = find(pdf, b"/Count ", 0).unwrap();
        let pages = number_at(pdf, count_at + 7);
        assert_eq!(count(pdf, b"/Type /Page /"), pages);
        assert_eq!(streams.len(), pages);
        assert_eq!(size, 6 + 2 * pages);
        streams
    }

    /// One `Tj` of a content stream.
    #[derive(Debug)]
    struct Run {
        font: Font,
        size: i64,
        x: i64,
        y: i64,
        text: Vec<u8>,
    }

    fn parse_milli(text: &str) -> i64 {
        match text.split_once('.') {
            Some((whole, frac)) => whole.parse::<i64>().unwrap() * 1000 + frac.parse::<i64>().unwrap(),
            None => text.parse::<i64>().unwrap() * 1000,
        }
    }

    fn runs(content: &str) -> Vec<Run> {
        let mut out = Vec::new();
        let mut rest = content;
        while let Some(i) = rest.find("BT /") {
            rest = &rest[i + 4..];
            let (font, r) = rest.split_once(' ').unwrap();
            let (size, r) = r.split_once(" Tf ").unwrap();
            let (x, r) = r.split_once(' ').unwrap();
            let (y, r) = r.split_once(" Td (").unwrap();
            let bytes = r.as_bytes();
            let mut text = Vec::new();
            let mut j = 0;
            loop {
                match bytes[j] {
                    b'\\' if bytes[j + 1].is_ascii_digit() => {
                        let octal = std::str::from_utf8(&bytes[j + 1..j + 4]).unwrap();
                        text.push(u8::from_str_radix(octal, 8).unwrap());
                        j += 4;
                    }
                    b'\\' => {
                        text.push(bytes[j + 1]);
                        j += 2;
                    }
                    b')' => break,
                    b => {
                        text.push(b);
                        j += 1;
                    }
                }
            }
            assert!(r[j..].starts_with(") Tj ET"));
            let font = match font {
                "F1" => Font::Regular,
                "F2" => Font::Bold,
                other => panic!("unknown font {other}"),
            };
            out.push(Run { font, size: size.parse().unwrap(), x: parse_milli(x), y: parse_milli(y), text });
            rest = &r[j..];
        }
        out
    }

    fn all_text(streams: &[String]) -> Vec<Vec<u8>> {
        streams.iter().flat_map(|s| runs(s)).map(|r| r.text).collect()
    }

    /// Every run stays inside the margins and above the page bottom.
    fn assert_inside_margins(streams: &[String]) {
        for run in streams.iter().flat_map(|s| runs(s)) {
            let width = text_width(&run.text, run.font, run.size);
            assert!(run.x >= LEFT * 1000, "{run:?} starts left of the margin");
            assert!(run.x + width <= RIGHT * 1000, "{run:?} ends right of the margin");
            assert!(run.y >= FOOTER_BASELINE * 1000 && run.y <= (PAGE_HEIGHT - 20) * 1000, "{run:?}");
        }
    }

    #[test]
    fn renders_a_valid_file() {
        let pdf = render(&sample());
        let streams = check_structure(&pdf);
        assert_eq!(streams.len(), 1);
        assert_inside_margins(&streams);
        assert_eq!(count(&pdf, b"/Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding"), 1);
        assert_eq!(count(&pdf, b"/Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding"), 1);
        assert_eq!(count(&pdf, b"/MediaBox [0 0 595 842]"), 1);
    }

    #[test]
    fn prints_the_invoice_text() {
        let streams = check_structure(&render(&sample()));
        let content = streams.concat();
        for expected in [
            "(Acme Cobranzas S.A. de C.V.)",
            "(Invoice INV-2026-000042)",
            "(2026-11-23)",
            "(2026-12-23)",
            "(\\321and\\372 Comercial)",
            "(Tax ID: NCO010101AB1)",
            "(Consultor\\355a mensual)",
            "(Soporte \\(horas extra\\))",
            "(1160.00)",
            "(1450.00 MXN)",
            "(Balance due)",
            "(1000.00 MXN)",
            "(IVA 16%)",
            "(Paid)",
            "(Installments)",
            "(500.00)",
            "(How to pay)",
            "(COBRO-42-7)",
            "(https://pay.cobro.mx/i/abc123)",
            "(Pagos despu\\351s del vencimiento generan intereses.)",
            "(Page 1 of 1)",
        ] {
            assert!(content.contains(expected), "missing {expected}");
        }
        // Zero discount and credit are left out.
        assert!(!content.contains("(Discount)"));
        assert!(!content.contains("(Credited)"));
    }

    #[test]
    fn numeric_columns_are_right_aligned() {
        let streams = check_structure(&render(&sample()));
        let all = runs(&streams[0]);
        for total in ["1160.00", "290.00"] {
            let run = all.iter().find(|r| r.text == total.as_bytes()).unwrap();
            assert_eq!(run.x + text_width(&run.text, run.font, run.size), (RIGHT - PAD) * 1000);
        }
    }

    #[test]
    fn nonzero_discount_and_credit_are_printed() {
        let invoice = PdfInvoice { discount: "50.00".to_owned(), credited: "10.00".to_owned(), ..sample() };
        let content = check_structure(&render(&invoice)).concat();
        assert!(content.contains("(Discount)") && content.contains("(50.00)"));
        assert!(content.contains("(Credited)") && content.contains("(10.00)"));
    }

    #[test]
    fn zero_amounts() {
        for zero in ["", " ", "0", "0.00", "-0.00", "0,00"] {
            assert!(is_zero(zero), "{zero:?}");
        }
        for amount in ["0.01", "10", "-1.00", "abc"] {
            assert!(!is_zero(amount), "{amount:?}");
        }
    }

    #[test]
    fn two_hundred_lines_make_several_pages() {
        let invoice = PdfInvoice { lines: (0..200).map(|i| line(&format!("Item {i}"))).collect(), ..sample() };
        let pdf = render(&invoice);
        let streams = check_structure(&pdf);
        let pages = streams.len();
        assert!(pages >= 4, "{pages} pages");
        let count_at = find(&pdf, b"/Count ", 0).unwrap();
        assert_eq!(number_at(&pdf, count_at + 7), pages);
        assert_inside_margins(&streams);
        for (i, stream) in streams.iter().enumerate() {
            assert!(stream.contains(&format!("(Page {} of {pages})", i + 1)));
            // The table header is on every page the table reaches.
            let has_rows = stream.contains("(Item ");
            if has_rows {
                assert!(stream.contains("(Description)") && stream.contains("(Unit price)"), "page {}", i + 1);
            }
            if i > 0 {
                assert!(stream.contains("(Invoice INV-2026-000042 \\(continued\\))"));
            }
        }
        // Every line is printed exactly once.
        let text = all_text(&streams);
        for i in 0..200 {
            let item = format!("Item {i}");
            assert_eq!(text.iter().filter(|t| **t == item.as_bytes()).count(), 1, "{item}");
        }
    }

    #[test]
    fn ten_thousand_lines() {
        let invoice = PdfInvoice { lines: (0..10_000).map(|i| line(&format!("Item {i}"))).collect(), ..sample() };
        let streams = check_structure(&render(&invoice));
        assert!(streams.len() > 200);
        let last = streams.len();
        assert!(streams[last - 1].contains(&format!("(Page {last} of {last})")));
    }

    #[test]
    fn escapes_parentheses_and_backslashes() {
        assert_eq!(pdf_literal(b"a(b)c\\d"), "(a\\(b\\)c\\\\d)");
        let invoice = PdfInvoice { lines: vec![line("Widget (large) \\ v2")], ..sample() };
        let content = check_structure(&render(&invoice)).concat();
        assert!(content.contains("(Widget \\(large\\) \\\\ v2)"));
    }

    #[test]
    fn maps_text_to_win_ansi() {
        assert_eq!(encode("áéíóúñÑü¿¡"), b"\xE1\xE9\xED\xF3\xFA\xF1\xD1\xFC\xBF\xA1");
        assert_eq!(pdf_literal(&encode("é")), "(\\351)");
        assert_eq!(encode("€ “x” – —"), b"\x80 \x93x\x94 \x96 \x97");
        // Control characters dropped, invisible ones too.
        assert_eq!(encode("A\u{7}B\tC\nD\u{7f}E\u{85}F\u{200B}G"), b"ABCDEFG");
        // Outside WinAnsi: "?".
        assert_eq!(encode("Paid 👍🎉 ✓ 漢"), b"Paid ?? ? ?");
        assert_eq!(encode("❤\u{fe0f}"), b"?");
        assert_eq!(encode("1\u{202F}234\u{2212}5"), b"1 234-5");
    }

    #[test]
    fn emoji_become_question_marks() {
        let invoice =
            PdfInvoice { customer_name: "Café 😀 Ltd".to_owned(), memo: "Thanks 👍🎉".to_owned(), ..sample() };
        let content = check_structure(&render(&invoice)).concat();
        assert!(content.contains("(Caf\\351 ? Ltd)"));
        assert!(content.contains("(Thanks ??)"));
    }

    #[test]
    fn long_description_is_truncated() {
        let long = "x".repeat(10_000);
        let invoice = PdfInvoice { lines: vec![line(&long)], ..sample() };
        let streams = check_structure(&render(&invoice));
        assert_eq!(streams.len(), 1);
        assert_inside_margins(&streams);
        let text = all_text(&streams);
        let cut = text.iter().find(|t| t.starts_with(b"xxxx")).unwrap();
        assert_eq!(cut.last(), Some(&ELLIPSIS));
        assert!(cut.len() < 100);
        let width = text_width(cut, Font::Regular, 9);
        let column = &LINE_COLUMNS[0].cell;
        assert!(width <= (column.right - column.left) * 1000);
    }

    #[test]
    fn fit_cuts_with_an_ellipsis() {
        assert_eq!(fit(b"short".to_vec(), Font::Regular, 10, 100_000), b"short");
        let cut = fit(b"a very long text indeed".to_vec(), Font::Regular, 10, 50_000);
        assert_eq!(cut.last(), Some(&ELLIPSIS));
        assert!(text_width(&cut, Font::Regular, 10) <= 50_000);
        // No space left dangling before the ellipsis.
        assert_eq!(fit(b"abcd efgh".to_vec(), Font::Regular, 10, 35_000), b"abcd\x85");
        // Too narrow even for the ellipsis: nothing.
        assert!(fit(b"abc".to_vec(), Font::Regular, 10, 1_000).is_empty());
    }

    #[test]
    fn wrap_breaks_at_spaces_and_inside_long_words() {
        let lines = wrap(b"one two three", Font::Regular, 10, 40_000);
        assert_eq!(lines, vec![b"one two".to_vec(), b"three".to_vec()]);
        let lines = wrap(&[b'W'; 100], Font::Regular, 10, 100_000);
        assert!(lines.len() > 1);
        assert_eq!(lines.iter().map(Vec::len).sum::<usize>(), 100);
        assert!(lines.iter().all(|l| text_width(l, Font::Regular, 10) <= 100_000));
        assert!(wrap(b"   ", Font::Regular, 10, 100_000).is_empty());
        // Narrower than one glyph: one glyph a line, never stuck.
        assert_eq!(wrap(b"abc", Font::Regular, 10, 1).len(), 3);
    }

    #[test]
    fn empty_invoice() {
        let streams = check_structure(&render(&PdfInvoice::default()));
        assert_eq!(streams.len(), 1);
        let content = streams.concat();
        assert!(content.contains("(Invoice)"));
        assert!(content.contains("(No lines)"));
        assert!(!content.contains("(How to pay)"));
        assert!(!content.contains("(Installments)"));
        assert!(!content.contains("(Memo)"));
    }

    #[test]
    fn hostile_input_stays_on_the_page() {
        let huge = "W".repeat(5_000);
        let words = "Wide@Words ".repeat(2_000);
        let invoice = PdfInvoice {
            seller_name: huge.clone(),
            number: huge.clone(),
            issue_date: huge.clone(),
            due_date: huge.clone(),
            customer_name: huge.clone(),
            customer_tax_id: huge.clone(),
            customer_address: vec![huge.clone(); 120],
            currency: huge.clone(),
            lines: (0..120)
                .map(|_| PdfLine {
                    description: huge.clone(),
                    quantity: huge.clone(),
                    unit_price: huge.clone(),
                    tax: huge.clone(),
                    total: huge.clone(),
                })
                .collect(),
            subtotal: huge.clone(),
            discount: huge.clone(),
            taxes: vec![(huge.clone(), huge.clone()); 100],
            total: huge.clone(),
            credited: huge.clone(),
            paid: huge.clone(),
            balance: huge.clone(),
            installments: vec![(huge.clone(), huge.clone()); 100],
            payment_reference: huge.clone(),
            pay_link: format!("https://pay.example/{huge}"),
            memo: format!("{words}\n\n{huge}\r\n😀(\\)"),
        };
        let streams = check_structure(&render(&invoice));
        assert!(streams.len() > 10);
        assert_inside_margins(&streams);
    }

    #[test]
    fn pay_link_is_clickable() {
        let pdf = render(&sample());
        check_structure(&pdf);
        assert_eq!(count(&pdf, b"/Subtype /Link"), 1);
        assert_eq!(count(&pdf, b"/URI (https://pay.cobro.mx/i/abc123)"), 1);
        // Only web links become annotations; the text is printed either way.
        let invoice = PdfInvoice { pay_link: "javascript:alert(1)".to_owned(), ..sample() };
        let pdf = render(&invoice);
        let streams = check_structure(&pdf);
        assert_eq!(count(&pdf, b"/Annots"), 0);
        assert!(streams.concat().contains("(javascript:alert\\(1\\))"));
        assert_eq!(web_uri("https://x.mx/ñ a(b)").unwrap(), "(https://x.mx/%C3%B1%20a\\(b\\))");
    }

    #[test]
    fn title_is_utf16() {
        assert_eq!(pdf_text_string("Añ😀"), "<FEFF004100F1D83DDE00>");
        let pdf = render(&sample());
        assert_eq!(count(&pdf, b"/Title <FEFF0049006E0076006F006900630065"), 1);
    }

    /// Reads the files back with poppler's `pdftotext`, when it is installed.
    #[test]
    #[ignore = "needs pdftotext (poppler-utils)"]
    fn pdftotext_reads_it() {
        use std::process::Command;
        if Command::new("pdftotext").arg("-v").output().is_err() {
            eprintln!("pdftotext is not installed; skipped");
            return;
        }
        let mut one = sample();
        one.lines.push(line("Item 199"));
        let many = PdfInvoice { lines: (0..200).map(|i| line(&format!("Item {i}"))).collect(), ..sample() };
        for (name, invoice, pages) in [("one", one, 1), ("many", many, 6)] {
            let path = std::env::temp_dir().join(format!("cobro-pdf-test-{}-{name}.pdf", std::process::id()));
            std::fs::write(&path, render(&invoice)).unwrap();
            let output = Command::new("pdftotext").args(["-layout"]).arg(&path).arg("-").output().unwrap();
            std::fs::remove_file(&path).unwrap();
            assert!(output.status.success());
            assert!(output.stderr.is_empty(), "{}", String::from_utf8_lossy(&output.stderr));
            let text = String::from_utf8(output.stdout).unwrap();
            for expected in ["Acme Cobranzas", "Invoice INV-2026-000042", "Ñandú Comercial", "Item 199"] {
                assert!(text.contains(expected), "missing {expected} in {text}");
            }
            assert!(text.contains("Balance due") && text.contains("1000.00 MXN"));
            assert!(text.contains(&format!("Page {pages} of {pages}")), "{text}");
        }
    }

    fn statement(entries: usize) -> PdfStatement {
        PdfStatement {
            seller_name: String::new(),
            customer_name: "Ñandú Comercial".to_owned(),
            customer_tax_id: "NCO010101AB1".to_owned(),
            currency: "MXN".to_owned(),
            from: "2026-01-01".to_owned(),
            to: "2026-12-31".to_owned(),
            opening: "1000.00".to_owned(),
            entries: (0..entries)
                .map(|i| {
                    let amount = format!("{}.{:02}", 100 + i, i % 100);
                    let (debit, credit) =
                        if i % 2 == 0 { (amount, "0.00".to_owned()) } else { ("0.00".to_owned(), amount) };
                    PdfStatementEntry {
                        date: "2026-03-15".to_owned(),
                        document: format!("DOC-{i}"),
                        description: if i % 2 == 0 { "Invoice" } else { "Payment" }.to_owned(),
                        debit,
                        credit,
                        balance: format!("{}.75", 20_000 + i),
                    }
                })
                .collect(),
            closing: "98765.43".to_owned(),
        }
    }

    #[test]
    fn a_long_statement_spans_pages_and_prints_every_amount() {
        let st = statement(150);
        let pdf = render_statement(&st);
        let streams = check_structure(&pdf);
        let pages = streams.len();
        assert!(pages >= 3, "{pages} pages");
        assert_inside_margins(&streams);
        let first = &streams[0];
        for expected in [
            "(Statement of account)",
            "(\\321and\\372 Comercial)",
            "(Tax ID: NCO010101AB1)",
            "(2026-01-01)",
            "(2026-12-31)",
            "(Opening balance)",
            "(1000.00 MXN)",
        ] {
            assert!(first.contains(expected), "missing {expected}");
        }
        let last = &streams[pages - 1];
        assert!(last.contains("(Closing balance)") && last.contains("(98765.43 MXN)"));
        for (i, stream) in streams.iter().enumerate() {
            assert!(stream.contains(&format!("(Page {} of {pages})", i + 1)), "page {}", i + 1);
            if stream.contains("(DOC-") {
                for title in ["(Date)", "(Document)", "(Description)", "(Debit)", "(Credit)", "(Balance)"] {
                    assert!(stream.contains(title), "{title} on page {}", i + 1);
                }
            }
            if i > 0 {
                assert!(stream.contains("(Statement of account \\(continued\\))"), "page {}", i + 1);
            }
        }
        // Every movement once, with its amount and running balance; zero sides left blank.
        let text = all_text(&streams);
        let once = |t: &str| text.iter().filter(|r| *r == t.as_bytes()).count() == 1;
        for e in &st.entries {
            assert!(once(&e.document), "{}", e.document);
            assert!(once(&e.balance), "{}", e.balance);
            let amount = if e.debit == "0.00" { &e.credit } else { &e.debit };
            assert!(once(amount), "{amount}");
        }
        assert!(!text.iter().any(|t| t == b"0.00"));
        // Amounts are right-aligned in their columns.
        let all = runs(&streams[0]);
        let run = all.iter().find(|r| r.text == st.entries[0].balance.as_bytes()).unwrap();
        assert_eq!(run.x + text_width(&run.text, run.font, run.size), (RIGHT - PAD) * 1000);
    }

    #[test]
    fn an_empty_statement_says_so() {
        let st = PdfStatement { opening: "0.00".to_owned(), closing: "0.00".to_owned(), ..statement(0) };
        let streams = check_structure(&render_statement(&st));
        assert_eq!(streams.len(), 1);
        let content = streams.concat();
        assert!(content.contains("(No movements in this period)"));
        assert!(content.contains("(Opening balance)") && content.contains("(Closing balance)"));
        assert!(content.contains("(0.00 MXN)"));
        assert!(content.contains("(Page 1 of 1)"));
    }

    #[test]
    fn hostile_statement_stays_on_the_page() {
        let huge = "W".repeat(3_000);
        let entry = PdfStatementEntry {
            date: huge.clone(),
            document: huge.clone(),
            description: huge.clone(),
            debit: huge.clone(),
            credit: huge.clone(),
            balance: huge.clone(),
        };
        let st = PdfStatement {
            seller_name: huge.clone(),
            customer_name: huge.clone(),
            customer_tax_id: huge.clone(),
            currency: huge.clone(),
            from: huge.clone(),
            to: huge.clone(),
            opening: huge.clone(),
            entries: vec![entry; 100],
            closing: huge,
        };
        let streams = check_structure(&render_statement(&st));
        assert!(streams.len() > 2);
        assert_inside_margins(&streams);
    }

    /// Reads a long statement back with poppler's `pdftotext`, when it is installed.
    #[test]
    #[ignore = "needs pdftotext (poppler-utils)"]
    fn pdftotext_reads_the_statement() {
        use std::process::Command;
        if Command::new("pdftotext").arg("-v").output().is_err() {
            eprintln!("pdftotext is not installed; skipped");
            return;
        }
        let st = statement(150);
        let pages = check_structure(&render_statement(&st)).len();
        let path = std::env::temp_dir().join(format!("cobro-pdf-test-{}-statement.pdf", std::process::id()));
        std::fs::write(&path, render_statement(&st)).unwrap();
        let output = Command::new("pdftotext").args(["-layout"]).arg(&path).arg("-").output().unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(output.status.success());
        assert!(output.stderr.is_empty(), "{}", String::from_utf8_lossy(&output.stderr));
        let text = String::from_utf8(output.stdout).unwrap();
        for expected in ["Statement of account", "Ñandú Comercial", "Opening balance", "DOC-149", "20149.75"] {
            assert!(text.contains(expected), "missing {expected} in {text}");
        }
        assert!(text.contains("Closing balance") && text.contains("98765.43 MXN"));
        assert!(text.contains(&format!("Page {pages} of {pages}")), "{text}");
    }

    #[test]
    fn milli_formats_numbers() {
        assert_eq!(milli(54_000), "54");
        assert_eq!(milli(312_456), "312.456");
        assert_eq!(milli(7), "0.007");
        assert_eq!(milli(-1_500), "-1.500");
    }
}
