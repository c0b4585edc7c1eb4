//! A client written byte by byte, for endings no driver produces (a message cut in half).

use std::collections::HashMap;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A plaintext session through the proxy, read up to its first ReadyForQuery; returns it with
/// the backend pid from its BackendKeyData.
pub async fn ready(addr: SocketAddr, user: &str, database: &str) -> (TcpStream, i32) {
    let (sock, pid, _) = ready_with_params(addr, user, database).await;
    (sock, pid)
}

/// [`ready`], also returning the ParameterStatus values of the greeting.
pub async fn ready_with_params(
    addr: SocketAddr,
    user: &str,
    database: &str,
) -> (TcpStream, i32, HashMap<String, String>) {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    let packet = startup_packet(&[("user", user), ("database", database)]);
    sock.write_all(&packet).await.unwrap();
    let mut pid = None;
    let mut params = HashMap::new();
    loop {
        let (tag, payload) = read_message(&mut sock).await;
        match tag {
            b'K' => {
                pid = Some(i32::from_be_bytes([
                    payload[0], payload[1], payload[2], payload[3],
                ]))
            }
            b'S' => {
                let text = String::from_utf8_lossy(&payload).into_owned();
                let mut parts = text.split('\0');
                let (name, value) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                params.insert(name.to_owned(), value.to_owned());
            }
            b'E' => panic!("startup failed: {}", String::from_utf8_lossy(&payload)),
            b'Z' => {
                return (
                    sock,
                    pid.expect("BackendKeyData before ReadyForQuery"),
                    params,
                )
            }
            _ => {}
        }
    }
}

/// A protocol 3.0 StartupMessage with `params`.
pub fn startup_packet(params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = 196_608u32.to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    packet.extend(body);
    packet
}

/// One server message: its tag and body.
pub async fn read_message(sock: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut header = [0u8; 5];
    sock.read_exact(&mut header).await.unwrap();
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let mut payload = vec![0u8; len - 4];
    sock.read_exact(&mut payload).await.unwrap();
    (header[0], payload)
}

/// A simple Query message.
pub fn query(sql: &str) -> Vec<u8> {
    let mut out = vec![b'Q'];
    out.extend_from_slice(&((sql.len() + 5) as u32).to_be_bytes());
    out.extend_from_slice(sql.as_bytes());
    out.push(0);
    out
}

pub const TERMINATE: [u8; 5] = [b'X', 0, 0, 0, 4];

/// Runs `sql` (reads up to ReadyForQuery), then ends with Terminate.
pub async fn run_then_terminate(mut sock: TcpStream, sql: &str) {
    sock.write_all(&query(sql)).await.unwrap();
    loop {
        let (tag, payload) = read_message(&mut sock).await;
        match tag {
            b'E' => panic!("{sql}: {}", String::from_utf8_lossy(&payload)),
            b'Z' => break,
            _ => {}
        }
    }
    send_and_close(sock, &TERMINATE).await;
}

/// Sends `bytes` and closes the socket.
pub async fn send_and_close(mut sock: TcpStream, bytes: &[u8]) {
    sock.write_all(bytes).await.unwrap();
    sock.shutdown().await.unwrap();
    drop(sock);
}
