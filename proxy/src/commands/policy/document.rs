//! The IAM policy document that lets a principal connect as a database user.

use serde_json::{json, Value};

/// `arn:aws:rds-db:REGION:ACCOUNT:dbuser:RESOURCE_ID/USER`; `aws-cn` in China regions.
pub fn connect_arn(region: &str, account: &str, resource_id: &str, user: &str) -> String {
    let partition = if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    };
    format!("arn:{partition}:rds-db:{region}:{account}:dbuser:{resource_id}/{user}")
}

/// One Allow statement for `rds-db:connect` on every ARN (duplicates dropped, order kept).
pub fn policy_document(arns: &[String]) -> Value {
    let mut unique: Vec<&String> = Vec::new();
    for arn in arns {
        if !unique.contains(&arn) {
            unique.push(arn);
        }
    }
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "RdsIamProxyConnect",
            "Effect": "Allow",
            "Action": "rds-db:connect",
            "Resource": unique,
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_partitions() {
        assert_eq!(
            connect_arn("eu-west-1", "123456789012", "cluster-ABC", "iam_user"),
            "arn:aws:rds-db:eu-west-1:123456789012:dbuser:cluster-ABC/iam_user"
        );
        assert!(connect_arn("cn-north-1", "1", "r", "u").starts_with("arn:aws-cn:"));
    }

    #[test]
    fn duplicate_arns_are_listed_once() {
        let doc = policy_document(&["a".into(), "b".into(), "a".into()]);
        assert_eq!(doc["Statement"][0]["Resource"], json!(["a", "b"]));
        assert_eq!(doc["Statement"][0]["Action"], "rds-db:connect");
    }
}
