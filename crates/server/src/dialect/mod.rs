//! The wire dialects. Each translates its own request and error shapes to and from the core.

pub mod connectware;
