//! Topic filters and names from untrusted text: parsing never panics, and the matching rules
//! keep their invariants (a valid topic matches itself; covering implies matching).
#![no_main]

use gatehouse_core::topic::{TopicFilter, TopicName};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // Split the input into a permission filter, a requested filter and a topic.
    let mut parts = text.splitn(3, '\n');
    let (first, second, third) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let permission = TopicFilter::parse(first, "f");
    let requested = TopicFilter::parse(second, "f");
    let topic = TopicName::parse(third, "t");
    if let Ok(name) = TopicName::parse(first, "t") {
        let as_filter = TopicFilter::parse(first, "f").expect("a topic name is a valid filter");
        assert!(as_filter.matches(&name), "a topic matches itself");
    }
    if let (Ok(permission), Ok(requested), Ok(topic)) = (permission, requested, topic) {
        if permission.covers(&requested) && requested.matches(&topic) {
            assert!(permission.matches(&topic), "covering implies matching");
        }
        let _ = permission.matches(&TopicName::from_http_path(third));
    }
});
