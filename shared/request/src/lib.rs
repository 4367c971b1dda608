//! Parsers of what clients send, apart from the HTTP server so that they build (and are
//! fuzzed, `fuzz/`) in seconds: Glance's JSON-patch dialects for `PATCH /v2/images/{id}`
//! ([`patch`]) and the query string of `GET /v2/images` ([`list_query`]).
//!
//! Refusals are [`ParseError`]s; the API maps them to Glance's status codes.

pub mod list_query;
pub mod patch;

/// Why a request was refused, with Glance's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 415 for a PATCH in a media type that is not one of the two dialects.
    #[error("{0}")]
    UnsupportedPatchType(String),
}

pub type ParseResult<T> = Result<T, ParseError>;

fn bad(msg: impl Into<String>) -> ParseError {
    ParseError::BadRequest(msg.into())
}

/// A request body as JSON, or Glance's 400 for one that is not.
pub fn parse_json(body: &[u8]) -> ParseResult<serde_json::Value> {
    serde_json::from_slice(body).map_err(|e| bad(format!("Malformed JSON in request body: {e}")))
}
