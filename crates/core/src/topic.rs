//! MQTT topic names and topic filters, and the matching rules between them.
//!
//! Both MQTT permissions (topics) and HTTP permissions (request paths, which begin with `/`) are
//! written as MQTT topic filters, so this module is the one place that decides whether a resource
//! is covered by a permission. The rules follow MQTT 3.1.1 / 5.0 §4.7:
//! - `+` matches exactly one level, `#` matches any number of levels (including none, so `a/#`
//!   matches `a`) and may only stand last;
//! - a wildcard must occupy a whole level (`a+/b` is invalid);
//! - topics whose first level starts with `$` (e.g. `$SYS/...`) are not matched by a filter whose
//!   first level is a wildcard (§4.7.2).

use std::fmt;

use crate::error::CoreError;

/// Longest topic or filter accepted, in bytes (the MQTT limit for a UTF-8 string).
pub const MAX_TOPIC_BYTES: usize = 65_535;

/// A validated MQTT topic filter (may contain `+` and `#`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicFilter(String);

/// A validated MQTT topic name (no wildcards), e.g. a publish topic or an HTTP request path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicName(String);

fn check_common(text: &str, field: &'static str) -> Result<(), CoreError> {
    if text.is_empty() {
        return Err(CoreError::invalid(field, "must not be empty"));
    }
    if text.len() > MAX_TOPIC_BYTES {
        return Err(CoreError::invalid(field, "is longer than 65535 bytes"));
    }
    if text.contains('\0') {
        return Err(CoreError::invalid(field, "must not contain NUL characters"));
    }
    Ok(())
}

impl TopicFilter {
    /// Parses a topic filter, rejecting misplaced wildcards, NUL characters and empty input.
    pub fn parse(text: &str, field: &'static str) -> Result<Self, CoreError> {
        check_common(text, field)?;
        let levels: Vec<&str> = text.split('/').collect();
        let last = levels.len() - 1;
        for (index, level) in levels.iter().enumerate() {
            if level.contains('#') && (*level != "#" || index != last) {
                return Err(CoreError::invalid(
                    field,
                    "'#' must be the whole last level of a filter",
                ));
            }
            if level.contains('+') && *level != "+" {
                return Err(CoreError::invalid(field, "'+' must occupy a whole level"));
            }
        }
        Ok(Self(text.to_owned()))
    }

    /// The filter as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this filter matches the concrete topic `topic`.
    pub fn matches(&self, topic: &TopicName) -> bool {
        filter_matches_levels(&self.0, &topic.0, false)
    }

    /// Whether every topic matched by `requested` is also matched by `self` — the test for a
    /// subscription with wildcards: a permission `a/#` covers a request `a/+/b`, while `a/+`
    /// does not cover `a/#`.
    pub fn covers(&self, requested: &TopicFilter) -> bool {
        filter_matches_levels(&self.0, &requested.0, true)
    }
}

impl TopicName {
    /// Parses a topic name: a filter without wildcards.
    pub fn parse(text: &str, field: &'static str) -> Result<Self, CoreError> {
        check_common(text, field)?;
        if text.contains(['+', '#']) {
            return Err(CoreError::invalid(field, "must not contain wildcards"));
        }
        Ok(Self(text.to_owned()))
    }

    /// Wraps an HTTP request path as a topic name. No validation is needed: a filter can only
    /// name `+` or `#` as whole-level wildcards, so such characters in a path are plain data that
    /// no literal filter level equals, and a path never starts with `$`.
    pub fn from_http_path(path: &str) -> Self {
        Self(path.to_owned())
    }

