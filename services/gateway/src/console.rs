//! The staff console: collection KPIs and charts, customers, invoices, the reminder policy
//! editor, the reconciliation queue, the hardship and dispute inbox, users and API keys.

use std::sync::Arc;

use crate::pages::Pages;

pub const TEMPLATES: &[(&str, &str)] = &[("console_nav.html", include_str!("../templates/console_nav.html"))];

pub fn routes() -> axum::Router<Arc<Pages>> {
    axum::Router::new()
}
