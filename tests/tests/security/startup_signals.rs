//! A SIGHUP during start-up (finding 8): queued and served once the proxy runs, never the
//! default action that ends the process.

use std::time::Duration;

use crate::common::proxy_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_during_start_up_is_a_reload_not_an_exit() {
    let s = crate::common::standin().await;
    let cmd = proxy_for(&s);
    // From soon after main starts (the dynamic loader takes ~5 ms for this debug binary;
    // nothing in the program runs before it) to past the point where the proxy listens.
    for delay_ms in [20u64, 50, 100] {
        let mut proxy = cmd
            .spawn_signalled("HUP", Duration::from_millis(delay_ms))
            .unwrap_or_else(|e| panic!("SIGHUP {delay_ms} ms after exec: {e:#}"));
        let reloads = proxy
            .wait_for_logs(Duration::from_secs(30), |lines| {
                lines
                    .iter()
                    .any(|l| l.contains("reloading the configuration"))
            })
            .unwrap_or_else(|e| panic!("SIGHUP {delay_ms} ms after exec was not served: {e:#}"));
        let served: Vec<&String> = reloads
            .iter()
            .filter(|l| l.contains("reloading the configuration"))
            .collect();
        println!("SIGHUP {delay_ms} ms after exec: {}", served[0]);
        crate::common::still_serves(&proxy).await;
        assert!(proxy.wait_exit(Duration::from_millis(10)).is_err());
    }
}
