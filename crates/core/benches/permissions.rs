//! The permission engine on the broker hot path: a user with 100 MQTT permissions, asked
//! "may publish to T" and "may subscribe to F" by the compiled [`TopicTree`], against the
//! baseline of checking the same permissions one by one ([`PermissionSet`]) in the same run.
//! Results are read as ratios (BENCHMARKS.md), never asserted.
//!
//! Run: `cargo bench -p gatehouse-core --bench permissions`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use gatehouse_core::permission::{Context, Grant, Operation, PermissionSet, Resource};
use gatehouse_core::topic::{TopicFilter, TopicName};
use gatehouse_core::topic_tree::TopicTree;

/// 100 permissions as a plant's devices have them: per-line write filters, per-device command
/// filters with `+`, a few `#` subtrees; the permission that allows is among the last.
fn grants() -> Vec<Grant> {
    let mut grants = Vec::new();
    for line in 0..40 {
        grants.push(format!("plant1/line{line}/+/telemetry"));
    }
    for device in 0..40 {
        grants.push(format!("cmd/device{device}/#"));
    }
    for area in 0..19 {
        grants.push(format!("area{area}/+/status/#"));
    }
    grants.push("site/9/line/77/sensor/+/value".to_owned());
    grants
        .into_iter()
        .enumerate()
        .map(|(index, resource)| Grant {
            resource: Resource::parse(&resource, Context::Mqtt).expect("valid filter"),
            operation: if index % 2 == 0 {
                Operation::ReadWrite
            } else {
                Operation::Write
            },
            context: Context::Mqtt,
        })
        .collect()
}

fn permissions(c: &mut Criterion) {
    let grants = grants();
    let tree = TopicTree::new(
        grants
            .iter()
            .map(|grant| (grant.resource.filter(), grant.operation)),
    );
    let baseline = PermissionSet::new(grants);
    let allowed = TopicName::parse("site/9/line/77/sensor/s12/value", "t").expect("topic");
    let refused = TopicName::parse("site/9/line/77/sensor/s12/raw", "t").expect("topic");
    let filter = TopicFilter::parse("area18/+/status/#", "f").expect("filter");
    assert!(tree.allows(Operation::Write, &allowed));
    assert!(baseline.allows(Context::Mqtt, Operation::Write, &allowed));

    let mut group = c.benchmark_group("publish, 100 permissions");
    group.bench_function("tree, allowed", |b| {
        b.iter(|| tree.allows(Operation::Write, black_box(&allowed)))
    });
    group.bench_function("baseline, allowed", |b| {
        b.iter(|| baseline.allows(Context::Mqtt, Operation::Write, black_box(&allowed)))
    });
    group.bench_function("tree, refused", |b| {
        b.iter(|| tree.allows(Operation::Write, black_box(&refused)))
    });
    group.bench_function("baseline, refused", |b| {
        b.iter(|| baseline.allows(Context::Mqtt, Operation::Write, black_box(&refused)))
    });
    group.finish();

    let mut group = c.benchmark_group("subscribe, 100 permissions");
    group.bench_function("tree", |b| {
        b.iter(|| tree.allows_filter(Operation::Read, black_box(&filter)))
    });
    group.bench_function("baseline", |b| {
        b.iter(|| baseline.allows_filter(Context::Mqtt, Operation::Read, black_box(&filter)))
    });
    group.finish();
}

criterion_group!(benches, permissions);
criterion_main!(benches);
