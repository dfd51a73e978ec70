//! Starting and stopping the anchor: bind, serve, run the background loops, shut down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::anchor::{Anchor, AppState, StartError};
use crate::config::Config;
use crate::kyc::Customers;
use crate::store::{Store, StoreError, unix_now};
use crate::{admin, http, notify, payout, sep31, watcher};

/// What an embedding binary (or a test) adds to the anchor.
#[derive(Default)]
pub struct Extensions {
    /// Routes served beside capstan's own, behind the same layers.
    pub routes: Option<Router<AppState>>,
    /// Replaces the configured SEP-12 customers integration.
    pub customers: Option<Arc<dyn Customers>>,
    /// Replaces the configured sending-anchor allow-list and request checks.
    pub sep31_receiver: Option<Arc<dyn crate::sep31::integration::Sep31Receiver>>,
    /// Replaces the configured fees.
    pub fees: Option<Arc<dyn crate::sep31::integration::Fees>>,
    /// Replaces Horizon as the payment watcher's source of payments.
    pub payment_source: Option<Arc<dyn crate::watcher::source::PaymentSource>>,
    /// Replaces the configured rails.
    pub rails: Option<Arc<dyn crate::payout::rails::Rails>>,
    /// Replaces the configured SEP-38 rates.
    pub rates: Option<Arc<dyn crate::sep38::rates::Rates>>,
}

/// A running anchor. Dropping it does not stop it; call [`Running::shutdown`].
pub struct Running {
    pub addr: SocketAddr,
    /// Where the admin API listens, when it is configured.
    pub admin_addr: Option<SocketAddr>,
    pub anchor: AppState,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error("cannot listen on {addr} (admin.listen): {reason}")]
    BindAdmin { addr: SocketAddr, reason: String },
}

/// Opens the database, applies migrations, resolves generated keys, binds and serves.
/// `extra` routes are served beside capstan's own.
pub async fn start(config: Config, extra: Option<Router<AppState>>) -> Result<Running, ServeError> {
    let listen = config.listen;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| ServeError::Bind {
            addr: listen,
            reason: e.to_string(),
        })?;
    start_on(listener, config, extra).await
}

/// Like [`start`], on a listener the caller already bound (tests bind port 0 first, so the
/// configuration can name the real port).
pub async fn start_on(
    listener: TcpListener,
    config: Config,
    extra: Option<Router<AppState>>,
) -> Result<Running, ServeError> {
    start_with(
        listener,
        config,
        Extensions {
            routes: extra,
            ..Extensions::default()
        },
    )
    .await
}

