//! capstan: a Stellar receiving anchor. SEP-1, SEP-10 and SEP-12 today; SEP-31 builds on
//! the same configuration, store, error type and session extractor.

pub mod admin;
pub mod anchor;
pub mod config;
pub mod health;
pub mod http;
pub mod init;
pub mod jwt;
pub mod kyc;
pub mod notify;
pub mod payout;
pub mod sep1;
pub mod sep10;
pub mod sep12;
pub mod sep31;
pub mod server;
pub mod store;
pub mod watcher;

pub use anchor::{Anchor, AppState};
pub use config::Config;
pub use server::{Extensions, Running, start, start_on, start_with};
