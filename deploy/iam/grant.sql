-- Run once as the cluster's master user. IAM authentication must also be on for the cluster:
--   aws rds modify-db-cluster --db-cluster-identifier CLUSTER_ID --enable-iam-database-authentication --apply-immediately
-- Once granted rds_iam, the user can only log in with an IAM token (even the master user).
CREATE USER iam_user WITH LOGIN;
GRANT rds_iam TO iam_user;
-- What the application needs, for example:
-- GRANT CONNECT ON DATABASE orders TO iam_user;
-- GRANT USAGE ON SCHEMA public TO iam_user;
