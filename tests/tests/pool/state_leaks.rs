//! Session state a client leaves behind must not reach the next client of the same pooled
//! server connection. One client sets each kind of state; the next, on the same backend,
//! must find none of it.

use super::common::{connect, one, proxy_for, standin};
use super::{pid, wait_idle};

/// Each kind of state: what the first client runs, and a query for the next one that
/// returns `expected` on a fresh session.
const STATE: &[(&str, &str, &str, &str)] = &[
    (
        "temp table",
        "create temp table leak (v int); insert into leak values (1)",
        "select count(*)::text from pg_class where relname = 'leak' and relpersistence = 't'",
        "0",
    ),
    (
        "SQL prepared statement",
        "prepare leak_stmt as select 1",
        "select count(*)::text from pg_prepared_statements where from_sql",
        "0",
    ),
    (
        "SET value",
        "set work_mem = '77MB'; set timezone = 'Asia/Tokyo'",
        "select current_setting('work_mem') || ' ' || current_setting('TimeZone')",
        "",
    ),
    (
        "advisory lock",
        "select pg_advisory_lock(4242)",
        "select count(*)::text from pg_locks where locktype = 'advisory'",
        "0",
    ),
    (
        "LISTEN",
        "listen leak_channel",
        "select count(*)::text from pg_listening_channels()",
        "0",
    ),
    (
        "SET ROLE",
        "set role leak_role",
        "select current_user::text",
        "iam_user",
    ),
    (
        "cursor WITH HOLD",
        "declare leak_cursor cursor with hold for select 1",
        "select count(*)::text from pg_cursors where name = 'leak_cursor'",
        "0",
    ),
    (
        "temp sequence",
        "create temp sequence leak_temp_seq; select nextval('leak_temp_seq')",
        "select count(*)::text from pg_class where relname = 'leak_temp_seq'",
        "0",
    ),
];

pub async fn run() {
    let s = standin().await;
    let su = s.superuser_client().await.unwrap();
    su.batch_execute("create role leak_role nologin; grant leak_role to iam_user")
        .await
        .unwrap();
    s.connect_direct("iam_user", "appdb", &s.sign_token("iam_user"))
        .await
        .unwrap()
        .batch_execute("create sequence leak_seq")
        .await
        .unwrap();
    s.create_iam_user("iam_admin").await.unwrap();
    su.batch_execute("alter role iam_admin superuser")
        .await
        .unwrap();
    let (proxy, admin) = super::spawn_with_admin(proxy_for(&s).args(["--pool-mode", "session"]));
    let target = super::target_name(&proxy);

    // What a fresh session shows for settings, to compare against.
    let fresh = connect(proxy.addr(), "iam_user").await.unwrap();
    let fresh_pid = pid(&fresh).await;
    let defaults = one(&fresh, STATE[2].2).await;
    drop(fresh);
    wait_idle(admin, &target, 1).await;

    let dirty = connect(proxy.addr(), "iam_user").await.unwrap();
    assert_eq!(pid(&dirty).await, fresh_pid);
    dirty
        .batch_execute("select nextval('leak_seq')")
        .await
        .unwrap();
    for (what, sql, _, _) in STATE {
        dirty
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    // A protocol-level prepared statement, by its name on the server.
    let stmt = dirty.prepare("select $1::int + 1").await.unwrap();
    dirty.query_one(&stmt, &[&1i32]).await.unwrap();
    let protocol_stmt = "select $1::int + 1";
    let there: i64 = dirty
        .query_one(
            "select count(*) from pg_prepared_statements where not from_sql and statement = $1",
            &[&protocol_stmt],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(there, 1, "the statement is prepared on the server");
    drop(dirty);
    wait_idle(admin, &target, 1).await;

    let next = connect(proxy.addr(), "iam_user").await.unwrap();
    assert_eq!(
        pid(&next).await,
        fresh_pid,
        "the same server connection, reused"
    );
    for (what, _, check, expected) in STATE {
        let expected = if expected.is_empty() {
            defaults.as_str()
        } else {
            expected
        };
        assert_eq!(one(&next, check).await, expected, "{what} leaked");
    }
    let left: i64 = next
        .query_one(
            "select count(*) from pg_prepared_statements where statement = $1",
            &[&protocol_stmt],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "protocol-level statement {protocol_stmt} leaked");
    // A sequence's currval belongs to the session that called nextval.
    let e = next
        .query_one("select currval('leak_seq')", &[])
        .await
        .expect_err("currval leaked");
    assert_eq!(super::sqlstate(&e).as_deref(), Some("55000"), "{e}");
    drop(next);

    // SET SESSION AUTHORIZATION needs a superuser session.
    let admin_session = connect(proxy.addr(), "iam_admin").await.unwrap();
    let admin_pid = pid(&admin_session).await;
    admin_session
        .batch_execute("set session authorization iam_user")
        .await
        .unwrap();
    assert_eq!(
        one(&admin_session, "select session_user::text").await,
        "iam_user"
    );
    drop(admin_session);
    wait_idle(admin, &target, 2).await;
    let again = connect(proxy.addr(), "iam_admin").await.unwrap();
    assert_eq!(pid(&again).await, admin_pid);
    assert_eq!(one(&again, "select session_user::text").await, "iam_admin");
    assert_eq!(one(&again, "select current_user::text").await, "iam_admin");
}
