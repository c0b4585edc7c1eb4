//! Which clients may share a server connection: those that would have opened the same one.

use rds_iam_protocol::StartupMessage;

/// Target (one pool per target), user, database, protocol version and every startup
/// parameter but `application_name`, which is applied with SET instead.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey {
    /// The Aurora instance, when the topology chose one: a pooled connection serves only
    /// sessions sent to the same instance.
    instance: Option<std::sync::Arc<str>>,
    version: u32,
    /// Sorted by name (a stable sort, so duplicates keep the order that decides which wins).
    params: Box<[(String, String)]>,
}

impl PoolKey {
    /// The key of a startup, or `None` for one that is never pooled: a `replication`
    /// connection speaks another protocol after startup.
    pub fn of(startup: &StartupMessage) -> Option<PoolKey> {
        if startup.get("replication").is_some() {
            return None;
        }
        let mut params: Vec<(String, String)> = startup
            .params
            .iter()
            .filter(|(k, _)| k != "application_name")
            .cloned()
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        Some(PoolKey {
            instance: None,
            version: startup.version.code(),
            params: params.into_boxed_slice(),
        })
    }

    pub fn instance(&self) -> Option<&str> {
        self.instance.as_deref()
    }

    /// The same key for sessions on `instance`.
    pub fn on_instance(self, instance: Option<std::sync::Arc<str>>) -> PoolKey {
        PoolKey { instance, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rds_iam_protocol::ProtocolVersion;

    fn startup(params: &[(&str, &str)]) -> StartupMessage {
        StartupMessage::new(
            ProtocolVersion::V3_0,
            params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn application_name_and_order_do_not_matter() {
        let a = startup(&[("user", "u"), ("database", "d"), ("application_name", "a")]);
        let b = startup(&[("database", "d"), ("user", "u"), ("application_name", "b")]);
        assert_eq!(PoolKey::of(&a), PoolKey::of(&b));
    }

    #[test]
    fn user_database_options_and_version_do() {
        let base = PoolKey::of(&startup(&[("user", "u"), ("database", "d")]));
        for other in [
            startup(&[("user", "v"), ("database", "d")]),
            startup(&[("user", "u"), ("database", "e")]),
            startup(&[
                ("user", "u"),
                ("database", "d"),
                ("options", "-c work_mem=1MB"),
            ]),
            startup(&[("user", "u"), ("database", "d"), ("DateStyle", "ISO")]),
        ] {
            assert_ne!(base, PoolKey::of(&other), "{other:?}");
        }
        let mut v32 = startup(&[("user", "u"), ("database", "d")]);
        v32.version = ProtocolVersion::V3_2;
        assert_ne!(base, PoolKey::of(&v32));
    }

    #[test]
    fn replication_is_never_pooled() {
        for value in ["database", "true", "false"] {
            let s = startup(&[("user", "u"), ("replication", value)]);
            assert_eq!(PoolKey::of(&s), None, "replication={value}");
        }
    }
}
