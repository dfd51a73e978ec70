//! capstan: a Stellar receiving anchor. SEP-1 and SEP-10 today; SEP-12 and SEP-31 build on
//! the same configuration, store, error type and session extractor.

pub mod anchor;
pub mod config;
pub mod health;
pub mod http;
pub mod init;
pub mod jwt;
pub mod sep1;
pub mod sep10;
pub mod server;
pub mod store;

pub use anchor::{Anchor, AppState};
pub use config::Config;
pub use server::{Running, start, start_on};