/// Like [`start_on`], with an embedder's own routes and integrations.
pub async fn start_with(
    listener: TcpListener,
    config: Config,
    extensions: Extensions,
) -> Result<Running, ServeError> {
    let admin_listener = match &config.admin {
        Some(admin) => {
            Some(
                TcpListener::bind(admin.listen)
                    .await
                    .map_err(|e| ServeError::BindAdmin {
                        addr: admin.listen,
                        reason: e.to_string(),
                    })?,
            )
        }
        None => None,
    };
    let mut extensions = extensions;
    let extra = extensions.routes.take();
    let anchor = open_anchor(config, extensions).await?;
    let addr = listener.local_addr().map_err(|e| ServeError::Bind {
        addr: anchor.config.listen,
        reason: e.to_string(),
    })?;
    let (stop, stopped) = watch::channel(false);

    let app = http::router(anchor.clone(), extra);
    // A little longer than a request may take: a request timed out gets its answer first.
    let listener = http::TimedListener::new(
        listener,
        anchor.config.request_timeout + Duration::from_secs(2),
    );
    let mut server_stopped = stopped.clone();
    let server = tokio::spawn(async move {
        let shutdown = async move {
            let _ = server_stopped.changed().await;
        };
        // The peer's address, for the per-IP limit on `/auth`.
        let app = app.into_make_service_with_connect_info::<http::ClientAddr>();
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    let mut tasks = vec![server];
    let mut admin_addr = None;
    if let Some(listener) = admin_listener {
        admin_addr = listener.local_addr().ok();
        let app = admin::router(anchor.clone());
        let mut admin_stopped = stopped.clone();
        tasks.push(tokio::spawn(async move {
            let shutdown = async move {
                let _ = admin_stopped.changed().await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(error = %e, "admin HTTP server failed");
            }
        }));
    }
    tasks.push(tokio::spawn(notify::run(anchor.clone(), stopped.clone())));
    if anchor.config.watcher.enabled {
        tasks.push(tokio::spawn(watcher::run(anchor.clone(), stopped.clone())));
    }
    if anchor.config.rails.enabled {
        let rails = &anchor.config.rails;
        tasks.push(tokio::spawn(payout::run_executor(
            anchor.clone(),
            stopped.clone(),
            rails.execute_interval,
        )));
        tasks.push(tokio::spawn(payout::run_poller(
            anchor.clone(),
            stopped.clone(),
            rails.poll_interval,
        )));
    }
    tasks.push(tokio::spawn(sep31::expiry::run(
        anchor.clone(),
        stopped.clone(),
    )));
    tasks.push(tokio::spawn(purge_expired(anchor.clone(), stopped)));
    Ok(Running {
        addr,
        admin_addr,
        anchor,
        stop,
        tasks,
    })
}

/// The anchor without any server or loop: for one-off passes (`capstan execute --once`).
pub async fn open(config: Config, extensions: Extensions) -> Result<AppState, StartError> {
    open_anchor(config, extensions).await
}

/// Opens the database, waiting up to `database.connect_wait_secs` for a PostgreSQL server
/// that does not answer yet: replicas and their database often start together, and a
/// process that gave up at once would only be restarted in a loop by its supervisor. An
/// SQLite file is opened at once or not at all.
pub async fn connect_store(config: &Config, max_connections: u32) -> Result<Store, StoreError> {
    let deadline = tokio::time::Instant::now() + config.database_connect_wait;
    let mut delay = Duration::from_millis(250);
    loop {
        match Store::connect(&config.database_url, max_connections).await {
            Ok(store) => return Ok(store),
            Err(e)
                if !config.database_url.starts_with("sqlite:")
                    && tokio::time::Instant::now() + delay < deadline =>
            {
                tracing::warn!(error = %e, retry_in = ?delay, "the database does not answer yet; waiting for it");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}

async fn open_anchor(config: Config, extensions: Extensions) -> Result<AppState, StartError> {
    let store = connect_store(&config, config.database_max_connections).await?;
    store.migrate().await?;
    Ok(Arc::new(Anchor::new(config, store, extensions).await?))
}

/// The payment watcher on its own (`capstan watch`, the seeds' separate
/// `watch_transactions` process), with the callback sender for the changes it makes.
pub struct Watching {
    pub anchor: AppState,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

pub async fn start_watching(
    config: Config,
    extensions: Extensions,
) -> Result<Watching, StartError> {
    let anchor = open_anchor(config, extensions).await?;
    let (stop, stopped) = watch::channel(false);
    let tasks = vec![
        tokio::spawn(watcher::run(anchor.clone(), stopped.clone())),
        tokio::spawn(notify::run(anchor.clone(), stopped)),
    ];
    Ok(Watching {
        anchor,
        stop,
        tasks,
    })
}

/// Only the payout executor or poller (`capstan execute`, `capstan poll`), with the
/// callback sender for the changes they make.
pub async fn start_paying(
    config: Config,
    extensions: Extensions,
    executor: Option<Duration>,
    poller: Option<Duration>,
) -> Result<Watching, StartError> {
    let anchor = open_anchor(config, extensions).await?;
    let (stop, stopped) = watch::channel(false);
    let mut tasks = vec![tokio::spawn(notify::run(anchor.clone(), stopped.clone()))];
    if let Some(interval) = executor {
        tasks.push(tokio::spawn(payout::run_executor(
            anchor.clone(),
            stopped.clone(),
            interval,
        )));
    }
    if let Some(interval) = poller {
        tasks.push(tokio::spawn(payout::run_poller(
            anchor.clone(),
            stopped.clone(),
            interval,
        )));
    }
    Ok(Watching {
        anchor,
        stop,
        tasks,
    })
}

impl Watching {
    /// Stops the streams (a batch being written finishes first) and the sender.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.anchor.store.close().await;
    }
}

impl Running {
    /// Stops accepting requests, lets requests in flight finish, stops the loops.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.anchor.store.close().await;
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Drops, every minute, what has expired: used SEP-10 challenges (they only matter until
/// the challenge itself expires) and uploads that no `PUT` attached to a customer within
/// `kyc.unattached_file_lifetime_secs`.
async fn purge_expired(anchor: Arc<Anchor>, mut stopped: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = anchor.store.purge_used_challenges(unix_now()).await {
                    tracing::warn!(error = %e, "could not purge used SEP-10 challenges");
                }
                match anchor.files.delete_expired(unix_now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(files = n, "deleted uploads no PUT attached in time"),
                    Err(e) => tracing::warn!(error = %e, "could not delete expired uploads"),
                }
            }
            _ = stopped.changed() => return,
        }
    }
}
