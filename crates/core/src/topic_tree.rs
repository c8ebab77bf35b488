//! A user's MQTT permissions compiled into a tree of topic levels, so that the broker hot path
//! answers "may publish to T", "may receive on T" and "may subscribe to F" by walking the
//! levels of T or F once, instead of comparing every permission's filter in turn.
//!
//! Each node is one level of one or more permission filters: literal children by name, one
//! child for `+`, the operations of filters that end at this node (`exact`) and of filters that
//! end here with `#` (`rest`, which also covers this level itself, as `a/#` matches `a`). The
//! answers are those of [`crate::topic`]'s rules for one permission at a time (a subscription
//! must be covered by a single permission), which the property tests below check against
//! [`crate::permission::PermissionSet`].

use std::collections::HashMap;
use std::str::Split;

use crate::permission::Operation;
use crate::topic::{TopicFilter, TopicName};

/// The operations a node grants, as bits.
const READ: u8 = 1;
const WRITE: u8 = 2;

fn bits(operation: Operation) -> u8 {
    match operation {
        Operation::Read => READ,
        Operation::Write => WRITE,
        Operation::ReadWrite => READ | WRITE,
    }
}

/// One level of the tree.
#[derive(Debug, Default)]
struct Node {
    literal: HashMap<Box<str>, Node>,
    plus: Option<Box<Node>>,
    /// Operations of filters that end at this node.
    exact: u8,
    /// Operations of filters that end at this node with `#`.
    rest: u8,
}

/// Compiled MQTT permissions.
#[derive(Debug, Default)]
pub struct TopicTree {
    root: Node,
}

impl TopicTree {
    /// Compiles `(filter, operation)` pairs.
    pub fn new<'a>(grants: impl IntoIterator<Item = (&'a TopicFilter, Operation)>) -> Self {
        let mut root = Node::default();
        for (filter, operation) in grants {
            let mut node = &mut root;
            let mut ended_with_hash = false;
            for level in filter.as_str().split('/') {
                match level {
                    "#" => {
                        node.rest |= bits(operation);
                        ended_with_hash = true;
                        break;
                    }
                    "+" => node = node.plus.get_or_insert_with(Box::default),
                    literal => node = node.literal.entry(literal.into()).or_default(),
                }
            }
            if !ended_with_hash {
                node.exact |= bits(operation);
            }
        }
        Self { root }
    }

    /// Whether `wanted` (read: receive, write: publish) on the topic name `topic` is allowed.
    pub fn allows(&self, wanted: Operation, topic: &TopicName) -> bool {
        matches_topic(&self.root, topic.as_str().split('/'), bits(wanted), true)
    }

    /// Whether one permission with `wanted` covers the subscription filter `requested`.
    pub fn allows_filter(&self, wanted: Operation, requested: &TopicFilter) -> bool {
        covers_filter(
            &self.root,
            requested.as_str().split('/'),
            bits(wanted),
            true,
        )
    }
}

/// Whether a `$` level at the root hides the wildcards there (MQTT §4.7.2).
fn hides_wildcards(at_root: bool, level: Option<&str>) -> bool {
    at_root && level.is_some_and(|level| level.starts_with('$'))
}

fn matches_topic(node: &Node, mut levels: Split<'_, char>, wanted: u8, at_root: bool) -> bool {
    let level = levels.next();
    let dollar = hides_wildcards(at_root, level);
    if !dollar && node.rest & wanted != 0 {
        return true;
    }
    let Some(level) = level else {
        return node.exact & wanted != 0;
    };
    if let Some(child) = node.literal.get(level) {
        if matches_topic(child, levels.clone(), wanted, false) {
            return true;
        }
    }
    !dollar
        && node
            .plus
            .as_ref()
            .is_some_and(|plus| matches_topic(plus, levels, wanted, false))
}

