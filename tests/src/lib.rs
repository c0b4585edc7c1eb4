#![forbid(unsafe_code)]
//! Aurora stand-in for rds-iam-proxy tests: a real PostgreSQL that authenticates members of
//! `rds_iam` with SigV4 IAM tokens (via its `ldap` method and a tiny LDAP server), a fake AWS
//! account with a container credential endpoint, and a test CA.

pub mod aurora;
pub mod aws_env;
pub mod checker;
pub mod cluster;
pub mod fake_aws;
pub mod fake_sts;
pub mod ldap;
pub mod proxy;
mod runtime;
pub mod standin;
pub mod tls;

pub use aurora::{Aurora, AuroraOptions, Failover};
pub use checker::{sign_for_test, Refusal, TokenChecker, TokenRequest, TokenStats};
pub use cluster::{ClusterConfig, PgCluster};
pub use fake_aws::{ContainerEndpoint, Credentials, FakeAws};
pub use fake_sts::{AssumeRoleCall, StsEndpoint};
pub use ldap::LdapServer;
pub use proxy::{ProxyCommand, ProxyProcess};
pub use standin::{StandIn, StandInOptions, AWS_ENV_TO_REMOVE};
pub use tls::{ServerCert, TestCa, DEFAULT_HOST};
