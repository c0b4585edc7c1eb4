//! Servers of the stand-in run on their own small runtime, so they keep answering even when a
//! test blocks its own runtime (e.g. runs `psql` with `std::process`) or uses a
//! current-thread runtime, and so they outlive any one test's runtime.

use std::future::Future;

pub(crate) struct Background {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Background {
    pub(crate) fn new(name: &str) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(name)
            .enable_all()
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    pub(crate) fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if let Some(rt) = &self.runtime {
            rt.spawn(future);
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // `shutdown_background` is the only way that is allowed inside an async context.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Serves `app` over HTTP on 127.0.0.1:0 on its own runtime thread, until the returned
/// [`Background`] is dropped.
pub(crate) fn serve_http(
    name: &str,
    app: axum::Router,
) -> std::io::Result<(std::net::SocketAddr, Background)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let background = Background::new(name)?;
    background.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, background))
}
