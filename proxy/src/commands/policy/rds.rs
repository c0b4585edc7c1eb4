//! The resource id in an `rds-db:connect` ARN, looked up with RDS DescribeDBClusters /
//! DescribeDBInstances from the endpoint name.

use std::collections::HashMap;
use std::time::Duration;

use aws_credential_types::Credentials;

use super::aws_api::{call, AwsApiError, Service};

/// What an RDS endpoint name says about the database behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `ID.cluster-XXXX.REGION.rds.amazonaws.com` (writer) or `ID.cluster-ro-XXXX...` (reader).
    Cluster(String),
    /// `ID.XXXX.REGION.rds.amazonaws.com`.
    Instance(String),
}

impl Endpoint {
    /// `None` for names that are not RDS endpoints, and for custom cluster endpoints and RDS
    /// Proxy endpoints, whose first label is not the database identifier.
    pub fn parse(host: &str) -> Option<Endpoint> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let labels: Vec<&str> = host.split('.').collect();
        let rds_at = labels.iter().position(|l| *l == "rds")?;
        // ID, the account/region hash label, REGION, then "rds".
        if rds_at != 3 || labels.get(4) != Some(&"amazonaws") {
            return None;
        }
        let id = labels[0].to_owned();
        let kind = labels[1];
        if kind.starts_with("cluster-custom-") || kind.starts_with("proxy-") {
            None
        } else if kind.starts_with("cluster-") {
            Some(Endpoint::Cluster(id))
        } else {
            Some(Endpoint::Instance(id))
        }
    }

    /// The identifier `aws rds modify-db-cluster` / `modify-db-instance` takes.
    pub fn identifier(&self) -> &str {
        match self {
            Endpoint::Cluster(id) | Endpoint::Instance(id) => id,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResourceIdError {
    #[error("{host} is not an RDS cluster or instance endpoint name")]
    NotAnEndpoint { host: String },
    #[error(transparent)]
    Api(#[from] AwsApiError),
}

/// The cluster resource id (`cluster-...`) for Aurora, the instance's (`db-...`) otherwise.
pub async fn resource_id(
    host: &str,
    region: &str,
    creds: &Credentials,
    env: &HashMap<String, String>,
    timeout: Duration,
) -> Result<String, ResourceIdError> {
    let endpoint = Endpoint::parse(host).ok_or_else(|| ResourceIdError::NotAnEndpoint {
        host: host.to_owned(),
    })?;
    let cluster = match endpoint {
        Endpoint::Cluster(id) => id,
        Endpoint::Instance(id) => {
            let response = call(
                Service::Rds,
                region,
                creds,
                "DescribeDBInstances",
                &[("DBInstanceIdentifier", &id)],
                env,
                timeout,
            )
            .await?;
            // An Aurora instance authenticates against its cluster's resource id.
            match response.field("DBClusterIdentifier") {
                Some(cluster) => cluster,
                None => {
                    return response.field("DbiResourceId").ok_or_else(|| {
                        AwsApiError::MissingField {
                            service: "rds",
                            field: "DbiResourceId",
                        }
                        .into()
                    })
                }
            }
        }
    };
    let response = call(
        Service::Rds,
        region,
        creds,
        "DescribeDBClusters",
        &[("DBClusterIdentifier", &cluster)],
        env,
        timeout,
    )
    .await?;
    Ok(response
        .field("DbClusterResourceId")
        .ok_or(AwsApiError::MissingField {
            service: "rds",
            field: "DbClusterResourceId",
        })?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_names() {
        assert_eq!(
            Endpoint::parse("aurorapgsqlv1.cluster-cabc123xyz.ap-northeast-1.rds.amazonaws.com"),
            Some(Endpoint::Cluster("aurorapgsqlv1".into()))
        );
        assert_eq!(
            Endpoint::parse("db1.cluster-ro-cabc.eu-west-1.rds.amazonaws.com"),
            Some(Endpoint::Cluster("db1".into()))
        );
        assert_eq!(
            Endpoint::parse("mydb.cabc123.us-east-1.rds.amazonaws.com"),
            Some(Endpoint::Instance("mydb".into()))
        );
        assert_eq!(
            Endpoint::parse("c.cluster-custom-abc.us-east-1.rds.amazonaws.com"),
            None
        );
        assert_eq!(Endpoint::parse("db.example.com"), None);
        assert_eq!(Endpoint::parse("localhost"), None);
    }
}