    /// The topic as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TopicFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Level-by-level comparison of a permission filter against a subject. When `subject_is_filter`
/// is true the subject may itself hold wildcards and must be a subset of the permission.
fn filter_matches_levels(filter: &str, subject: &str, subject_is_filter: bool) -> bool {
    // §4.7.2: a leading wildcard never matches a `$` topic.
    if subject.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut filter_levels = filter.split('/');
    let mut subject_levels = subject.split('/');
    loop {
        match (filter_levels.next(), subject_levels.next()) {
            // `#` covers whatever remains, including nothing (the parent level) and a `#`.
            (Some("#"), _) => return true,
            (None, None) => return true,
            (Some(_), None) => return false,
            (None, Some(_)) => return false,
            (Some(f), Some(s)) => {
                if subject_is_filter && s == "#" {
                    // Only a `#` in the permission covers a requested `#`; handled above.
                    return false;
                }
                if f == "+" {
                    continue;
                }
                if subject_is_filter && s == "+" {
                    // A requested `+` spans all values of a level; a literal cannot cover it.
                    return false;
                }
                if f != s {
                    return false;
                }
            }
        }
    }
}

/// Generators of topics and filters for property tests, from a small alphabet so that matches,
/// `$` topics and empty levels come up often.
#[cfg(test)]
pub(crate) mod strategies {
    use proptest::prelude::*;

