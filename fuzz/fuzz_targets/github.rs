//! The github source's parser: arbitrary bytes as the body, no headers.
#![no_main]

use dockhand::config::SourceKind;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dockhand_fuzz::parse_without_headers(SourceKind::Github, data);
});
