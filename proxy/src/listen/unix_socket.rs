//! Unix sockets for `psql -h DIR`. The socket never exists with a wider mode than asked for:
//! it is bound in a private directory (0700) beside its final path, given its mode there and
//! then renamed into place. At the final path only a stale socket (nobody accepts on it) is
//! replaced; anything else there is an error that names it, and is left alone.

use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::{UnixListener, UnixStream};

use super::socket::{ListenError, Listener, UnixSocket};

/// Binds `path` with permissions `mode`.
pub(super) async fn bind(path: &Path, mode: u32) -> Result<Listener, ListenError> {
    let bind_err = |source| ListenError::Bind {
        addr: format!("unix:{}", path.display()),
        source,
    };
    clear_stale(path).await?;
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let private = PrivateDir::create(parent).map_err(bind_err)?;
    let staged = private.path.join("s");
    let listener = UnixListener::bind(&staged).map_err(bind_err)?;
    // Nobody else can reach `staged` (its directory is ours, 0700), so the mode is set before
    // the socket is reachable at all.
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode)).map_err(bind_err)?;
    // A hard link, unlike a rename, never replaces what may have appeared at `path` since:
    // it fails instead. The staged name goes with the private directory.
    clear_stale(path).await?;
    std::fs::hard_link(&staged, path).map_err(|source| match source.kind() {
        io::ErrorKind::AlreadyExists => ListenError::InUse {
            path: path.to_owned(),
        },
        _ => bind_err(source),
    })?;
    Ok(Listener::Unix(UnixSocket {
        listener,
        path: path.to_owned(),
    }))
}

/// Changes the mode of a socket this process listens on (SIGHUP), without following a
/// symlink put in its place: the path is opened once without following links, the opened
/// file checked to be a socket, and that same file's mode changed (through its descriptor's
/// `/proc` entry, as `fchmod` does not take an `O_PATH` descriptor).
pub(crate) fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use rustix::fs::{fstat, open, FileType, Mode, OFlags};
    let fd = open(
        path,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let stat = fstat(&fd)?;
    let file_type = FileType::from_raw_mode(stat.st_mode);
    if file_type != FileType::Socket {
        let meta = std::fs::symlink_metadata(path)?;
        return Err(io::Error::other(format!(
            "{} is no longer a socket ({})",
            path.display(),
            kind(&meta.file_type())
        )));
    }
    let by_fd = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    std::fs::set_permissions(by_fd, std::fs::Permissions::from_mode(mode))
}

/// Removes a socket nobody accepts on; refuses a live one and anything that is not a socket.
async fn clear_stale(path: &Path) -> Result<(), ListenError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ListenError::Bind {
                addr: format!("unix:{}", path.display()),
                source,
            })
        }
    };
    let file_type = meta.file_type();
    if !file_type.is_socket() {
        return Err(ListenError::NotASocket {
            path: path.to_owned(),
            kind: kind(&file_type),
        });
    }
    if UnixStream::connect(path).await.is_ok() {
        return Err(ListenError::InUse {
            path: path.to_owned(),
        });
    }
    std::fs::remove_file(path).map_err(|source| ListenError::Bind {
        addr: format!("unix:{}", path.display()),
        source,
    })
}

fn kind(t: &std::fs::FileType) -> &'static str {
    if t.is_symlink() {
        "a symbolic link"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_file() {
        "a regular file"
    } else if t.is_fifo() {
        "a named pipe"
    } else {
        "a device or other special file"
    }
}

/// A fresh 0700 directory, removed (with anything left in it) when dropped.
struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    fn create(parent: &Path) -> io::Result<PrivateDir> {
        let pid = std::process::id();
        for attempt in 0..100u32 {
            // Short: the staged socket's path must fit the 107 bytes a socket address holds
            // wherever the final `.s.PGSQL.PORT` does.
            let path = parent.join(format!(".r{pid}.{attempt}"));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(PrivateDir { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other(format!(
            "no free name for a private directory in {}",
            parent.display()
        )))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn mode_of(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().mode() & 0o777
    }

    #[tokio::test]
    async fn the_socket_gets_its_mode_and_the_private_directory_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".s.PGSQL.5432");
        let listener = bind(&path, 0o600).await.unwrap();
        assert_eq!(mode_of(&path), 0o600);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [std::ffi::OsString::from(".s.PGSQL.5432")]);
        UnixStream::connect(&path)
            .await
            .expect("reachable at its final path");
        drop(listener);
    }

    #[tokio::test]
    async fn a_regular_file_at_the_path_is_kept_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".s.PGSQL.5432");
        std::fs::write(&path, b"precious").unwrap();
        let err = bind(&path, 0o700).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("a regular file"), "{text}");
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    }

    #[tokio::test]
    async fn a_symlink_at_the_path_is_not_followed_or_removed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, b"x").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        let path = dir.path().join(".s.PGSQL.5432");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let err = bind(&path, 0o777).await.unwrap_err();
        assert!(err.to_string().contains("a symbolic link"), "{err}");
        assert!(std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(mode_of(&target), 0o600, "the link's target keeps its mode");
        assert!(set_mode(&path, 0o777).is_err());
        assert_eq!(mode_of(&target), 0o600);
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_a_live_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".s.PGSQL.5432");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let listener = bind(&path, 0o700).await.expect("stale socket replaced");
        let err = bind(&path, 0o700).await.unwrap_err();
        assert!(matches!(err, ListenError::InUse { .. }), "{err}");
        drop(listener);
    }
}
