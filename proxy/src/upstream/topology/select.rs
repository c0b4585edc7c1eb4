//! Which instance a new session goes to: pure functions of a view, unit-tested.

use std::sync::Arc;
use std::time::Duration;

use crate::targets::{Endpoint, Role};

/// One instance, as the latest reading named it.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub id: Arc<str>,
    pub endpoint: Arc<Endpoint>,
    pub lag: Duration,
    /// `aurora_replica_status()` calls it the writer (`MASTER_SESSION_ID`). Only a writer
    /// confirmed with `pg_is_in_recovery() = false` gets writer sessions; a stale claim (the
    /// old writer's row just after a failover) keeps the node out of the readers too.
    pub claims_writer: bool,
}

#[cfg(test)]
impl Node {
    /// An instance at a made-up address, never dialled: for unit tests.
    pub fn for_test(id: &str, lag: Duration, claims_writer: bool) -> Node {
        Node {
            id: id.into(),
            endpoint: Arc::new(Endpoint {
                host: format!("{id}.x.us-east-1.rds.amazonaws.com"),
                port: 5432,
                dial: (id.to_owned(), 5432),
                trust: Arc::new(crate::targets::test_trust()),
                instance: Some(id.into()),
            }),
            lag,
            claims_writer,
        }
    }
}

/// What the monitor knows of a cluster.
#[derive(Debug, Clone, Default)]
pub(crate) struct View {
    pub nodes: Vec<Node>,
    /// The writer confirmed by `pg_is_in_recovery() = false`; `None` while one is sought.
    pub writer: Option<Arc<str>>,
}

impl View {
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| &*n.id == id)
    }

    pub fn writer_node(&self) -> Option<&Node> {
        self.writer.as_deref().and_then(|id| self.node(id))
    }

    /// The instances that may take reader sessions (lag aside).
    pub fn readers(&self) -> impl Iterator<Item = &Node> {
        self.nodes
            .iter()
            .filter(|n| Some(&n.id) != self.writer.as_ref() && !n.claims_writer)
    }
}

/// What a pick may look at besides the view.
pub(crate) struct Load<'a> {
    pub max_lag: Duration,
    /// Sessions this proxy has open on an instance.
    pub sessions: &'a dyn Fn(&str) -> usize,
    /// An instance a session failed to reach a moment ago.
    pub failing: &'a dyn Fn(&str) -> bool,
    /// Rotates the start among equally loaded readers, so sessions in a row spread too.
    pub turn: usize,
}

/// The instance for a new session of `role`, if there is one now.
pub(crate) fn pick<'v>(view: &'v View, role: Role, load: &Load<'_>) -> Option<&'v Node> {
    let writer = view.writer_node().filter(|n| !(load.failing)(&n.id));
    match role {
        Role::Writer => writer,
        Role::Reader => {
            let readers: Vec<&Node> = view
                .readers()
                .filter(|n| n.lag <= load.max_lag && !(load.failing)(&n.id))
                .collect();
            if readers.is_empty() {
                return writer;
            }
            let fewest = readers.iter().map(|n| (load.sessions)(&n.id)).min()?;
            let tied: Vec<&Node> = readers
                .into_iter()
                .filter(|n| (load.sessions)(&n.id) == fewest)
                .collect();
            Some(tied[load.turn % tied.len()])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, lag_ms: u64, claims_writer: bool) -> Node {
        Node::for_test(id, Duration::from_millis(lag_ms), claims_writer)
    }

    fn view(writer: Option<&str>) -> View {
        View {
            nodes: vec![
                node("w", 0, true),
                node("r1", 5, false),
                node("r2", 20_000, false),
                node("r3", 10, false),
            ],
            writer: writer.map(Into::into),
        }
    }

    fn load<'a>(
        sessions: &'a dyn Fn(&str) -> usize,
        failing: &'a dyn Fn(&str) -> bool,
    ) -> Load<'a> {
        Load {
            max_lag: Duration::from_secs(10),
            sessions,
            failing,
            turn: 0,
        }
    }

    #[test]
    fn writer_sessions_wait_for_a_confirmed_writer() {
        let none = |_: &str| 0;
        let ok = |_: &str| false;
        assert_eq!(
            pick(&view(Some("w")), Role::Writer, &load(&none, &ok)).map(|n| &*n.id),
            Some("w")
        );
        assert!(pick(&view(None), Role::Writer, &load(&none, &ok)).is_none());
        let w_failing = |id: &str| id == "w";
        assert!(pick(&view(Some("w")), Role::Writer, &load(&none, &w_failing)).is_none());
    }

    #[test]
    fn readers_get_the_least_loaded_within_the_lag_bound() {
        let ok = |_: &str| false;
        let busy_r1 = |id: &str| usize::from(id == "r1") * 3;
        let v = view(Some("w"));
        let got = pick(&v, Role::Reader, &load(&busy_r1, &ok)).unwrap();
        assert_eq!(&*got.id, "r3", "r2 lags 20 s, r1 has more sessions");
        let none = |_: &str| 0;
        let mut seen = Vec::new();
        for turn in 0..4 {
            let l = Load {
                turn,
                ..load(&none, &ok)
            };
            seen.push(
                pick(&view(Some("w")), Role::Reader, &l)
                    .unwrap()
                    .id
                    .to_string(),
            );
        }
        assert_eq!(seen, ["r1", "r3", "r1", "r3"], "ties rotate");
    }

    #[test]
    fn with_no_healthy_reader_reader_sessions_go_to_the_writer() {
        let none = |_: &str| 0;
        let readers_failing = |id: &str| id.starts_with('r');
        let v = view(Some("w"));
        let got = pick(&v, Role::Reader, &load(&none, &readers_failing));
        assert_eq!(got.map(|n| &*n.id), Some("w"));
        // A stale writer claim is neither writer nor reader.
        let mut v = view(Some("r1"));
        v.nodes.retain(|n| &*n.id != "r3");
        let ok = |_: &str| false;
        let got = pick(&v, Role::Reader, &load(&none, &ok));
        assert_eq!(
            got.map(|n| &*n.id),
            Some("r1"),
            "r2 lags, w is stale: the writer"
        );
    }
}
