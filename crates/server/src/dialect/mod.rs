//! The wire dialects. Each translates its own request and error shapes to and from the core.

pub mod broker;
pub mod connectware;
pub mod thingsboard;
