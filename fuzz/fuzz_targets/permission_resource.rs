//! Permission resources and HTTP authorization from untrusted text: parsing and deciding never
//! panic for any resource, method and path, and `readWrite` allows whatever `read` allows.
#![no_main]

use gatehouse_core::permission::{Context, Grant, Operation, PermissionSet, Resource};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.splitn(3, '\n');
    let (resource, method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    for context in [Context::Http, Context::Mqtt] {
        if let Ok(resource) = Resource::parse(resource, context) {
            if context == Context::Http {
                assert!(resource.as_str().starts_with('/') || resource.as_str() == "#" || resource.as_str() == "+");
            }
            let read = PermissionSet::new([Grant { resource: resource.clone(), operation: Operation::Read, context }]);
            let both = PermissionSet::new([Grant { resource, operation: Operation::ReadWrite, context }]);
            // readWrite allows everything read allows.
            if read.allows_http(method, path) {
                assert!(both.allows_http(method, path));
            }
        }
    }
    let _ = method.parse::<Operation>();
    let _ = method.parse::<Context>();
});
