//! What the machine offers a throwaway cluster: a free port, the server binaries, the user to
//! run them as.

use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Result};

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// `$STANDIN_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`, else `pg_config --bindir`.
pub fn find_bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("STANDIN_PG_BIN") {
        return Ok(dir.into());
    }
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .max_by_key(|(version, _)| *version);
    if let Some((_, bin)) = newest {
        return Ok(bin);
    }
    let output = Command::new("pg_config").arg("--bindir").output();
    if let Some(output) = output.ok().filter(|o| o.status.success()) {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if dir.join("postgres").exists() {
            return Ok(dir);
        }
    }
    bail!("no PostgreSQL server binaries found (install the `postgresql` package or set STANDIN_PG_BIN)")
}

/// `None` when not root; else the uid/gid of `postgres`, or `nobody` if there is no such user.
pub(super) fn run_as_user() -> Result<Option<(u32, u32)>> {
    // Owner of /proc/self is our effective uid; avoids libc and unsafe.
    if std::fs::metadata("/proc/self")?.uid() != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    let lookup = |name: &str| {
        passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.len() > 3 && fields[0] == name)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
    };
    match lookup("postgres").or_else(|| lookup("nobody")) {
        Some(ids) => Ok(Some(ids)),
        None => bail!("running as root and neither `postgres` nor `nobody` exists"),
    }
}
