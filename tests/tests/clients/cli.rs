//! libpq's command-line clients: psql and pgbench, run as processes against the proxy.

use std::net::SocketAddr;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::matrix::{gap, Matrix, COPY_ROWS, LARGE_ROWS, LARGE_WIDTH, WAIT};
use super::rust_drivers::{
    copy_out_sql, copy_text, large_sql, running_query_sql, COPY_IN_CHECK, COPY_IN_SQL,
    COPY_IN_TABLE, DATABASE, USER,
};

/// Bound of one psql or pgbench run.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);
const APP: &str = "clients-psql";

pub fn conninfo(addr: SocketAddr, extra: &str) -> String {
    format!(
        "host={} port={} user={USER} dbname={DATABASE} application_name={APP} {extra}",
        addr.ip(),
        addr.port()
    )
}

/// A clean environment for a client program: PATH only, no password file, a UTF-8 locale;
/// no stdin, output captured, killed when dropped.
pub fn clean(cmd: &mut Command) -> &mut Command {
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PGPASSFILE", "/nonexistent/pgpass")
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
}

/// A libpq program with a clean environment: no password from anywhere, no psqlrc.
pub fn command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    clean(&mut cmd).env("PGCONNECT_TIMEOUT", "10");
    cmd
}

/// Runs a command to completion, feeding `stdin`, bounded by [`RUN_TIMEOUT`].
pub async fn run(mut cmd: Command, stdin: Option<Vec<u8>>) -> anyhow::Result<Output> {
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().context("spawning")?;
    if let Some(data) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        tokio::spawn(async move {
            let _ = pipe.write_all(&data).await;
        });
    }
    tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
        .await
        .context("timed out")?
        .context("waiting")
}

fn psql(addr: SocketAddr, extra_conninfo: &str) -> Command {
    let mut cmd = command("psql");
    cmd.args([
        "-X",
        "-w",
        "-q",
        "-A",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        "-v",
        "VERBOSITY=verbose",
    ])
    .args(["-d", &conninfo(addr, extra_conninfo)]);
    cmd
}

