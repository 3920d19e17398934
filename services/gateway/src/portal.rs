//! The customer portal: what a portal contact sees of their own customer (dashboard, invoices,
//! paying, history, statements, saved cards and autopay, "I can't pay", disputes, preferences,
//! help). Every call goes to the services with the contact's own token, so another customer's
//! ids answer NotFound there and 404 here.

use std::sync::Arc;

use crate::pages::Pages;

pub const TEMPLATES: &[(&str, &str)] = &[("portal_nav.html", include_str!("../templates/portal_nav.html"))];

pub fn routes() -> axum::Router<Arc<Pages>> {
    axum::Router::new()
}