    fn level() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_owned()),
            Just("b".to_owned()),
            Just("".to_owned()),
            Just("$x".to_owned()),
            "[a-c]{1,3}",
        ]
    }
    pub(crate) fn topic_strategy() -> impl Strategy<Value = String> {
        prop::collection::vec(level(), 1..5)
            .prop_map(|levels| levels.join("/"))
            .prop_filter("a topic is never empty", |topic| !topic.is_empty())
    }
    pub(crate) fn filter_strategy() -> impl Strategy<Value = String> {
        prop::collection::vec(prop_oneof![level(), Just("+".to_owned())], 1..5)
            .prop_flat_map(|levels| {
                prop::bool::ANY.prop_map(move |hash| {
                    let mut levels = levels.clone();
                    if hash {
                        levels.push("#".to_owned());
                    }
                    levels.join("/")
                })
            })
            .prop_filter("a filter is never empty", |filter| !filter.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::strategies::{filter_strategy, topic_strategy};
    use super::*;
    use proptest::prelude::*;

    fn filter(text: &str) -> TopicFilter {
        TopicFilter::parse(text, "resource").unwrap()
    }
    fn topic(text: &str) -> TopicName {
        TopicName::parse(text, "topic").unwrap()
    }

    #[test]
    fn rejects_malformed_filters() {
        for bad in ["", "a/#/b", "a#", "a/b#", "+a", "a/+b/c", "a\0b", "##"] {
            assert!(
                TopicFilter::parse(bad, "f").is_err(),
                "{bad:?} should be rejected"
            );
        }
        for good in [
            "#",
            "+",
            "a/#",
            "+/+",
            "/",
            "a//b",
            "/api/users/#",
            "$SYS/#",
            "a/+/c",
        ] {
            assert!(
                TopicFilter::parse(good, "f").is_ok(),
                "{good:?} should be accepted"
            );
        }
        assert!(TopicFilter::parse(&"a".repeat(MAX_TOPIC_BYTES + 1), "f").is_err());
    }

    #[test]
    fn topic_names_reject_wildcards() {
        assert!(TopicName::parse("a/+", "t").is_err());
        assert!(TopicName::parse("a/#", "t").is_err());
        assert!(TopicName::parse("", "t").is_err());
        assert!(TopicName::parse("a/b", "t").is_ok());
    }

    #[test]
    fn spec_examples() {
        // MQTT 5.0 §4.7.1.2 and §4.7.1.3
        assert!(filter("sport/tennis/player1/#").matches(&topic("sport/tennis/player1")));
        assert!(filter("sport/tennis/player1/#").matches(&topic("sport/tennis/player1/ranking")));
        assert!(filter("sport/tennis/player1/#")
            .matches(&topic("sport/tennis/player1/score/wimbledon")));
        assert!(filter("sport/#").matches(&topic("sport")));
        assert!(filter("sport/tennis/+").matches(&topic("sport/tennis/player1")));
        assert!(!filter("sport/tennis/+").matches(&topic("sport/tennis/player1/ranking")));
        assert!(filter("sport/+").matches(&topic("sport/")));
        assert!(!filter("sport/+").matches(&topic("sport")));
        assert!(filter("+/+").matches(&topic("/finance")));
        assert!(filter("/+").matches(&topic("/finance")));
        assert!(!filter("+").matches(&topic("/finance")));
        assert!(filter("#").matches(&topic("/")));
    }

    #[test]
    fn dollar_topics_are_not_matched_by_leading_wildcards() {
        assert!(!filter("#").matches(&topic("$SYS/broker")));
        assert!(!filter("+/broker").matches(&topic("$SYS/broker")));
        assert!(filter("$SYS/#").matches(&topic("$SYS/broker")));
        assert!(filter("$SYS/+").matches(&topic("$SYS/broker")));
        assert!(!filter("#").covers(&filter("$SYS/#")));
    }

    #[test]
    fn http_paths_match_level_by_level() {
        let path = TopicName::from_http_path("/api/users/42");
        assert!(filter("/api/users/#").matches(&path));
        assert!(filter("/api/+/42").matches(&path));
        assert!(filter("#").matches(&path));
        assert!(!filter("/api/roles/#").matches(&path));
        assert!(filter("/api/users/#").matches(&TopicName::from_http_path("/api/users")));
        // A `+` or `#` inside a path is literal data: only a wildcard level matches it.
        let odd = TopicName::from_http_path("/api/a+b/#");
        assert!(filter("/api/+/+").matches(&odd));
        assert!(!filter("/api/+").matches(&odd));
        assert!(!filter("/api/users/#").matches(&odd));
    }

    #[test]
    fn covering_filters() {
        assert!(filter("a/#").covers(&filter("a/+/b")));
        assert!(filter("a/#").covers(&filter("a/#")));
        assert!(filter("a/#").covers(&filter("a")));
        assert!(!filter("a/+").covers(&filter("a/#")));
        assert!(filter("a/+").covers(&filter("a/+")));
        assert!(!filter("a/b").covers(&filter("a/+")));
        assert!(filter("+/b").covers(&filter("x/b")));
        assert!(!filter("a/+/c").covers(&filter("a/+/#")));
        assert!(filter("#").covers(&filter("#")));
    }

    proptest! {
        #[test]
        fn a_topic_is_matched_by_itself_and_by_hash(t in topic_strategy()) {
            let name = topic(&t);
            prop_assert!(filter(&t).matches(&name));
            prop_assert_eq!(filter("#").matches(&name), !t.starts_with('$'));
        }

        #[test]
        fn covering_implies_matching(f in filter_strategy(), g in filter_strategy(), t in topic_strategy()) {
            // If permission f covers request g, every topic g matches is matched by f.
            let (f, g, name) = (filter(&f), filter(&g), topic(&t));
            if f.covers(&g) && g.matches(&name) {
                prop_assert!(f.matches(&name), "{} covers {} but not {}", f, g, name);
            }
        }

        #[test]
        fn a_topic_as_a_filter_is_covered_exactly_when_matched(f in filter_strategy(), t in topic_strategy()) {
            let (f, as_filter, name) = (filter(&f), filter(&t), topic(&t));
            prop_assert_eq!(f.covers(&as_filter), f.matches(&name));
        }

        #[test]
        fn covering_is_reflexive(f in filter_strategy()) {
            let f = filter(&f);
            prop_assert!(f.covers(&f));
        }

        #[test]
        fn parsing_never_panics(text in ".{0,40}") {
            let _ = TopicFilter::parse(&text, "f");
            let _ = TopicName::parse(&text, "t");
            let _ = TopicName::from_http_path(&text);
        }
    }
}
