//! Runs the real proxy binary as a child process, the way users do, and watches its JSON logs.
//! Readiness is the proxy's own "listening" log line, never a sleep.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use crate::{aws_env, StandIn};

/// How long to wait for the proxy to report that it listens.
const START_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct LogBook {
    lines: Mutex<(Vec<String>, bool)>,
    changed: Condvar,
}

/// A running proxy process; killed on drop.
pub struct ProxyProcess {
    child: Child,
    listening: Vec<String>,
    logs: Arc<LogBook>,
}

/// Builder for a proxy command line.
#[derive(Debug, Clone)]
pub struct ProxyCommand {
    binary: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    expect_listeners: usize,
}

impl ProxyCommand {
    /// A bare command with no arguments and an environment holding only PATH.
    pub fn new(binary: impl Into<PathBuf>) -> Self {
        ProxyCommand {
            binary: binary.into(),
            args: Vec::new(),
            env: vec![(
                "PATH".into(),
                std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
            )],
            expect_listeners: 1,
        }
    }

    /// The proxy in front of `standin` for `database`, on a free loopback port, JSON logs,
    /// AWS credentials from the stand-in's container endpoint. The client chooses the user.
    pub fn for_standin(binary: impl Into<PathBuf>, standin: &StandIn, database: &str) -> Self {
        ProxyCommand::new(binary)
            .args([
                format!("postgres://{}/{database}", standin.endpoint()),
                "--connect-to".into(),
                standin.addr().to_string(),
                "--ca-file".into(),
                standin.ca_file().display().to_string(),
            ])
            .standin_env(standin)
    }

