//! Pages and endpoints without sign-in: payment-link pages (only what the link grants), the
//! sandbox's 3-D Secure challenge page, and processor webhooks forwarded to payments.

use std::sync::Arc;

use crate::pages::Pages;

pub const TEMPLATES: &[(&str, &str)] = &[];

pub fn routes() -> axum::Router<Arc<Pages>> {
    axum::Router::new()
}