fn covers_filter(node: &Node, mut levels: Split<'_, char>, wanted: u8, at_root: bool) -> bool {
    let level = levels.next();
    let dollar = hides_wildcards(at_root, level);
    // A permission's `#` covers whatever the request has left, wildcards included.
    if !dollar && node.rest & wanted != 0 {
        return true;
    }
    match level {
        None => node.exact & wanted != 0,
        // Only a `#` of the permission covers a requested `#`.
        Some("#") => false,
        // Only a `+` of the permission covers a requested `+`.
        Some("+") => node
            .plus
            .as_ref()
            .is_some_and(|plus| covers_filter(plus, levels, wanted, false)),
        Some(literal) => {
            node.literal
                .get(literal)
                .is_some_and(|child| covers_filter(child, levels.clone(), wanted, false))
                || (!dollar
                    && node
                        .plus
                        .as_ref()
                        .is_some_and(|plus| covers_filter(plus, levels, wanted, false)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permission::{Context, Grant, PermissionSet, Resource};
    use crate::topic::strategies::{filter_strategy, topic_strategy};
    use proptest::prelude::*;

    fn operation() -> impl Strategy<Value = Operation> {
        prop_oneof![
            Just(Operation::Read),
            Just(Operation::Write),
            Just(Operation::ReadWrite)
        ]
    }

    /// The tree and the reference (the permission-by-permission check) over the same grants.
    fn both(grants: &[(String, Operation)]) -> (TopicTree, PermissionSet) {
        let grants: Vec<Grant> = grants
            .iter()
            .map(|(filter, operation)| Grant {
                resource: Resource::parse(filter, Context::Mqtt).unwrap(),
                operation: *operation,
                context: Context::Mqtt,
            })
            .collect();
        let tree = TopicTree::new(
            grants
                .iter()
                .map(|grant| (grant.resource.filter(), grant.operation)),
        );
        (tree, PermissionSet::new(grants))
    }

    #[test]
    fn examples() {
        let (tree, _) = both(&[
            ("plant1/#".into(), Operation::Write),
            ("cmd/+/in".into(), Operation::Read),
            ("$SYS/broker/#".into(), Operation::Read),
            ("a".into(), Operation::Read),
            ("a/+/#".into(), Operation::Read),
        ]);
        let topic = |text: &str| TopicName::parse(text, "t").unwrap();
        let filter = |text: &str| TopicFilter::parse(text, "f").unwrap();
        assert!(tree.allows(Operation::Write, &topic("plant1")));
        assert!(tree.allows(Operation::Write, &topic("plant1/l1/t")));
        assert!(!tree.allows(Operation::Read, &topic("plant1/l1/t")));
        assert!(tree.allows(Operation::Read, &topic("cmd/d1/in")));
        assert!(!tree.allows(Operation::Read, &topic("cmd/d1/out")));
        assert!(tree.allows(Operation::Read, &topic("$SYS/broker/load")));
        assert!(tree.allows_filter(Operation::Read, &filter("cmd/+/in")));
        assert!(!tree.allows_filter(Operation::Read, &filter("cmd/#")));
        assert!(tree.allows_filter(Operation::Read, &filter("$SYS/broker/#")));
        // `a` and `a/+/#` together do not cover `a/#`: no single permission does.
        assert!(!tree.allows_filter(Operation::Read, &filter("a/#")));
        let (hash, _) = both(&[("#".into(), Operation::ReadWrite)]);
        assert!(!hash.allows(Operation::Read, &topic("$SYS/x")));
        assert!(!hash.allows_filter(Operation::Read, &filter("$SYS/#")));
        assert!(hash.allows_filter(Operation::Read, &filter("#")));
    }

    proptest! {
        #[test]
        fn publish_and_receive_answer_as_the_reference(
            grants in prop::collection::vec((filter_strategy(), operation()), 0..8),
            t in topic_strategy(),
            wanted in prop_oneof![Just(Operation::Read), Just(Operation::Write)],
        ) {
            let (tree, reference) = both(&grants);
            let name = TopicName::parse(&t, "t").unwrap();
            prop_assert_eq!(
                tree.allows(wanted, &name),
                reference.allows(Context::Mqtt, wanted, &name),
                "{:?} {:?} {}", grants, wanted, t
            );
        }

        #[test]
        fn subscribe_answers_as_the_reference(
            grants in prop::collection::vec((filter_strategy(), operation()), 0..8),
            f in filter_strategy(),
            wanted in prop_oneof![Just(Operation::Read), Just(Operation::Write)],
        ) {
            let (tree, reference) = both(&grants);
            let requested = TopicFilter::parse(&f, "f").unwrap();
            prop_assert_eq!(
                tree.allows_filter(wanted, &requested),
                reference.allows_filter(Context::Mqtt, wanted, &requested),
                "{:?} {:?} {}", grants, wanted, f
            );
        }
    }
}
