//! Aurora endpoint names (spec §9): a cluster endpoint `NAME.cluster-ID.REGION.rds.amazonaws.com`
//! (or `cluster-ro-` for the reader endpoint) and its instances' endpoints
//! `SERVER_ID.ID.REGION.rds.amazonaws.com`. Names only: nothing here touches the network.

/// Which endpoint of the cluster a target names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Role {
    /// The cluster endpoint: sessions go to the writer.
    Writer,
    /// The reader endpoint: sessions go to a reader.
    Reader,
}

impl Role {
    pub fn label(self) -> &'static str {
        match self {
            Role::Writer => "writer",
            Role::Reader => "reader",
        }
    }
}

/// An Aurora cluster, as its endpoint's name tells it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ClusterEndpoint {
    /// `NAME`, the cluster identifier.
    pub cluster: String,
    /// `ID.REGION.rds.amazonaws.com` (or `.com.cn`): what instance endpoints end with.
    pub domain: String,
    pub role: Role,
}

impl ClusterEndpoint {
    /// The cluster behind `host`, when `host` is a cluster or reader endpoint by name.
    pub fn parse(host: &str) -> Option<ClusterEndpoint> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let (cluster, rest) = host.split_once('.')?;
        // A custom endpoint names a chosen set of instances, which the topology does not say.
        if rest.starts_with("cluster-custom-") {
            return None;
        }
        let (role, domain) = if let Some(d) = rest.strip_prefix("cluster-ro-") {
            (Role::Reader, d)
        } else {
            (Role::Writer, rest.strip_prefix("cluster-")?)
        };
        // ID.REGION.rds.amazonaws.com[.cn]: four labels at least, all non-empty.
        let labels: Vec<&str> = domain.split('.').collect();
        let aws =
            domain.ends_with(".rds.amazonaws.com") || domain.ends_with(".rds.amazonaws.com.cn");
        if cluster.is_empty() || labels.len() < 5 || labels.iter().any(|l| l.is_empty()) || !aws {
            return None;
        }
        Some(ClusterEndpoint {
            cluster: cluster.to_owned(),
            domain: domain.to_owned(),
            role,
        })
    }

    /// Whether `host` is one of this cluster's instance endpoints.
    pub fn names_instance(&self, host: &str) -> bool {
        host.strip_suffix(self.domain.as_str())
            .and_then(|h| h.strip_suffix('.'))
            .is_some_and(|id| !id.is_empty() && !id.contains('.'))
    }

    /// The endpoint of the instance `server_id` (as `aurora_replica_status()` names it).
    pub fn instance_host(&self, server_id: &str) -> String {
        format!("{}.{}", server_id.to_ascii_lowercase(), self.domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_and_reader_endpoints_name_the_same_cluster() {
        let w = ClusterEndpoint::parse("orders.cluster-cabc123xyz.us-east-1.rds.amazonaws.com")
            .unwrap();
        let r = ClusterEndpoint::parse("Orders.cluster-ro-cabc123xyz.us-east-1.rds.amazonaws.com.")
            .unwrap();
        assert_eq!((w.role, r.role), (Role::Writer, Role::Reader));
        assert_eq!((&w.cluster, &w.domain), (&r.cluster, &r.domain));
        assert_eq!(w.domain, "cabc123xyz.us-east-1.rds.amazonaws.com");
        assert_eq!(
            w.instance_host("Orders-Instance-2"),
            "orders-instance-2.cabc123xyz.us-east-1.rds.amazonaws.com"
        );
        assert!(w.names_instance(&w.instance_host("orders-instance-2")));
        for other in [
            "orders.cluster-cabc123xyz.us-east-1.rds.amazonaws.com",
            "a.b.cabc123xyz.us-east-1.rds.amazonaws.com",
            "x.other.us-east-1.rds.amazonaws.com",
        ] {
            assert!(!w.names_instance(other), "{other}");
        }
        let cn = ClusterEndpoint::parse("a.cluster-x.cn-north-1.rds.amazonaws.com.cn").unwrap();
        assert_eq!(cn.instance_host("i"), "i.x.cn-north-1.rds.amazonaws.com.cn");
    }

    #[test]
    fn other_names_are_not_cluster_endpoints() {
        for host in [
            "orders-instance-1.cabc123xyz.us-east-1.rds.amazonaws.com",
            "orders.cluster-cabc.us-east-1.rds.amazonaws.com.evil.example",
            "analytics.cluster-custom-cabc.us-east-1.rds.amazonaws.com",
            "db.example.com",
            "orders.cluster-.us-east-1.rds.amazonaws.com",
            "proxy.proxy-cabc.us-east-1.rds.amazonaws.com",
            "127.0.0.1",
            "cluster-cabc.us-east-1.rds.amazonaws.com",
        ] {
            assert_eq!(ClusterEndpoint::parse(host), None, "{host}");
        }
    }
}