/// Stdout of a successful run, or an error with its stderr.
fn stdout(out: Output) -> anyhow::Result<String> {
    ensure!(
        out.status.success(),
        "{}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8(out.stdout)?)
}

async fn psql_c(addr: SocketAddr, sql: &str) -> anyhow::Result<String> {
    let mut cmd = psql(addr, "");
    cmd.args(["-c", sql]);
    stdout(run(cmd, None).await?)
}

/// `psql --version` as (text, major).
pub async fn version(program: &str) -> Option<(String, u32)> {
    let out = Command::new(program).arg("--version").output().await.ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let major = text
        .split_whitespace()
        .find_map(|w| w.split('.').next()?.parse().ok())?;
    Some((text, major))
}

pub async fn psql_suite(
    m: &mut Matrix,
    addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    admin: &tokio_postgres::Client,
) {
    const C: &str = "psql";
    let Some((text, major)) = version("psql").await else {
        m.all_gaps(
            C,
            "psql is not installed (scripts/setup installs postgresql-client)",
        );
        return;
    };
    m.versions.insert(C.into(), text);

    m.check(C, "connect", async {
        let out = psql_c(
            addr,
            "select current_user, ssl from pg_stat_ssl where pid = pg_backend_pid()",
        )
        .await?;
        ensure!(out.trim() == format!("{USER}|t"), "{out}");
        Ok(format!("psql -w (never prompts): {}", out.trim()))
    })
    .await;

    m.check(C, "simple_query", async {
        let out = psql_c(
            addr,
            "create temp table t (i int); insert into t values (1), (2); select count(*) from t",
        )
        .await?;
        ensure!(out.trim().ends_with('2'), "{out}");
        Ok("psql -c: three statements in one Query message".into())
    })
    .await;

    m.check(C, "extended_query", async {
        if major < 16 {
            return gap(format!(
                "psql {major} sends only simple queries (\\bind arrived in psql 16); libpq's \
                 extended protocol is covered by pgbench -M extended / -M prepared below"
            ));
        }
        let out = psql_c(addr, "select $1::int + 1 \\bind 41 \\g").await?;
        ensure!(out.trim() == "42", "{out}");
        Ok("\\bind: Parse/Bind/Execute".into())
    })
    .await;

    m.check(C, "prepared", async {
        let out = psql_c(
            addr,
            "prepare p(int) as select $1 * 3; execute p(1); execute p(2); \
             select count(*) from pg_prepared_statements where name = 'p'",
        )
        .await?;
        ensure!(out.trim().ends_with('1'), "{out}");
        Ok("SQL PREPARE/EXECUTE (psql has no protocol-level prepare before psql 18)".into())
    })
    .await;

    m.check(C, "pipeline", async {
        gap(format!(
            "psql {major} has no pipeline mode (\\startpipeline arrived in psql 18)"
        ))
    })
    .await;

    m.check(C, "transaction_rollback", async {
        // A script: psql sends each statement on its own, as an application would.
        let script = "create temp table tx (i int);\nbegin;\ninsert into tx values (1);\n\
                      rollback;\nselect count(*) from tx;\n";
        let mut cmd = psql(addr, "");
        cmd.args(["-f", "-"]);
        let out = stdout(run(cmd, Some(script.as_bytes().to_vec())).await?)?;
        ensure!(out.trim().ends_with('0'), "{out}");
        Ok("begin; insert; rollback".into())
    })
    .await;

    m.check(C, "large_result", async {
        let t0 = Instant::now();
        let out = psql_c(addr, &large_sql()).await?;
        let (mut n, mut total) = (0usize, 0usize);
        for line in out.lines() {
            n += 1;
            let (i, t) = line.split_once('|').context("no separator")?;
            ensure!(
                i == n.to_string() && t.len() == LARGE_WIDTH && t.ends_with(i),
                "row {n} is wrong"
            );
            total += t.len();
        }
        ensure!(n == LARGE_ROWS, "{n} rows");
        Ok(format!(
            "{n} rows, {:.1} MB in {:.2?}",
            total as f64 / 1e6,
            t0.elapsed()
        ))
    })
    .await;

    m.check(C, "copy_in", async {
        // COPY FROM STDIN inside a script read from stdin, as pg_dump output is restored.
        let mut script = format!("{COPY_IN_TABLE};\n{COPY_IN_SQL};\n").into_bytes();
        script.extend_from_slice(&copy_text());
        script.extend_from_slice(format!("\\.\n{COPY_IN_CHECK};\n").as_bytes());
        let mut cmd = psql(addr, "");
        cmd.args(["-f", "-"]);
        let out = stdout(run(cmd, Some(script)).await?)?;
        ensure!(out.trim() == "t", "server-side check: {out}");
        Ok(format!(
            "{COPY_ROWS} rows from a script on stdin, server-side check equal"
        ))
    })
    .await;

    m.check(C, "copy_out", async {
        let mut cmd = psql(addr, "");
        cmd.args(["-c", &copy_out_sql()]);
        let out = run(cmd, None).await?;
        ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        super::rust_drivers::check_copy_out(&out.stdout)
    })
    .await;

    m.check(C, "notify", async {
        // psql cannot wait for notifications; it prints those that arrived with a result.
        // A session's own NOTIFY is delivered to it right after the commit.
        let mut cmd = psql(addr, "");
        cmd.args([
            "-c",
            "listen clients_psql",
            "-c",
            "notify clients_psql, 'hello from psql'",
        ]);
        let out = stdout(run(cmd, None).await?)?;
        let want =
            "Asynchronous notification \"clients_psql\" with payload \"hello from psql\" received";
        ensure!(out.contains(want), "{out}");
        Ok("own NOTIFY delivered after commit (psql cannot wait for another session's)".into())
    })
    .await;

    m.check(C, "cancel", async {
        let tag = "cancel-psql";
        let mut cmd = psql(addr, "");
        cmd.args(["-c", &format!("select pg_sleep(30) /* {tag} */")]);
        let child = cmd.spawn()?;
        let pid = child.id().context("psql pid")?;
        let deadline = Instant::now() + WAIT;
        loop {
            let n: i64 = admin.query_one(&running_query_sql(tag), &[]).await?.get(0);
            if n == 1 {
                break;
            }
            ensure!(Instant::now() < deadline, "the query never ran");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let sent = Instant::now();
        // Ctrl-C: psql sends a CancelRequest.
        let status = Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .await?;
        ensure!(status.success(), "kill -INT failed");
        let out = tokio::time::timeout(WAIT, child.wait_with_output())
            .await
            .context("psql still running")??;
        let took = sent.elapsed();
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(err.contains("57014"), "{}: {err}", out.status);
        Ok(format!(
            "SIGINT (Ctrl-C): {}, {took:.3?} after the signal",
            err.lines()
                .find(|l| l.contains("57014"))
                .unwrap_or_default()
                .trim()
        ))
    })
    .await;

    m.check(C, "application_name", async {
        let out = psql_c(
            addr,
            "select application_name from pg_stat_activity where pid = pg_backend_pid()",
        )
        .await?;
        ensure!(out.trim() == APP, "{out}");
        Ok(format!("server sees '{}'", out.trim()))
    })
    .await;

    m.check(C, "error_sqlstate", async {
        let mut cmd = psql(addr, "");
        cmd.args(["-c", "select 1/0"]);
        let out = run(cmd, None).await?;
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success() && err.contains("22012"),
            "{}: {err}",
            out.status
        );
        Ok(format!(
            "{} (exit {})",
            err.lines().next().unwrap_or_default().trim(),
            out.status.code().unwrap_or(-1)
        ))
    })
    .await;

    if let Some(tls) = tls_addr {
        m.check(C, "sslmode=require (local TLS)", async {
            let mut cmd = psql(tls, "sslmode=require");
            cmd.args(["-c", "\\conninfo"]);
            let out = stdout(run(cmd, None).await?)?;
            let line = out
                .lines()
                .find(|l| l.starts_with("SSL connection"))
                .with_context(|| format!("not encrypted: {out}"))?;
            Ok(format!(
                "sslmode=require to --client-tls self-signed: {line}"
            ))
        })
        .await;
    }
}

/// pgbench: initialisation (COPY), then the three query modes.
pub async fn pgbench_suite(m: &mut Matrix, addr: SocketAddr) {
    const C: &str = "pgbench";
    let Some((text, _)) = version("pgbench").await else {
        m.push(
            C,
            "pgbench",
            super::matrix::Status::Gap,
            "pgbench is not installed",
        );
        return;
    };
    m.versions.insert(C.into(), text);
    let target = |cmd: &mut Command| {
        cmd.args([
            "-h",
            &addr.ip().to_string(),
            "-p",
            &addr.port().to_string(),
            "-U",
            USER,
            DATABASE,
        ]);
    };

    m.check(C, "pgbench -i (init, COPY)", async {
        let mut cmd = command("pgbench");
        cmd.args(["-i", "-q", "-s", "1"]);
        target(&mut cmd);
        let out = run(cmd, None).await?;
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(out.status.success(), "{}: {err}", out.status);
        ensure!(err.contains("done in"), "{err}");
        Ok(err.lines().last().unwrap_or_default().trim().to_owned())
    })
    .await;

    for mode in ["simple", "extended", "prepared"] {
        m.check(C, &format!("pgbench -M {mode}"), async {
            let mut cmd = command("pgbench");
            cmd.args(["-n", "-c", "2", "-j", "2", "-t", "100", "-M", mode]);
            target(&mut cmd);
            let out = run(cmd, None).await?;
            let text = String::from_utf8_lossy(&out.stdout);
            ensure!(
                out.status.success(),
                "{}: {}{text}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            let line = |prefix: &str| {
                text.lines()
                    .find(|l| l.starts_with(prefix))
                    .map(str::trim)
                    .unwrap_or_default()
                    .to_owned()
            };
            let processed = line("number of transactions actually processed");
            ensure!(processed.ends_with("200/200"), "{text}");
            let failed = line("number of failed transactions");
            if !failed.is_empty() && !failed.contains(": 0 ") {
                bail!("{failed}");
            }
            Ok(format!(
                "2 clients × 100 TPC-B transactions: {processed}; {}",
                line("tps")
            ))
        })
        .await;
    }
}
