//! The gitea source as the HTTP layer drives it: authenticate, verify_body (HMAC-SHA256
//! with a fixed secret) and parse, on headers and a body split from the input.
//!
//! Input: one flags byte (bit 0: the harness adds the correct signature; bit 1: the secret
//! is offered as `?token=`), then `name: value` lines, a blank line, and the body.
#![no_main]

use dockhand::config::SourceKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dockhand_fuzz::hmac_request(SourceKind::Gitea, data);
});