    /// Adds the stand-in's credential environment.
    pub fn standin_env(mut self, standin: &StandIn) -> Self {
        self.env.extend(standin.credentials_env());
        self
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Adds several environment variables, in order.
    pub fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// No instance metadata, and `missing` (a path that does not exist) as the AWS config and
    /// shared credentials files: the AWS chain finds only what the test gives it.
    pub fn isolated_aws(self, missing: &Path) -> Self {
        self.envs(aws_env::isolated(missing, missing))
    }

    /// Static long-term credentials in the environment (first in the default chain).
    pub fn static_credentials(self, access_key_id: &str, secret_access_key: &str) -> Self {
        self.envs(aws_env::static_credentials(
            access_key_id,
            secret_access_key,
        ))
    }

    /// How many "listening" lines mean the proxy is ready (one per listener).
    pub fn expect_listeners(mut self, n: usize) -> Self {
        self.expect_listeners = n;
        self
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.args(&self.args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        cmd
    }

    /// Runs to completion (for commands that are expected to exit), returning status, stdout
    /// and stderr.
    pub fn output(&self) -> Result<(ExitStatus, String, String)> {
        let out = self.command().output().context("running the proxy")?;
        Ok((
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// Starts the proxy (with `--listen 127.0.0.1:0 --log-format json` unless given) and
    /// waits for its listeners.
    pub fn spawn(&self) -> Result<ProxyProcess> {
        self.spawn_then(|_| Ok(()))
    }

    /// [`ProxyCommand::spawn`], sending `signal` (`HUP`, `TERM`, ...) `after` the exec,
    /// before the proxy is ready: for signals during start-up.
    pub fn spawn_signalled(&self, signal: &str, after: Duration) -> Result<ProxyProcess> {
        self.spawn_then(|child| {
            std::thread::sleep(after);
            let status = Command::new("kill")
                .args([&format!("-{signal}"), &child.id().to_string()])
                .status()?;
            if !status.success() {
                bail!("kill -{signal} failed: {status}");
            }
            Ok(())
        })
    }

    fn spawn_then(&self, after_exec: impl FnOnce(&Child) -> Result<()>) -> Result<ProxyProcess> {
        let mut cmd = self.command();
        if !self.args.iter().any(|a| a == "--listen") && !self.args.iter().any(|a| a == "--config")
        {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        if !self.args.iter().any(|a| a == "--log-format") {
            cmd.args(["--log-format", "json"]);
        }
        if !self.args.iter().any(|a| a == "--log-level") {
            cmd.args(["--log-level", "debug"]);
        }
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().context("spawning the proxy")?;
        after_exec(&child)?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let logs = Arc::new(LogBook::default());
        let book = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut guard = book.lines.lock().unwrap();
                guard.0.push(line);
                book.changed.notify_all();
            }
            book.lines.lock().unwrap().1 = true;
            book.changed.notify_all();
        });
        let mut proxy = ProxyProcess {
            child,
            listening: Vec::new(),
            logs,
        };
        let lines = proxy.wait_for_logs(START_TIMEOUT, |lines| {
            lines
                .iter()
                .filter(|l| message(l).as_deref() == Some("listening"))
                .count()
                >= self.expect_listeners
        })?;
        proxy.listening = lines
            .iter()
            .filter(|l| message(l).as_deref() == Some("listening"))
            .filter_map(|l| field(l, "listen"))
            .collect();
        Ok(proxy)
    }
}

fn parse(line: &str) -> Option<Value> {
    serde_json::from_str(line).ok()
}

fn message(line: &str) -> Option<String> {
    field(line, "message")
}

/// A field of a JSON log line, as a string.
pub fn field(line: &str, key: &str) -> Option<String> {
    let v = parse(line)?;
    let f = v
        .get(key)
        .or_else(|| v.get("fields").and_then(|f| f.get(key)))?;
    Some(match f {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

impl ProxyProcess {
    /// The first TCP listen address.
    pub fn addr(&self) -> SocketAddr {
        self.listening
            .iter()
            .find_map(|l| l.parse().ok())
            .expect("the proxy reported a TCP listener")
    }

    /// Every reported listen address, in order (`127.0.0.1:N` or `unix:PATH`).
    pub fn listening(&self) -> &[String] {
        &self.listening
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// All log lines so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lines.lock().unwrap().0.clone()
    }

    /// Log lines whose `message` equals `msg`.
    pub fn log_messages(&self, msg: &str) -> Vec<String> {
        self.logs()
            .into_iter()
            .filter(|l| message(l).as_deref() == Some(msg))
            .collect()
    }

    /// Waits until `done(lines)` holds; fails if the process exits first or on timeout.
    pub fn wait_for_logs(
        &mut self,
        timeout: Duration,
        done: impl Fn(&[String]) -> bool,
    ) -> Result<Vec<String>> {
        let deadline = Instant::now() + timeout;
        let mut guard = self.logs.lines.lock().unwrap();
        loop {
            if done(&guard.0) {
                return Ok(guard.0.clone());
            }
            if guard.1 {
                bail!("proxy exited; its log:\n{}", guard.0.join("\n"));
            }
            let now = Instant::now();
            if now >= deadline {
                bail!(
                    "timed out waiting for the proxy; its log:\n{}",
                    guard.0.join("\n")
                );
            }
            guard = self
                .logs
                .changed
                .wait_timeout(guard, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// Waits for `n` log lines with message `msg`.
    pub fn wait_for_message(
        &mut self,
        msg: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<String>> {
        let lines = self.wait_for_logs(timeout, |lines| {
            lines
                .iter()
                .filter(|l| message(l).as_deref() == Some(msg))
                .count()
                >= n
        })?;
        Ok(lines
            .into_iter()
            .filter(|l| message(l).as_deref() == Some(msg))
            .collect())
    }

    /// Sends a signal by name (`TERM`, `INT`, `HUP`) with kill(1).
    pub fn signal(&self, name: &str) -> Result<()> {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -{name} failed");
        }
        Ok(())
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(anyhow!("proxy did not exit within {timeout:?}"));
            }
            // Polling the child: there is no portable exit notification without a reaper thread.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
