//! The REST/JSON API under `/v1` for e-commerce plugins and scripts, authenticated by API key
//! (exchanged at identity for a short-lived token), and its OpenAPI 3 document at
//! `/openapi.json`, generated from the same route table the router is built from.

use std::sync::Arc;

use crate::pages::Pages;

pub fn routes() -> axum::Router<Arc<Pages>> {
    axum::Router::new()
}
