use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::upstream::topology::select::Node;

fn endpoint(id: &str) -> Arc<Endpoint> {
    Node::for_test(id, Duration::ZERO, false).endpoint
}

/// A view of `ids`, none lagging, with `writer` confirmed.
fn view(ids: &[&str], writer: Option<&str>) -> View {
    View {
        nodes: ids
            .iter()
            .map(|id| Node::for_test(id, Duration::ZERO, false))
            .collect(),
        writer: writer.map(Into::into),
    }
}

fn state() -> (Arc<ClusterState>, TopologyMetrics) {
    let metrics = TopologyMetrics::default();
    let state = ClusterState::new(
        "orders".into(),
        vec!["orders".into(), "orders-2".into()],
        Duration::from_secs(10),
        metrics.clone(),
    );
    (Arc::new(state), metrics)
}

fn instance(pick: Pick) -> String {
    match pick {
        Pick::Instance(e) => e.instance.as_deref().unwrap_or_default().to_owned(),
        Pick::Endpoint => "(endpoint)".into(),
    }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

#[tokio::test]
async fn until_read_and_in_fallback_sessions_dial_the_endpoint() {
    let (s, _) = state();
    assert_eq!(
        instance(s.pick(Role::Writer, soon()).await.unwrap()),
        "(endpoint)"
    );
    s.publish(view(&["w", "r"], Some("w")));
    assert_eq!(instance(s.pick(Role::Writer, soon()).await.unwrap()), "w");
    assert_eq!(instance(s.pick(Role::Reader, soon()).await.unwrap()), "r");
    s.fall_back();
    assert_eq!(
        instance(s.pick(Role::Reader, soon()).await.unwrap()),
        "(endpoint)"
    );
}

#[tokio::test]
async fn writer_sessions_wait_through_a_failover_and_go_to_the_new_writer() {
    let (s, metrics) = state();
    s.publish(view(&["w", "r1", "r2"], Some("w")));
    s.unreachable(&endpoint("w"));
    let waiting = tokio::spawn({
        let s = s.clone();
        async move { s.pick(Role::Writer, soon()).await }
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished(), "no writer yet: the session waits");
    // Readers still get sessions meanwhile.
    assert!(instance(s.pick(Role::Reader, soon()).await.unwrap()).starts_with('r'));
    s.publish(view(&["r1", "r2"], Some("r1")));
    let got = tokio::time::timeout(Duration::from_secs(1), waiting)
        .await
        .expect("the waiting session resumes")
        .unwrap()
        .unwrap();
    assert_eq!(instance(got), "r1");
    let text = {
        let mut registry = prometheus_client::registry::Registry::default();
        metrics.register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        out
    };
    assert!(
        text.contains("writer_changes_total{target=\"orders\"} 1"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_session_waits_no_longer_than_its_deadline() {
    let (s, _) = state();
    s.publish(view(&["w"], Some("w")));
    s.searching(true);
    let started = Instant::now();
    let err = s
        .pick(Role::Writer, started + Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(matches!(err, UpstreamError::NoInstance { .. }), "{err}");
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(started.elapsed() < Duration::from_millis(2200));
}

#[tokio::test]
async fn writer_sessions_on_the_old_writer_are_superseded_and_reader_sessions_are_not() {
    let (s, _) = state();
    s.publish(view(&["w", "r"], Some("w")));
    let mut on_writer = s.opened(Role::Writer, &endpoint("w"), "orders").unwrap();
    let mut on_reader = s.opened(Role::Reader, &endpoint("r"), "orders-2").unwrap();
    // The same writer confirmed again, or no writer for a while: nothing to close.
    s.publish(view(&["w", "r"], Some("w")));
    s.searching(false);
    let early = tokio::time::timeout(Duration::from_millis(50), on_writer.superseded()).await;
    assert!(early.is_err(), "closed without a writer change");
    s.publish(view(&["r"], Some("r")));
    tokio::time::timeout(Duration::from_secs(1), on_writer.superseded())
        .await
        .expect("the old writer's session is told");
    let reader = tokio::time::timeout(Duration::from_millis(50), on_reader.superseded()).await;
    assert!(reader.is_err(), "a reader session stays");
}

#[tokio::test]
async fn reader_sessions_go_to_the_least_loaded_reader_and_counts_follow_the_guards() {
    let (s, _) = state();
    s.publish(view(&["w", "r1", "r2"], Some("w")));
    let a = s.opened(Role::Reader, &endpoint("r1"), "orders-2");
    let b = s.opened(Role::Reader, &endpoint("r1"), "orders-2");
    for _ in 0..3 {
        assert_eq!(instance(s.pick(Role::Reader, soon()).await.unwrap()), "r2");
    }
    drop((a, b));
    let mut seen: Vec<String> = Vec::new();
    for _ in 0..4 {
        seen.push(instance(s.pick(Role::Reader, soon()).await.unwrap()));
    }
    seen.sort();
    assert_eq!(
        seen,
        ["r1", "r1", "r2", "r2"],
        "balanced again once the guards dropped"
    );
}

#[tokio::test]
async fn readiness_sees_a_cluster_wholly_down_until_it_answers_or_is_forgotten() {
    let (s, metrics) = state();
    s.publish(view(&["w"], Some("w")));
    assert!(metrics.health.problems().is_empty());
    s.searching(true);
    let problems = metrics.health.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("orders"), "{problems:?}");
    s.publish(view(&["w"], Some("w")));
    assert!(metrics.health.problems().is_empty());
    s.searching(true);
    s.forget();
    assert!(
        metrics.health.problems().is_empty(),
        "a cluster no target follows"
    );
}
