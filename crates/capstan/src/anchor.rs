//! The running anchor: configuration with every generated part filled in, and the shared
//! handles (store, Horizon, HTTP client) that request handlers and workers use.

use std::sync::Arc;

use stellar::Keypair;
use stellar::horizon::{Horizon, HorizonError};

use crate::config::{AssetConfig, Config, Secret};
use crate::jwt::Jwt;
use crate::kyc::Customers;
use crate::kyc::builtin::BuiltinCustomers;
use crate::kyc::business::BusinessCustomers;
use crate::kyc::files::FileStore;
use crate::sep1;
use crate::store::{Store, StoreError};

pub type AppState = Arc<Anchor>;

pub struct Anchor {
    pub config: Config,
    pub signing_key: Keypair,
    pub jwt: Jwt,
    pub store: Store,
    pub horizon: Horizon,
    /// For outgoing calls other than Horizon (client domains' stellar.toml).
    pub http: reqwest::Client,
    /// Rendered once at start: the file only changes with the configuration.
    pub stellar_toml: String,
    /// What was generated rather than configured, for the start-up banner.
    pub generated: Vec<&'static str>,
    /// SEP-12 customers: built in, on the business server, or the embedder's own.
    pub customers: Arc<dyn Customers>,
    pub files: FileStore,
    /// SEP-31's integrations: built in, on the business server, or the embedder's own.
    pub sep31_receiver: Arc<dyn crate::sep31::integration::Sep31Receiver>,
    pub fees: Arc<dyn crate::sep31::integration::Fees>,
    /// SEP-38 prices: the configured fixed rates, the business server, or the embedder's own.
    pub rates: Arc<dyn crate::sep38::rates::Rates>,
    /// The assets SEP-31 receives, with their settings.
    pub receive_assets: Vec<crate::config::ReceiveAsset>,
    /// Wakes the callback sender when something was queued.
    pub outbox_wake: tokio::sync::Notify,
    /// Where the payment watcher reads payments: Horizon, or the embedder's own source.
    pub payment_source: Arc<dyn crate::watcher::source::PaymentSource>,
    /// The watcher's streams in this process, for `/health`.
    pub streams: crate::watcher::Streams,
    /// How receivers are paid out; `None`: no rails here (transactions wait for the
    /// operator).
    pub rails: Option<Arc<dyn crate::payout::rails::Rails>>,
    /// Wakes the executor when a transaction became payable.
    pub payout_wake: tokio::sync::Notify,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Horizon(#[from] HorizonError),
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    #[error("toml.append_file: {0}")]
    TomlAppend(String),
    #[error("kyc.business_url: {0}")]
    Business(String),
    #[error("rails.business_url: {0}")]
    Rails(String),
    #[error("sep38.business_url: {0}")]
    Rates(String),
    #[error("sep31.business_url: {0}")]
    Sep31(String),
}

impl Anchor {
    /// Resolves what the configuration leaves out: on a test network, missing keys and
    /// secrets are generated once and kept in the database, so restarts (and replicas)
    /// share them.
    /// `customers` replaces the configured customers integration (for embedders).
    pub async fn new(
        mut config: Config,
        store: Store,
        extensions: crate::server::Extensions,
    ) -> Result<Anchor, StartError> {
        let crate::server::Extensions {
            customers,
            sep31_receiver,
            fees,
            payment_source,
            rails,
            rates,
            ..
        } = extensions;
        let mut generated = Vec::new();
        let signing_key = match config.signing_key.take() {
            Some(key) => key,
            None => {
                generated.push("signing key");
                generated_keypair(&store, "signing_seed").await?
            }
        };
        let jwt_secret = match config.jwt_secret.take() {
            Some(secret) => secret,
            None => {
                generated.push("JWT secret");
                Secret::new(
                    store
                        .generated_secret("jwt_secret", || {
                            hex::encode(stellar::random_bytes::<32>())
                        })
                        .await?,
                )
            }
        };
        // The demo asset joins the configured ones, so `config.assets` is the one list of
        // assets served.
        if config.assets.is_empty() {
            generated.push("demo asset USDC");
            config.assets.push(AssetConfig {
                code: "USDC".into(),
                issuer: generated_keypair(&store, "demo_issuer_seed").await?.public_key(),
                distribution_account: generated_keypair(&store, "demo_distribution_seed").await?.public_key(),
                status: "test".into(),
                desc: "Demo asset of a development anchor, issued by a generated test account; it has no value".into(),
                name: Some("Demo USD".into()),
                anchor_asset_type: "fiat".into(),
                anchor_asset: Some("USD".into()),
                display_decimals: 2,
            });
        }
        let jwt = Jwt::new(
            jwt_secret.expose().as_bytes(),
            config.web_auth_endpoint(),
            config.jwt_lifetime.as_secs(),
        );
        let horizon = Horizon::new(&config.horizon_url, config.horizon_timeout)?;
        let payment_source = match payment_source {
            Some(source) => source,
            None => Arc::new(crate::watcher::source::HorizonSource::new(
                horizon
                    .clone()
                    .with_stream_silence(config.watcher.silence_timeout)?,
            )),
        };
        let http = reqwest::Client::builder()
            .user_agent(concat!("capstan/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(|e| StartError::Http(e.to_string()))?;
        let stellar_toml = sep1::render(&config, &signing_key).map_err(StartError::TomlAppend)?;
        let receive_assets = config.sep31.receive_assets(&config.assets);
        // With sep31.business_url, one forwarder serves both integrations; an embedder's own
        // replaces either.
        let business_sep31 = match &config.sep31.business {
            Some(server) => Some(Arc::new(
                crate::sep31::business::BusinessReceiver::new(server.clone(), signing_key.clone())
                    .map_err(StartError::Sep31)?,
            )),
            None => None,
        };
        let sep31_receiver: Arc<dyn crate::sep31::integration::Sep31Receiver> =
            match (sep31_receiver, &business_sep31) {
                (Some(receiver), _) => receiver,
                (None, Some(business)) => business.clone(),
                (None, None) => Arc::new(crate::sep31::integration::ConfiguredReceiver::new(
                    &config.sep31,
                )),
            };
        let fees: Arc<dyn crate::sep31::integration::Fees> = match (fees, business_sep31) {
            (Some(fees), _) => fees,
            (None, Some(business)) => business,
            (None, None) => Arc::new(crate::sep31::integration::ConfiguredFees),
        };
        let rails: Option<Arc<dyn crate::payout::rails::Rails>> = match rails {
            Some(rails) => Some(rails),
            None => match config.rails.kind {
                crate::config::RailsKind::Simulated => {
                    Some(Arc::new(crate::payout::simulated::SimulatedRails::new(
                        store.clone(),
                        config.rails.clone(),
                    )))
                }
                crate::config::RailsKind::Business => {
                    let business =
                        config.rails.business.clone().ok_or_else(|| {
                            StartError::Rails("rails.business_url is not set".into())
                        })?;
                    Some(Arc::new(
                        crate::payout::business::HttpRails::new(
                            business,
                            signing_key.clone(),
                            config.rails.timeout,
                        )
                        .map_err(StartError::Rails)?,
                    ))
                }
                crate::config::RailsKind::None => None,
            },
        };
        let rates = match rates {
            Some(rates) => rates,
            None => crate::sep38::rates::configured(&config.sep38, &signing_key)
                .map_err(StartError::Rates)?,
        };
        let files = FileStore::new(
            store.clone(),
            config.kyc.files_dir.clone(),
            config.kyc.unattached_file_lifetime,
        );
        let customers: Arc<dyn Customers> = match (customers, &config.kyc.business) {
            (Some(customers), _) => customers,
            (None, Some(server)) => {
                BusinessCustomers::new(store.clone(), files.clone(), server.clone())
                    .map_err(StartError::Business)?
            }
            (None, None) => Arc::new(BuiltinCustomers::new(
                store.clone(),
                Arc::new(config.kyc.clone()),
                files.clone(),
            )),
        };
        Ok(Anchor {
            config,
            signing_key,
            jwt,
            store,
            horizon,
            http,
            stellar_toml,
            generated,
            sep31_receiver,
            fees,
            rates,
            receive_assets,
            customers,
            files,
            outbox_wake: tokio::sync::Notify::new(),
            payment_source,
            streams: crate::watcher::Streams::default(),
            rails,
            payout_wake: tokio::sync::Notify::new(),
        })
    }
}

async fn generated_keypair(store: &Store, name: &str) -> Result<Keypair, StoreError> {
    let seed = store
        .generated_secret(name, || Keypair::random().secret_seed())
        .await?;
    // The value was written by this function; a corrupted row is a broken database, not input.
    Ok(Keypair::from_secret_seed(&seed)
        .unwrap_or_else(|_| panic!("generated_secrets.{name} is not a valid secret seed")))
}
