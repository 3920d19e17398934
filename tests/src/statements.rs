//! Bank statements as a bank would send them, for tests that import one.

/// One credit on a statement: who paid, how much, and what they wrote.
pub struct Credit<'a> {
    pub amount: &'a str,
    pub payer: &'a str,
    /// The structured creditor reference (RF…) when the payer quoted one.
    pub reference: Option<&'a str>,
    /// Free remittance text otherwise.
    pub remittance: &'a str,
}

/// A camt.053 day statement of one MXN account (its CLABE as `Othr/Id`) with one credit.
pub fn camt053(account: &str, day: &str, credit: &Credit<'_>) -> String {
    let remittance = match credit.reference {
        Some(reference) => format!(
            "<Strd><CdtrRefInf><Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry></Tp><Ref>{reference}</Ref></CdtrRefInf></Strd>"
        ),
        None => format!("<Ustrd>{}</Ustrd>", credit.remittance),
    };
    let (amount, payer) = (credit.amount, credit.payer);
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">
<BkToCstmrStmt>
<GrpHdr><MsgId>BBVA-{day}</MsgId><CreDtTm>{day}T23:00:00-06:00</CreDtTm></GrpHdr>
<Stmt>
<Id>STMT-{day}</Id><CreDtTm>{day}T23:00:00-06:00</CreDtTm>
<Acct><Id><Othr><Id>{account}</Id></Othr></Id><Ccy>MXN</Ccy></Acct>
<Ntry>
<NtryRef>SPEI-{day}-0001</NtryRef>
<Amt Ccy="MXN">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>
<BookgDt><Dt>{day}</Dt></BookgDt><ValDt><Dt>{day}</Dt></ValDt>
<NtryDtls><TxDtls>
<RltdPties><Dbtr><Nm>{payer}</Nm></Dbtr></RltdPties>
<RmtInf>{remittance}</RmtInf>
</TxDtls></NtryDtls>
</Ntry>
</Stmt>
</BkToCstmrStmt>
</Document>
"#
    )
}
