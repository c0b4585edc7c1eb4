//! The unix socket path (finding 9), as the process behaves: anything but a stale socket at
//! the path stops the start with its name, and is left as it was; the socket has its mode.

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use crate::common::{proxy_for, standin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regular_file_at_the_socket_path_is_kept_and_the_start_refused() {
    let s = standin().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".s.PGSQL.6544");
    std::fs::write(&path, b"somebody's data").unwrap();
    let (status, _, stderr) = proxy_for(&s)
        .args(["--listen", "127.0.0.1:6544", "--unix-socket"])
        .arg(dir.path().display().to_string())
        .output()
        .unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(stderr.contains("a regular file"), "{stderr}");
    assert_eq!(std::fs::read(&path).unwrap(), b"somebody's data");

    std::fs::remove_file(&path).unwrap();
    let proxy = proxy_for(&s)
        .args(["--listen", "127.0.0.1:0", "--unix-socket"])
        .arg(dir.path().display().to_string())
        .args(["--unix-socket-mode", "0660"])
        .expect_listeners(2)
        .spawn()
        .unwrap();
    let socket = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.file_type().unwrap().is_socket())
        .expect("the socket");
    assert_eq!(socket.metadata().unwrap().mode() & 0o777, 0o660);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "nothing else left behind: {names:?}");
    drop(proxy);
}
