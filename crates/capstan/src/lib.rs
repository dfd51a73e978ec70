//! capstan: a Stellar receiving anchor. SEP-1, SEP-10, SEP-12 and SEP-31, the payment
//! watcher and the payout executor, in one library and one binary.
//!
//! An anchor written in Rust starts it with [`start_with`] and passes its own integrations
//! in [`Extensions`]: `customers` (SEP-12), `sep31_receiver` and `fees` (SEP-31), `rails`
//! (payouts), `payment_source` (the watcher's source of payments); everything else works as
//! `capstan serve` does. `examples/custom_rails.rs` is a complete one.

pub mod admin;
pub mod anchor;
pub mod business_answer;
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
pub mod sep38;
pub mod server;
pub mod store;
pub mod watcher;

pub use anchor::{Anchor, AppState};
pub use config::Config;
pub use server::{Extensions, Running, start, start_on, start_with};
