//! A loopback stand-in for the AWS STS and RDS Query APIs (`AWS_ENDPOINT_URL_STS` /
//! `AWS_ENDPOINT_URL_RDS` point at it): GetCallerIdentity for account 123456789012,
//! DescribeDBClusters / DescribeDBInstances for one cluster, or AccessDenied when told to.
//! Runs on its own thread and runtime so a test may block on the proxy process.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;

pub const ACCOUNT: &str = "123456789012";
pub const CALLER_ARN: &str = "arn:aws:sts::123456789012:assumed-role/orders-db/rds-iam-proxy";
pub const CLUSTER_RESOURCE_ID: &str = "cluster-TESTRESOURCEID0123456789";

#[derive(Default)]
struct State {
    /// `(Action, Authorization header)` of every request.
    requests: Vec<(String, String)>,
    deny_rds: bool,
}

pub struct AwsStub {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl AwsStub {
    pub fn start() -> AwsStub {
        let state = Arc::new(Mutex::new(State::default()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let app = Router::new().route(
                    "/",
                    post(move |headers: HeaderMap, body: String| {
                        let state = shared.clone();
                        async move { answer(&state, &headers, &body) }
                    }),
                );
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        AwsStub {
            addr: addr_rx.recv().unwrap(),
            state,
            _stop: stop_tx,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// RDS answers 403 AccessDenied from now on.
    pub fn deny_rds(&self) {
        self.state.lock().unwrap().deny_rds = true;
    }

    pub fn requests(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Environment that sends STS and RDS here, and anything else to a closed loopback port.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL_STS".into(), self.url()),
            ("AWS_ENDPOINT_URL_RDS".into(), self.url()),
            ("AWS_ENDPOINT_URL".into(), "http://127.0.0.1:9".into()),
            ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ]
    }
}

fn form_value<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

fn answer(state: &Mutex<State>, headers: &HeaderMap, body: &str) -> axum::response::Response {
    let action = form_value(body, "Action").unwrap_or("").to_owned();
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let deny_rds = {
        let mut s = state.lock().unwrap();
        s.requests.push((action.clone(), auth.clone()));
        s.deny_rds
    };
    let xml = |status: StatusCode, body: String| {
        (status, [("content-type", "text/xml")], body).into_response()
    };
    if !auth.starts_with("AWS4-HMAC-SHA256 Credential=") {
        return xml(
            StatusCode::FORBIDDEN,
            error("MissingAuthenticationToken", "unsigned"),
        );
    }
    match action.as_str() {
        "GetCallerIdentity" => xml(
            StatusCode::OK,
            format!(
                "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                 <GetCallerIdentityResult><Arn>{CALLER_ARN}</Arn><UserId>AROAEXAMPLE:rds-iam-proxy</UserId>\
                 <Account>{ACCOUNT}</Account></GetCallerIdentityResult>\
                 <ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
            ),
        ),
        "DescribeDBClusters" | "DescribeDBInstances" if deny_rds => xml(
            StatusCode::FORBIDDEN,
            error(
                "AccessDenied",
                &format!("User: {CALLER_ARN} is not authorized to perform: rds:{action}"),
            ),
        ),
        "DescribeDBClusters" => xml(
            StatusCode::OK,
            format!(
                "<DescribeDBClustersResponse><DescribeDBClustersResult><DBClusters><DBCluster>\
                 <DBClusterIdentifier>{}</DBClusterIdentifier>\
                 <DbClusterResourceId>{CLUSTER_RESOURCE_ID}</DbClusterResourceId>\
                 <IAMDatabaseAuthenticationEnabled>true</IAMDatabaseAuthenticationEnabled>\
                 </DBCluster></DBClusters></DescribeDBClustersResult></DescribeDBClustersResponse>",
                form_value(body, "DBClusterIdentifier").unwrap_or("")
            ),
        ),
        "DescribeDBInstances" => xml(
            StatusCode::OK,
            "<DescribeDBInstancesResponse><DescribeDBInstancesResult><DBInstances><DBInstance>\
             <DbiResourceId>db-INSTANCERESOURCEID</DbiResourceId>\
             <DBClusterIdentifier>aurorapgsqlv1</DBClusterIdentifier>\
             </DBInstance></DBInstances></DescribeDBInstancesResult></DescribeDBInstancesResponse>"
                .to_owned(),
        ),
        other => xml(StatusCode::BAD_REQUEST, error("InvalidAction", other)),
    }
}

fn error(code: &str, message: &str) -> String {
    format!(
        "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
         <RequestId>1</RequestId></ErrorResponse>"
    )
}
