//! Reports: telling people how a deploy went.
//!
//! - [`callback`]: the sender's `callback_url` (Docker Hub's, or the generic source's),
//!   POSTed once every deployment an event asked for has ended.

pub mod callback;

pub use callback::Reporter;
